// The registry's rules: registration, leases, revisions and what counts as a change. No HTTP, no SQL.
import { instanceNotFound, RollcallError } from '../errors.js';
import { DEFAULTS, type Instance, type PatchInput, type RegisterInput } from '../schemas/instance.js';
import type { PutServiceInput, Service, WatchResource } from '../schemas/service.js';
import type { InstanceStore } from '../store/instance-store.js';
import type { WatchHub } from '../watch/hub.js';
import type { Clock } from './clock.js';
import { createInstanceIndex } from './instance-index.js';
import { createLeaseQueue } from './leases.js';
import { createRegistryReads } from './reads.js';
import { applyChanges, sameRegistration } from './rules.js';
import { createSelfPreservation, type LeaveReason, type SelfPreservationOptions } from './self-preservation.js';
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
  /** Self-preservation policy; without it lapsed leases always expire. */
  protection?: SelfPreservationOptions;
  /** Protection began or ended (after the change that caused it was published). */
  onProtection?: (change: ProtectionChange) => void;
  /** A commit failed: memory is ahead of disk. The server exits so it restarts from what is durable. */
  onFatal?: (err: unknown) => void;
  /** Where Services' virtual IPs come from (default 127.77.0.0/16). */
  serviceCidr?: Cidr;
}

export interface ProtectionStatus {
  active: boolean;
  /** ISO time protection began, while active. */
  since: string | null;
  /** Instances held lapsed now (during protection, and while they drain after it). */
  lapsed: number;
}

export interface ProtectionChange {
  active: boolean;
  /** Why it ended: renewals recovered, or it lasted the maximum. */
  reason?: LeaveReason;
  lapsed: number;
  revision: number;
}

export type { ListFilter } from './instance-index.js';

export type { NamespaceSummary, ServiceSummary } from './reads.js';

