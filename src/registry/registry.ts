// The registry's rules: registration, leases, revisions and what counts as a change. No HTTP, no SQL.
import { instanceNotFound } from '../errors.js';
import { DEFAULTS, type Instance, type PatchInput, type RegisterInput } from '../schemas/instance.js';
import type { PutServiceInput, Service, WatchResource } from '../schemas/service.js';
import type { InstanceStore } from '../store/instance-store.js';
import type { WatchHub } from '../watch/hub.js';
import type { Clock } from './clock.js';
import { createLeaseQueue } from './leases.js';
import { createServiceRules } from './services.js';
import { toApiInstance, type ChangeEvent, type InstanceRecord, type RegistryChange, type ServiceChangeEvent, type ServiceRecord } from './types.js';
import type { Cidr } from './virtual-ips.js';

export interface RegistryOptions {
  store: InstanceStore;
  hub: WatchHub;
  clock: Clock;
  /** Expiries committed per sweep at most (etcd's bounded revoke): a mass expiry is spread, never a stall. */
  maxExpiriesPerSweep?: number;
  onExpired?: (count: number) => void;
  /** A commit failed: memory is ahead of disk. The server exits so it restarts from what is durable. */
  onFatal?: (err: unknown) => void;
  /** Where Services' virtual IPs come from (default 127.77.0.0/16). */
  serviceCidr?: Cidr;
}

export interface ListFilter {
  namespace: string;
  service?: string;
  status?: Instance['status'];
  tag?: string;
  zone?: string;
}

export interface ServiceSummary {
  name: string;
  instances: number;
  up: number;
  /** Only for a service that has an explicit Service (a stable address). */
  virtualIP?: string;
  ports?: Service['ports'];
}

export interface NamespaceSummary {
  name: string;
  services: number;
  instances: number;
}

/** What a registration says, without the times and revisions the registry adds. */
type RegistrationFields = Omit<InstanceRecord, 'registeredAt' | 'lastHeartbeatAt' | 'expiresAt' | 'revision' | 'createRevision'>;

type ServiceMap = Map<string, Map<string, InstanceRecord>>;

