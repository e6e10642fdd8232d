// Fan-out of committed changes to watchers (WebSocket, SSE, long-poll), in commit order.
import { changeScope, isServiceChange, type RegistryChange } from '../registry/types.js';
import type { WatchResource } from '../schemas/service.js';

export interface WatchFilter {
  namespace?: string;
  service?: string;
  /** Kinds of change wanted; instances only when omitted, so watchers from before Services see no change. */
  resources?: readonly WatchResource[];
}

const DEFAULT_RESOURCES: readonly WatchResource[] = ['instances'];

export function wantsKind(filter: WatchFilter, kind: WatchResource): boolean {
  return (filter.resources ?? DEFAULT_RESOURCES).includes(kind);
}

/**
 * An event as watchers receive it. Its wire forms are built at most once per event, however many watchers
 * it reaches: fan-out costs one serialization per event, not per watcher.
 */
export class PublishedEvent {
  private jsonBytes?: Buffer;
  private sseBytes?: Buffer;
  readonly kind: WatchResource;
  constructor(readonly event: RegistryChange) {
    this.kind = changeScope(event).kind;
  }

  get json(): Buffer {
    const { type, revision, reason } = this.event;
    this.jsonBytes ??= Buffer.from(
      JSON.stringify(
        isServiceChange(this.event)
          ? { type, revision, reason, service: this.event.service }
          : { type, revision, reason, instance: this.event.instance },
      ),
    );
    return this.jsonBytes;
  }

  get sse(): Buffer {
    this.sseBytes ??= Buffer.concat([
      Buffer.from(`id: ${this.event.revision}\nevent: ${this.event.type}\ndata: `),
      this.json,
      Buffer.from('\n\n'),
    ]);
    return this.sseBytes;
  }
}

export type Deliver = (event: PublishedEvent) => void;

export function matches(filter: WatchFilter, namespace: string, service: string): boolean {
  if (filter.namespace !== undefined && filter.namespace !== namespace) return false;
  if (filter.service !== undefined && filter.service !== service) return false;
  return true;
}

export function createWatchHub() {
  // Subscribers indexed by what they watch, so publishing finds them without scanning every watcher.
  const everything = new Set<Deliver>();
  const byNamespace = new Map<string, Set<Deliver>>();
  const byService = new Map<string, Map<string, Set<Deliver>>>();
  // Last change revision per kind, namespace and service, for long-poll ("changed after N?").
  const last = { instances: newLastIndex(), services: newLastIndex() };
  let published = 0;

  function bucket(filter: WatchFilter): Set<Deliver> {
    if (filter.namespace === undefined) return everything;
    if (filter.service === undefined) {
      let set = byNamespace.get(filter.namespace);
      if (!set) byNamespace.set(filter.namespace, (set = new Set()));
      return set;
    }
    let services = byService.get(filter.namespace);
    if (!services) byService.set(filter.namespace, (services = new Map()));
    let set = services.get(filter.service);
    if (!set) services.set(filter.service, (set = new Set()));
    return set;
  }

  function release(filter: WatchFilter, set: Set<Deliver>) {
    if (set.size > 0 || filter.namespace === undefined) return;
    if (filter.service === undefined) {
      byNamespace.delete(filter.namespace);
      return;
    }
    const services = byService.get(filter.namespace);
    services?.delete(filter.service);
    if (services?.size === 0) byService.delete(filter.namespace);
  }

  function noteChange(kind: WatchResource, namespace: string, service: string, revision: number) {
    const index = last[kind];
    index.any = revision;
    index.byNamespace.set(namespace, revision);
    let services = index.byService.get(namespace);
    if (!services) index.byService.set(namespace, (services = new Map()));
    services.set(service, revision);
  }

  return {
    /** Calls deliver for every later event matching filter (its kinds too), synchronously in publish order. */
    subscribe(filter: WatchFilter, deliver: Deliver): () => void {
      const set = bucket(filter);
      // Buckets index by place only; the kind test is one array lookup per delivery.
      const kinds = filter.resources ?? DEFAULT_RESOURCES;
      const gated: Deliver = (e) => {
        if (kinds.includes(e.kind)) deliver(e);
      };
      set.add(gated);
      return () => {
        set.delete(gated);
        release(filter, set);
      };
    },

    /** Called by the registry right after a commit, with that commit's events in revision order. */
    publish(events: RegistryChange[]) {
      for (const event of events) {
        const { kind, namespace, service } = changeScope(event);
        noteChange(kind, namespace, service, event.revision);
        published++;
        const wire = new PublishedEvent(event);
        // Copy each set before calling out: a deliver may unsubscribe (slow consumer closed) mid-loop.
        for (const deliver of [...everything]) deliver(wire);
        const ns = byNamespace.get(namespace);
        if (ns) for (const deliver of [...ns]) deliver(wire);
        const svc = byService.get(namespace)?.get(service);
        if (svc) for (const deliver of [...svc]) deliver(wire);
      }
    },

    /** Seeds the last-change index from the event log at startup (rows without a kind are instance changes). */
    seedLastChange(rows: { kind?: WatchResource; namespace: string; service: string; revision: number }[]) {
      for (const r of [...rows].sort((a, b) => a.revision - b.revision)) noteChange(r.kind ?? 'instances', r.namespace, r.service, r.revision);
    },

    /** Revision of the last change that matches filter, of any kind it wants (0 when none is known). */
    lastChange(filter: WatchFilter): number {
      let newest = 0;
      for (const kind of filter.resources ?? DEFAULT_RESOURCES) {
        const index = last[kind];
        const rev =
          filter.namespace === undefined
            ? index.any
            : filter.service === undefined
              ? (index.byNamespace.get(filter.namespace) ?? 0)
              : (index.byService.get(filter.namespace)?.get(filter.service) ?? 0);
        newest = Math.max(newest, rev);
      }
      return newest;
    },

    /**
     * Resolves true as soon as a change matching filter commits after `after`, false after timeoutMs or when
     * signal aborts. Changes elsewhere in the registry do not wake it.
     */
    waitForChange(filter: WatchFilter, after: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
      if (this.lastChange(filter) > after) return Promise.resolve(true);
      return new Promise((resolve) => {
        const finish = (changed: boolean) => {
          clearTimeout(timer);
          unsubscribe();
          signal?.removeEventListener('abort', onAbort);
          resolve(changed);
        };
        const onAbort = () => finish(false);
        const unsubscribe = this.subscribe(filter, (e) => {
          if (e.event.revision > after) finish(true);
        });
        const timer = setTimeout(() => finish(false), timeoutMs);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },

    stats() {
      let watchers = everything.size;
      for (const s of byNamespace.values()) watchers += s.size;
      for (const m of byService.values()) for (const s of m.values()) watchers += s.size;
      return { subscribers: watchers, published };
    },
  };
}

export type WatchHub = ReturnType<typeof createWatchHub>;

function newLastIndex() {
  return { any: 0, byNamespace: new Map<string, number>(), byService: new Map<string, Map<string, number>>() };
}