export function createRegistry(options: RegistryOptions) {
  const { store, hub, clock } = options;
  const maxExpiries = options.maxExpiriesPerSweep ?? 1000;
  const leases = createLeaseQueue();
  // Reads are served from here; the store keeps the durable copy.
  const index = createInstanceIndex();
  const { find } = index;
  const put = index.put;
  const drop = index.drop;
  // Self-preservation: the policy, the instances it holds lapsed (out of the lease heap), and how many of
  // them a sweep may expire once protection ended (a drain spread over about ten sweeps, never all at once).
  const preservation = options.protection ? createSelfPreservation(options.protection) : undefined;
  const lapsed = new Set<InstanceRecord>();
  let drainPerSweep = 0;
  // Heartbeats only touch memory; these are written to SQLite in batches by flushHeartbeats().
  const unsavedHeartbeats = new Set<InstanceRecord>();
  let revision = store.revision();

  // Lease time = wall time minus every stall the process sat out (pauseLeases). Lease deadlines
  // (record.expiresAt, the heap) are kept in lease time, so discounting a stall pushes every deadline back
  // at once, without touching a record; the API shows them in wall time (api()).
  let leaseOffset = 0;
  const leaseNow = () => clock.now() - leaseOffset;
  const api = (r: InstanceRecord): Instance => toApiInstance(r, leaseOffset);

  // Restore: every instance gets a fresh full TTL, so a registry restart never evicts in a herd. The TTL is
  // granted again by startLeases() once clients can reach the server: loading a large database and building
  // the app take seconds that must not eat the grace.
  const restoredAt = leaseNow();
  let restored: InstanceRecord[] | undefined = [];
  for (const row of store.loadInstances()) {
    const record: InstanceRecord = { ...row, expiresAt: restoredAt + row.ttlSeconds * 1000, lapsedAt: null };
    put(record);
    leases.add(record);
    restored.push(record);
  }
  hub.seedLastChange(store.lastChangeByService());

  // Group commit. The first change of an event-loop turn opens a transaction; every change of that turn joins
  // it (each in its own savepoint); one COMMIT (one fsync) ends it on setImmediate. Only then are the events
  // published and the writers answered (they await settled()). Nothing is published that did not commit,
  // nothing committed is missed, and synchronous=FULL costs one fsync per batch instead of one per write.
  let committedRevision = revision;
  //
  // A batch that fails (the disk is full) is rolled back on disk AND in memory: each change keeps what it
  // replaced (`undo`), so memory never runs ahead of disk and the registry keeps serving. Its writers get the
  // error (503 storage_full), nothing of it is published.
  interface Batch {
    events: RegistryChange[];
    notices: (() => void)[];
    undo: { previous: InstanceRecord | undefined; next: InstanceRecord }[];
    /** Service changes of the batch, undone in reverse order when it fails. */
    undoServices: (() => void)[];
    startRevision: number;
    done: Promise<void>;
    resolve: () => void;
    reject: (err: unknown) => void;
  }
  let batch: Batch | undefined;

  function openBatch(): Batch {
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
    batch = { events: [], notices: [], undo: [], undoServices: [], startRevision: revision, done, resolve, reject };
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
      failBatch(current, err);
      return;
    }
    committedRevision = revision;
    hub.publish(current.events);
    for (const notice of current.notices) notice();
    current.resolve();
  }

  /** Rolls a batch back on disk and in memory, and fails its writers. Returns the error they get. */
  function failBatch(failed: Batch, err: unknown): unknown {
    if (batch === failed) batch = undefined;
    store.rollbackBatch();
    for (let i = failed.undo.length - 1; i >= 0; i--) {
      const { previous, next } = failed.undo[i]!;
      lapsed.delete(next);
      if (previous === undefined) {
        drop(next);
        continue;
      }
      put(previous);
      if (previous.lapsedAt === null) leases.add(previous);
      else lapsed.add(previous);
    }
    for (let i = failed.undoServices.length - 1; i >= 0; i--) failed.undoServices[i]!();
    revision = failed.startRevision;
    const answer = storageError(err);
    failed.reject(answer);
    for (const notice of failed.notices) notice();
    // A full disk is survivable: memory is back to what is durable. Anything else (an I/O error) leaves the
    // disk in doubt: stop, and restart from what is durable.
    if (!(answer instanceof RollcallError)) options.onFatal?.(err);
    return answer;
  }

  /** value, once the changes made so far are committed and published; rejects when their batch failed. */
  async function committed<T>(value: T): Promise<T> {
    if (batch) await batch.done;
    return value;
  }

  /** Runs fn after the changes made so far are published (at once when none are pending). */
  function afterCommit(fn: () => void) {
    if (batch) batch.notices.push(fn);
    else fn();
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
      return { record: stamped, event: { type, reason, revision: next, instance: api(stamped) } };
    });
    const open = openBatch();
    try {
      store.commit(changes);
    } catch (err) {
      // SQLite may have rolled back the whole transaction (it does on SQLITE_FULL): the batch is lost.
      throw failBatch(open, err);
    }
    revision = next;
    for (const { record, event } of changes) {
      const previous = find(record.namespace, record.service, record.id);
      open.undo.push({ previous, next: record });
      if (previous) {
        unsavedHeartbeats.delete(previous);
        lapsed.delete(previous);
      }
      if (event.type === 'DELETED') drop(record);
      else {
        put(record);
        // A lapsed instance waits outside the heap: its deadline is past, it would come due on every sweep.
        if (record.lapsedAt === null) leases.add(record);
        else lapsed.add(record);
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
    try {
      store.commit([{ event, record: stamped }]);
    } catch (err) {
      throw failBatch(open, err);
    }
    revision = next;
    open.undoServices.push(serviceRules.apply(type, stamped));
    open.events.push(event);
    return event;
  }

  const serviceRules = createServiceRules({
    ...(options.serviceCidr === undefined ? {} : { cidr: options.serviceCidr }),
    restored: store.loadServices(),
    now: () => clock.now(),
    commit: commitService,
  });

  const reads = createRegistryReads({ index, services: () => serviceRules, revision: () => committedRevision, api });

  /**
   * Event log access for watch resumption: changes with after < revision <= upTo, oldest first, instance events
   * only unless `resources` says otherwise. Async like the etcd backend's, whose history is etcd's.
   */
  async function eventsAfter(
    filter: { namespace?: string; service?: string; resources?: readonly WatchResource[] },
    after: number,
    upTo: number,
    limit: number,
  ): Promise<RegistryChange[]> {
    return store.readEvents(filter, after, upTo, limit);
  }

  /**
   * Renews record's lease and returns the instance as it now is. A lapsed instance that renews is back to
   * normal: that is a change (MODIFIED, reason recovered), so watchers drop its flag.
   */
  function renew(record: InstanceRecord, now: number): Instance {
    const expiresAt = now - leaseOffset + record.ttlSeconds * 1000;
    if (record.lapsedAt !== null) {
      const recovered: InstanceRecord = { ...record, lastHeartbeatAt: now, expiresAt, lapsedAt: null };
      const [event] = commit([{ type: 'MODIFIED', reason: 'recovered', record: recovered }]);
      return event!.instance;
    }
    record.lastHeartbeatAt = now;
    record.expiresAt = expiresAt;
    unsavedHeartbeats.add(record);
    return api(record);
  }

  function protectionChanged(active: boolean, reason?: LeaveReason) {
    afterCommit(() => {
      const change: ProtectionChange = { active, lapsed: lapsed.size, revision: committedRevision, ...(reason ? { reason } : {}) };
      hub.broadcast({ type: 'PROTECTION', active, revision: committedRevision });
      options.onProtection?.(change);
    });
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
      // A failed batch (disk full) is rolled back in memory too: what is left is committed all the same.
      while (batch) await batch.done.catch(() => {});
      return fn();
    },

    /**
     * Resolves true once the committed revision reached `revision`, false after timeoutMs (list minRevision;
     * on etcd a replica's memory may lag another's, here only a later write can get there).
     */
    waitForRevision(revision: number, timeoutMs: number): Promise<boolean> {
      return waitForRevisionVia(hub, () => committedRevision, revision, timeoutMs);
    },

    /** Commits an open batch now (shutdown). */
    flushNow() {
      flushBatch();
    },

    /** PUT: creates (created=true) or replaces a registration. An identical PUT only renews the lease. */
    async register(namespace: string, service: string, id: string, input: RegisterInput): Promise<{ instance: Instance; created: boolean }> {
      const now = clock.now();
      const existing = find(namespace, service, id);
      const fields = applyChanges(
        { namespace, service, id, address: input.address, port: input.port, zone: null, tags: [], metadata: {}, ...DEFAULTS },
        input,
      );
      if (existing && sameRegistration(existing, fields)) {
        return committed({ instance: renew(existing, now), created: false });
      }
      const record: InstanceRecord = {
        ...fields,
        // A replacement keeps its identity: first registration time and create revision.
        registeredAt: existing?.registeredAt ?? now,
        lastHeartbeatAt: now,
        expiresAt: now - leaseOffset + fields.ttlSeconds * 1000,
        revision: 0,
        createRevision: existing?.createRevision ?? 0,
        lapsedAt: null,
      };
      const [event] = commit([{ type: existing ? 'MODIFIED' : 'ADDED', reason: 'registered', record }]);
      return committed({ instance: event!.instance, created: !existing });
    },

    /** Renews the lease. Unknown or expired instances are not found, so the caller registers again. */
    async heartbeat(namespace: string, service: string, id: string): Promise<Instance> {
      const record = find(namespace, service, id);
      if (!record) throw instanceNotFound(namespace, service, id);
      return committed(renew(record, clock.now()));
    },

    /** Partial update; also renews the lease (a write from the instance is proof of life). */
    async patch(namespace: string, service: string, id: string, input: PatchInput): Promise<Instance> {
      const existing = find(namespace, service, id);
      if (!existing) throw instanceNotFound(namespace, service, id);
      const now = clock.now();
      const fields = applyChanges(existing, input);
      if (sameRegistration(existing, fields)) return committed(renew(existing, now));
      const record: InstanceRecord = {
        ...existing,
        ...fields,
        lastHeartbeatAt: now,
        expiresAt: now - leaseOffset + fields.ttlSeconds * 1000,
        lapsedAt: null,
      };
      return committed(commit([{ type: 'MODIFIED', reason: 'updated', record }])[0]!.instance);
    },

    async deregister(namespace: string, service: string, id: string): Promise<void> {
      const existing = find(namespace, service, id);
      if (!existing) throw instanceNotFound(namespace, service, id);
      commit([{ type: 'DELETED', reason: 'deregistered', record: existing }]);
      await committed(undefined);
    },

    ...reads,

    /** PUT a Service: created=true when new. An identical PUT changes nothing (no revision, no event). */
    async putService(namespace: string, name: string, input: PutServiceInput): Promise<{ service: Service; created: boolean }> {
      return committed(serviceRules.put(namespace, name, input));
    },

    /** Deletes the Service and releases its address; the service's instances stay registered. */
    async deleteService(namespace: string, name: string): Promise<void> {
      serviceRules.delete(namespace, name);
      await committed(undefined);
    },

    /**
     * Removes instances whose lease ended by now, through the same commit path as any write, so watchers see
     * DELETED/expired. At most maxExpiriesPerSweep per call; returns how many it removed.
     *
     * Self-preservation: when the lapses pass the threshold, the instances that lapse are kept and flagged
     * instead (MODIFIED, reason lapsed) until protection ends; then they expire a bounded few per sweep.
     */
    expireDue(): number {
      const now = leaseNow();
      const due = leases.takeExpired(now, maxExpiries, (r) => find(r.namespace, r.service, r.id) === r);
      const drafts: { type: 'DELETED' | 'MODIFIED'; reason: 'expired' | 'lapsed'; record: InstanceRecord }[] = [];
      let entered = false;
      if (preservation) {
        preservation.prune(now);
        // While the last protection's lapsed still drain, their lapses must not start it again.
        if (lapsed.size === 0 && preservation.shouldEnter(due.length, index.size)) {
          preservation.enter(now);
          entered = true;
        }
      }
      if (preservation?.active) {
        const at = clock.now();
        for (const record of due) drafts.push({ type: 'MODIFIED', reason: 'lapsed', record: { ...record, lapsedAt: at } });
      } else {
        for (const record of due) drafts.push({ type: 'DELETED', reason: 'expired', record });
        preservation?.noteExpired(due.length, now);
      }
      try {
        commit(drafts);
      } catch (err) {
        // Not committed (disk full): the due leases go back in the heap for a later sweep.
        for (const record of due) leases.add(record);
        if (entered) preservation!.leave();
        throw err;
      }
      // Announced after the lapses that caused it, so its revision is theirs.
      if (entered) protectionChanged(true);
      if (preservation?.active) {
        const reason = preservation.shouldLeave(lapsed.size, index.size, now);
        if (reason) {
          preservation.leave();
          drainPerSweep = Math.max(1, Math.ceil(lapsed.size / 10));
          protectionChanged(false, reason);
        }
      }
      let expired = drafts.filter((d) => d.type === 'DELETED').length;
      if (!preservation?.active && lapsed.size > 0) {
        const drain: InstanceRecord[] = [];
        for (const record of lapsed) {
          if (drain.length >= Math.min(drainPerSweep, maxExpiries)) break;
          drain.push(record);
        }
        commit(drain.map((record) => ({ type: 'DELETED' as const, reason: 'expired' as const, record })));
        expired += drain.length;
      }
      if (expired > 0) options.onExpired?.(expired);
      return expired;
    },

    /** Whether self-preservation holds lapsed instances now. */
    protection(): ProtectionStatus {
      const since = preservation?.since;
      return {
        active: since !== undefined,
        since: since === undefined ? null : new Date(since + leaseOffset).toISOString(),
        lapsed: lapsed.size,
      };
    },

    /**
     * The server accepts connections now: every restored instance gets its full TTL from this moment (once;
     * later calls do nothing). Heap entries stay where they are; a record found renewed when its old entry
     * surfaces is re-queued at its real deadline.
     */
    startLeases(): void {
      if (!restored) return;
      const now = leaseNow();
      for (const record of restored) {
        if (find(record.namespace, record.service, record.id) !== record) continue;
        record.expiresAt = Math.max(record.expiresAt, now + record.ttlSeconds * 1000);
      }
      restored = undefined;
    },

    /**
     * The process did not run for ms (a GC pause, CPU starvation, SIGSTOP): nobody could renew meanwhile, so
     * that time does not count against any lease. Every deadline moves back by ms.
     */
    pauseLeases(ms: number): void {
      if (ms > 0) leaseOffset += ms;
    },

    /** Writes the heartbeat times gathered since the last flush, in one transaction. */
    flushHeartbeats(): number {
      if (unsavedHeartbeats.size === 0) return 0;
      const pending = [...unsavedHeartbeats];
      const marks = pending.map((r) => ({
        namespace: r.namespace,
        service: r.service,
        id: r.id,
        lastHeartbeatAt: r.lastHeartbeatAt,
      }));
      unsavedHeartbeats.clear();
      try {
        store.saveHeartbeats(marks);
      } catch (err) {
        // Kept for the next flush (a full disk may have room again by then).
        for (const r of pending) unsavedHeartbeats.add(r);
        throw storageError(err);
      }
      return marks.length;
    },

    eventsAfter,

    compactedRevision(): number {
      return store.compactedRevision();
    },
  };
}

export type Registry = ReturnType<typeof createRegistry>;

/** Waits for a published change at or past `revision`, by the hub every backend publishes through. */
export function waitForRevisionVia(hub: WatchHub, current: () => number, revision: number, timeoutMs: number): Promise<boolean> {
  if (revision <= current()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const unsubscribe = hub.subscribe({ resources: ['instances', 'services'] }, (e) => {
      if (e.event.revision >= revision) finish(true);
    });
    const timer = setTimeout(() => finish(current() >= revision), timeoutMs);
    function finish(ok: boolean) {
      clearTimeout(timer);
      unsubscribe();
      resolve(ok);
    }
  });
}

/** SQLite's "disk full" becomes the API's storage_full; other storage errors stay what they are. */
function storageError(err: unknown): unknown {
  if ((err as { code?: unknown } | null)?.code === 'SQLITE_FULL') {
    return new RollcallError(
      'storage_full',
      "The registry's disk is full: this write was not saved. Reads, watches and heartbeats still work; writes resume once space is freed.",
    );
  }
  return err;
}