export function createRegistry(options: RegistryOptions) {
  const { store, hub, clock } = options;
  const maxExpiries = options.maxExpiriesPerSweep ?? 1000;
  const leases = createLeaseQueue();
  // namespace → service → id → record. Reads are served from here; SQLite is the durable copy.
  const namespaces = new Map<string, ServiceMap>();
  // Heartbeats only touch memory; these are written to SQLite in batches by flushHeartbeats().
  const unsavedHeartbeats = new Set<InstanceRecord>();
  let revision = store.revision();

  // Restore: every instance gets a fresh full TTL from now, so a registry restart never evicts in a herd.
  const restoredAt = clock.now();
  for (const row of store.loadInstances()) {
    const record: InstanceRecord = { ...row, expiresAt: restoredAt + row.ttlSeconds * 1000 };
    put(record);
    leases.add(record);
  }
  hub.seedLastChange(store.lastChangeByService());

  function find(namespace: string, service: string, id: string): InstanceRecord | undefined {
    return namespaces.get(namespace)?.get(service)?.get(id);
  }

  function put(record: InstanceRecord) {
    let services = namespaces.get(record.namespace);
    if (!services) namespaces.set(record.namespace, (services = new Map()));
    let ids = services.get(record.service);
    if (!ids) services.set(record.service, (ids = new Map()));
    ids.set(record.id, record);
  }

  function drop(record: InstanceRecord) {
    const services = namespaces.get(record.namespace);
    const ids = services?.get(record.service);
    if (!services || !ids) return;
    ids.delete(record.id);
    if (ids.size === 0) services.delete(record.service);
    if (services.size === 0) namespaces.delete(record.namespace);
  }

  // Group commit. The first change of an event-loop turn opens a transaction; every change of that turn joins
  // it (each in its own savepoint); one COMMIT (one fsync) ends it on setImmediate. Only then are the events
  // published and the writers answered (they await settled()). Nothing is published that did not commit,
  // nothing committed is missed, and synchronous=FULL costs one fsync per batch instead of one per write.
  let committedRevision = revision;
  let batch: { events: RegistryChange[]; done: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;

  function openBatch() {
    if (batch) return batch;
    store.beginBatch();
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A failed batch rejects its writers; nobody else awaits it, so keep Node from calling it unhandled.
    done.catch(() => {});
    batch = { events: [], done, resolve, reject };
    setImmediate(flushBatch);
    return batch;
  }

  function flushBatch() {
    const current = batch;
    if (!current) return;
    batch = undefined;
    try {
      store.commitBatch();
    } catch (err) {
      store.rollbackBatch();
      current.reject(err);
      // Memory already holds the batch's changes and disk does not: the only safe way on is to stop, and
      // restart from what is durable. Callers got no 2xx for any of it.
      options.onFatal?.(err);
      return;
    }
    committedRevision = revision;
    hub.publish(current.events);
    current.resolve();
  }

  /**
   * The one write path. Assigns revisions, writes rows + events + revision inside the turn's batch, updates
   * memory; the events go out when the batch commits.
   */
  function commit(drafts: { type: ChangeEvent['type']; reason: ChangeEvent['reason']; record: InstanceRecord }[]): ChangeEvent[] {
    if (drafts.length === 0) return [];
    let next = revision;
    const changes: { event: ChangeEvent; record: InstanceRecord }[] = drafts.map(({ type, reason, record }) => {
      next += 1;
      const stamped = type === 'DELETED' ? record : { ...record, revision: next };
      if (type === 'ADDED') stamped.createRevision = next;
      return { record: stamped, event: { type, reason, revision: next, instance: toApiInstance(stamped) } };
    });
    const open = openBatch();
    store.commit(changes);
    revision = next;
    for (const { record, event } of changes) {
      unsavedHeartbeats.delete(find(record.namespace, record.service, record.id) ?? record);
      if (event.type === 'DELETED') drop(record);
      else {
        put(record);
        leases.add(record);
      }
    }
    const events = changes.map((c) => c.event);
    open.events.push(...events);
    return events;
  }

  /**
   * The write path for Services: the same batch, revision counter, event log and publication as instances.
   * Returns the event, which carries the Service as committed.
   */
  function commitService(type: ServiceChangeEvent['type'], reason: ServiceChangeEvent['reason'], record: ServiceRecord): ServiceChangeEvent {
    const next = revision + 1;
    const stamped: ServiceRecord =
      type === 'DELETED' ? record : { ...record, revision: next, createRevision: type === 'ADDED' ? next : record.createRevision };
    const event: ServiceChangeEvent = { type, reason, revision: next, service: serviceRules.toApi(stamped) };
    const open = openBatch();
    store.commit([{ event, record: stamped }]);
    revision = next;
    serviceRules.apply(type, stamped);
    open.events.push(event);
    return event;
  }

  const serviceRules = createServiceRules({
    ...(options.serviceCidr === undefined ? {} : { cidr: options.serviceCidr }),
    restored: store.loadServices(),
    now: () => clock.now(),
    commit: commitService,
  });

  /** Event log access for watch resumption: instance events only unless `resources` says otherwise. */
  function eventsAfter(filter: { namespace?: string; service?: string }, after: number, upTo: number, limit: number): ChangeEvent[];
  function eventsAfter(
    filter: { namespace?: string; service?: string; resources?: readonly WatchResource[] },
    after: number,
    upTo: number,
    limit: number,
  ): RegistryChange[];
  function eventsAfter(
    filter: { namespace?: string; service?: string; resources?: readonly WatchResource[] },
    after: number,
    upTo: number,
    limit: number,
  ): RegistryChange[] {
    return store.readEvents(filter, after, upTo, limit);
  }

  /** The given fields over base: PUT applies them over the defaults, PATCH over the current registration. */
  function applyChanges<T extends RegistrationFields>(base: T, input: PatchInput): T {
    return {
      ...base,
      status: input.status ?? base.status,
      weight: input.weight ?? base.weight,
      zone: input.zone === undefined ? base.zone : input.zone,
      tags: input.tags ?? base.tags,
      metadata: input.metadata ?? base.metadata,
      ttlSeconds: input.ttlSeconds ?? base.ttlSeconds,
    };
  }

  function sameRegistration(a: RegistrationFields, b: RegistrationFields): boolean {
    return (
      a.address === b.address &&
      a.port === b.port &&
      a.status === b.status &&
      a.weight === b.weight &&
      a.zone === b.zone &&
      a.ttlSeconds === b.ttlSeconds &&
      JSON.stringify(a.tags) === JSON.stringify(b.tags) &&
      JSON.stringify(a.metadata) === JSON.stringify(b.metadata)
    );
  }

  function renew(record: InstanceRecord, now: number) {
    record.lastHeartbeatAt = now;
    record.expiresAt = now + record.ttlSeconds * 1000;
    unsavedHeartbeats.add(record);
  }

  function filterRecords(filter: ListFilter): InstanceRecord[] {
    const services = namespaces.get(filter.namespace);
    if (!services) return [];
    const names = filter.service === undefined ? [...services.keys()].sort() : [filter.service];
    const out: InstanceRecord[] = [];
    for (const name of names) {
      const ids = services.get(name);
      if (!ids) continue;
      for (const id of [...ids.keys()].sort()) {
        const r = ids.get(id)!;
        if (filter.status !== undefined && r.status !== filter.status) continue;
        if (filter.zone !== undefined && r.zone !== filter.zone) continue;
        if (filter.tag !== undefined && !r.tags.includes(filter.tag)) continue;
        out.push(r);
      }
    }
    return out;
  }

  return {
    /** The last committed revision: what readers and watchers may be told. */
    get revision() {
      return committedRevision;
    },

    /** Resolves once every change made so far is committed (at once when none is pending). */
    settled(): Promise<void> {
      return batch ? batch.done : Promise.resolve();
    },

    /**
     * Runs fn synchronously at a moment when no batch is open, so what fn reads from memory is exactly
     * what is committed and published (a watch snapshot taken there lines up with the event stream).
     */
    async whenSettled<T>(fn: () => T): Promise<T> {
      while (batch) await batch.done;
      return fn();
    },

    /** Commits an open batch now (shutdown). */
    flushNow() {
      flushBatch();
    },

    /** PUT: creates (created=true) or replaces a registration. An identical PUT only renews the lease. */
    register(namespace: string, service: string, id: string, input: RegisterInput): { instance: Instance; created: boolean } {
      const now = clock.now();
      const existing = find(namespace, service, id);
      const fields = applyChanges(
        { namespace, service, id, address: input.address, port: input.port, zone: null, tags: [], metadata: {}, ...DEFAULTS },
        input,
      );
      if (existing && sameRegistration(existing, fields)) {
        renew(existing, now);
        return { instance: toApiInstance(existing), created: false };
      }
      const record: InstanceRecord = {
        ...fields,
        // A replacement keeps its identity: first registration time and create revision.
        registeredAt: existing?.registeredAt ?? now,
        lastHeartbeatAt: now,
        expiresAt: now + fields.ttlSeconds * 1000,
        revision: 0,
        createRevision: existing?.createRevision ?? 0,
      };
      const [event] = commit([{ type: existing ? 'MODIFIED' : 'ADDED', reason: 'registered', record }]);
      return { instance: event!.instance, created: !existing };
    },

    /** Renews the lease. Unknown or expired instances are not found, so the caller registers again. */
    heartbeat(namespace: string, service: string, id: string): Instance {
      const record = find(namespace, service, id);
      if (!record) throw instanceNotFound(namespace, service, id);
      renew(record, clock.now());
      return toApiInstance(record);
    },

    /** Partial update; also renews the lease (a write from the instance is proof of life). */
    patch(namespace: string, service: string, id: string, input: PatchInput): Instance {
      const existing = find(namespace, service, id);
      if (!existing) throw instanceNotFound(namespace, service, id);
      const now = clock.now();
      const fields = applyChanges(existing, input);
      if (sameRegistration(existing, fields)) {
        renew(existing, now);
        return toApiInstance(existing);
      }
      const record: InstanceRecord = {
        ...existing,
        ...fields,
        lastHeartbeatAt: now,
        expiresAt: now + fields.ttlSeconds * 1000,
      };
      return commit([{ type: 'MODIFIED', reason: 'updated', record }])[0]!.instance;
    },

    deregister(namespace: string, service: string, id: string): void {
      const existing = find(namespace, service, id);
      if (!existing) throw instanceNotFound(namespace, service, id);
      commit([{ type: 'DELETED', reason: 'deregistered', record: existing }]);
    },

    get(namespace: string, service: string, id: string): Instance {
      const existing = find(namespace, service, id);
      if (!existing) throw instanceNotFound(namespace, service, id);
      return toApiInstance(existing);
    },

    /** Instances matching filter, sorted by service then id, consistent at `revision`. */
    list(filter: ListFilter): { revision: number; items: Instance[] } {
      return { revision: committedRevision, items: filterRecords(filter).map(toApiInstance) };
    },

    /** Every instance of every namespace (or one namespace), for a watch snapshot. */
    snapshot(filter: { namespace?: string; service?: string }): { revision: number; items: Instance[] } {
      const names = filter.namespace === undefined ? [...namespaces.keys()].sort() : [filter.namespace];
      const items: Instance[] = [];
      for (const namespace of names) {
        for (const r of filterRecords({ namespace, ...(filter.service === undefined ? {} : { service: filter.service }) })) {
          items.push(toApiInstance(r));
        }
      }
      return { revision: committedRevision, items };
    },

    /**
     * The services of a namespace: every name that has instances or an explicit Service (a Service with no
     * instances lists with 0 counts; one with a Service also shows its virtualIP and ports).
     */
    services(namespace: string): { revision: number; items: ServiceSummary[] } {
      const services = namespaces.get(namespace);
      const explicit = serviceRules.inNamespace(namespace);
      const names = new Set([...(services?.keys() ?? []), ...explicit.keys()]);
      const items: ServiceSummary[] = [];
      for (const name of [...names].sort()) {
        const ids = services?.get(name);
        let up = 0;
        for (const r of ids?.values() ?? []) if (r.status === 'up') up++;
        const item: ServiceSummary = { name, instances: ids?.size ?? 0, up };
        const svc = explicit.get(name);
        if (svc) {
          item.virtualIP = svc.virtualIP;
          item.ports = svc.ports;
        }
        items.push(item);
      }
      return { revision: committedRevision, items };
    },

    /** Namespaces with instances or Services; `services` counts names that have either. */
    namespaces(): { revision: number; items: NamespaceSummary[] } {
      const items: NamespaceSummary[] = [];
      const names = new Set([...namespaces.keys(), ...serviceRules.namespaces()]);
      for (const name of [...names].sort()) {
        const services = namespaces.get(name);
        let instances = 0;
        for (const ids of services?.values() ?? []) instances += ids.size;
        const serviceNames = new Set([...(services?.keys() ?? []), ...serviceRules.inNamespace(name).keys()]);
        items.push({ name, services: serviceNames.size, instances });
      }
      return { revision: committedRevision, items };
    },

    /** PUT a Service: created=true when new. An identical PUT changes nothing (no revision, no event). */
    putService(namespace: string, name: string, input: PutServiceInput): { service: Service; created: boolean } {
      return serviceRules.put(namespace, name, input);
    },

    getService(namespace: string, name: string): Service {
      return serviceRules.get(namespace, name);
    },

    /** Deletes the Service and releases its address; the service's instances stay registered. */
    deleteService(namespace: string, name: string): void {
      serviceRules.delete(namespace, name);
    },

    /** Services for a watch snapshot (every namespace, one, or one Service), sorted by namespace then name. */
    serviceSnapshot(filter: { namespace?: string; service?: string }): Service[] {
      return serviceRules.list(filter);
    },

    /** The --service-cidr in force and how much of it is used. */
    serviceCidrUsage() {
      return serviceRules.usage();
    },

    /** Counts of instances by namespace/service/status, for metrics. */
    countByStatus(): { namespace: string; service: string; status: string; count: number }[] {
      const out: { namespace: string; service: string; status: string; count: number }[] = [];
      for (const [namespace, services] of namespaces) {
        for (const [service, ids] of services) {
          const counts = new Map<string, number>();
          for (const r of ids.values()) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
          for (const [status, count] of counts) out.push({ namespace, service, status, count });
        }
      }
      return out;
    },

    /**
     * Removes instances whose lease ended by now, through the same commit path as any write, so watchers see
     * DELETED/expired. At most maxExpiriesPerSweep per call; returns how many it removed.
     */
    expireDue(): number {
      const now = clock.now();
      const due = leases.takeExpired(now, maxExpiries, (r) => find(r.namespace, r.service, r.id) === r);
      if (due.length === 0) return 0;
      commit(due.map((record) => ({ type: 'DELETED' as const, reason: 'expired' as const, record })));
      options.onExpired?.(due.length);
      return due.length;
    },

    /** Writes the heartbeat times gathered since the last flush, in one transaction. */
    flushHeartbeats(): number {
      if (unsavedHeartbeats.size === 0) return 0;
      const marks = [...unsavedHeartbeats].map((r) => ({
        namespace: r.namespace,
        service: r.service,
        id: r.id,
        lastHeartbeatAt: r.lastHeartbeatAt,
      }));
      unsavedHeartbeats.clear();
      store.saveHeartbeats(marks);
      return marks.length;
    },

    eventsAfter,

    compactedRevision(): number {
      return store.compactedRevision();
    },
  };
}

export type Registry = ReturnType<typeof createRegistry>;
