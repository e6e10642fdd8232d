// Fan-out of committed changes to watchers (WebSocket, SSE, long-poll), in commit order.
import type { ChangeEvent } from '../registry/types.js';

export interface WatchFilter {
  namespace?: string;
  service?: string;
}

/**
 * An event as watchers receive it. Its wire forms are built at most once per event, however many watchers
 * it reaches: fan-out costs one serialization per event, not per watcher.
 */
export class PublishedEvent {
  private jsonBytes?: Buffer;
  private sseBytes?: Buffer;
  constructor(readonly event: ChangeEvent) {}

  get json(): Buffer {
    this.jsonBytes ??= Buffer.from(
      JSON.stringify({
        type: this.event.type,
        revision: this.event.revision,
        reason: this.event.reason,
        instance: this.event.instance,
      }),
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

/**
 * A message for every watcher that is not a change (PROTECTION): same wire forms as an event, built once.
 * No SSE id: resuming is by change revision only.
 */
export class PublishedNotice {
  readonly json: Buffer;
  readonly sse: Buffer;
  constructor(readonly message: { type: string } & Record<string, unknown>) {
    this.json = Buffer.from(JSON.stringify(message));
    this.sse = Buffer.concat([Buffer.from(`event: ${message.type}\ndata: `), this.json, Buffer.from('\n\n')]);
  }
}

export type Deliver = (event: PublishedEvent) => void;
export type DeliverNotice = (notice: PublishedNotice) => void;

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
  // Last change revision per namespace and per service, for long-poll ("changed after N?").
  const lastByNamespace = new Map<string, number>();
  const lastByService = new Map<string, Map<string, number>>();
  let lastAny = 0;
  let published = 0;
  const noticeListeners = new Set<DeliverNotice>();

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

  function noteChange(namespace: string, service: string, revision: number) {
    lastAny = revision;
    lastByNamespace.set(namespace, revision);
    let services = lastByService.get(namespace);
    if (!services) lastByService.set(namespace, (services = new Map()));
    services.set(service, revision);
  }

  return {
    /** Calls deliver for every later event matching filter, synchronously in publish order. */
    subscribe(filter: WatchFilter, deliver: Deliver): () => void {
      const set = bucket(filter);
      set.add(deliver);
      return () => {
        set.delete(deliver);
        release(filter, set);
      };
    },

    /** Called by the registry right after a commit, with that commit's events in revision order. */
    publish(events: ChangeEvent[]) {
      for (const event of events) {
        const { namespace, service } = event.instance;
        noteChange(namespace, service, event.revision);
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

    /** Listens for notices (every watcher gets every notice, whatever its filter). */
    subscribeNotices(deliver: DeliverNotice): () => void {
      noticeListeners.add(deliver);
      return () => noticeListeners.delete(deliver);
    },

    /** Sends a notice to every watcher, after the events published so far. */
    broadcast(message: { type: string } & Record<string, unknown>) {
      const notice = new PublishedNotice(message);
      for (const deliver of [...noticeListeners]) deliver(notice);
    },

    /** Seeds the last-change index from the event log at startup. */
    seedLastChange(rows: { namespace: string; service: string; revision: number }[]) {
      for (const r of [...rows].sort((a, b) => a.revision - b.revision)) noteChange(r.namespace, r.service, r.revision);
    },

    /** Revision of the last change that matches filter (0 when none is known). */
    lastChange(filter: WatchFilter): number {
      if (filter.namespace === undefined) return lastAny;
      if (filter.service === undefined) return lastByNamespace.get(filter.namespace) ?? 0;
      return lastByService.get(filter.namespace)?.get(filter.service) ?? 0;
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
