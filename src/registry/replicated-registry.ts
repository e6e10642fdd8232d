// The registry's rules over a replicated store (etcd): the same API as the SQLite registry, but the store
// commits first and memory follows the store's watch, on every replica alike. Writes are compare-and-swap on
// the revision memory holds; a lost race re-reads and tries again (bounded). Leases are the store's: no lease
// heap, no self-preservation, no stall offset here (README "High availability on etcd").
import { instanceNotFound, RollcallError, serviceNotFound } from '../errors.js';
import { DEFAULTS, type Instance, type PatchInput, type RegisterInput } from '../schemas/instance.js';
import type { PutServiceInput, Service, WatchResource } from '../schemas/service.js';
import type { ReplicatedStore, StoreChange } from '../store/backend.js';
import type { WatchHub } from '../watch/hub.js';
import type { Clock } from './clock.js';
import { createInstanceIndex } from './instance-index.js';
import { createRegistryReads } from './reads.js';
import type { ProtectionStatus, Registry } from './registry.js';
import { applyChanges, sameRegistration, type RegistrationFields } from './rules.js';
import { createServiceRules, type ServiceRules } from './services.js';
import { changeScope, toApiInstance, toApiService, type InstanceRecord, type RegistryChange, type ServiceRecord } from './types.js';
import type { Cidr } from './virtual-ips.js';

export interface ReplicatedRegistryOptions {
  store: ReplicatedStore;
  hub: WatchHub;
  clock: Clock;
  serviceCidr?: Cidr;
  /** Recent changes kept in memory for resuming watchers; older ones are read from the store's history. */
  historyRing: number;
}

/**
 * Compare-and-swap attempts before a write gives up. Each lost race means another write to the same key landed,
 * so N writers racing on one key need at most N attempts; this bounds a write under a storm of them.
 */
const MAX_ATTEMPTS = 64;

function contended(what: string): RollcallError {
  return new RollcallError('store_unavailable', `${what} lost ${MAX_ATTEMPTS} races in a row with concurrent writers; retry.`);
}

const NOT_PROTECTING: ProtectionStatus = { active: false, since: null, lapsed: 0 };

export async function createReplicatedRegistry(options: ReplicatedRegistryOptions): Promise<Registry> {
  const { store, hub, clock } = options;
  const index = createInstanceIndex();
  const { find } = index;
  const api = (r: InstanceRecord): Instance => toApiInstance(r);
  const newServiceRules = (restored: ServiceRecord[]) =>
    createServiceRules({
      ...(options.serviceCidr === undefined ? {} : { cidr: options.serviceCidr }),
      restored,
      now: () => clock.now(),
      // Services change only through the store here; memory follows its watch (apply below).
      commit: () => {
        throw new Error('a replicated registry commits Services through its store');
      },
    });
  let serviceRules: ServiceRules = newServiceRules([]);
  let revision = 0;
  let started = false;

  // Recent changes for resuming watchers, oldest first; `ringFloor` is the newest revision NOT in the ring.
  let ring: RegistryChange[] = [];
  let ringFloor = 0;

  function remember(events: RegistryChange[]) {
    ring.push(...events);
    if (ring.length > options.historyRing * 2) {
      const cut = ring.length - options.historyRing;
      ringFloor = ring[cut - 1]!.revision;
      // Never split a revision: its events go out together.
      let i = cut;
      while (i < ring.length && ring[i]!.revision === ringFloor) i++;
      ring = ring.slice(i);
    }
  }

  function toEvent(change: StoreChange, at: number): RegistryChange {
    return change.kind === 'instance'
      ? { type: change.type, reason: change.reason, revision: at, instance: api(change.record) }
      : { type: change.type, reason: change.reason, revision: at, service: toApiService(change.record) };
  }

  function applyChange(change: StoreChange) {
    if (change.kind === 'instance') {
      if (change.type === 'DELETED') index.drop(change.record);
      else index.put(change.record);
    } else serviceRules.apply(change.type, change.record);
  }

  await store.start({
    reset(at, instances, services) {
      if (!started) {
        for (const r of instances) index.put(r);
        serviceRules = newServiceRules(services);
        const seeds = [
          ...instances.map((r) => ({ kind: 'instances' as const, namespace: r.namespace, service: r.service, revision: r.revision })),
          ...services.map((r) => ({ kind: 'services' as const, namespace: r.namespace, service: r.name, revision: r.revision })),
        ];
        hub.seedLastChange(seeds);
        revision = at;
        ringFloor = at;
        started = true;
        return;
      }
      // A relist after this replica's watch fell behind compaction: what changed meanwhile goes out as events of
      // the relist's revision, so watchers end up with the same state (the revisions between are gone).
      const events: RegistryChange[] = [];
      const seen = new Set<InstanceRecord>();
      for (const r of instances) {
        const old = find(r.namespace, r.service, r.id);
        if (old) seen.add(old);
        if (old && old.revision === r.revision) continue;
        events.push({ type: old ? 'MODIFIED' : 'ADDED', reason: old ? 'updated' : 'registered', revision: at, instance: api(r) });
      }
      const gone: InstanceRecord[] = [];
      for (const services of index.namespaces.values()) for (const ids of services.values()) for (const r of ids.values()) if (!seen.has(r)) gone.push(r);
      for (const r of gone) events.push({ type: 'DELETED', reason: 'expired', revision: at, instance: api(r) });
      for (const r of gone) index.drop(r);
      for (const r of instances) index.put(r);
      const before = serviceRules.list({});
      serviceRules = newServiceRules(services);
      const after = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]));
      for (const s of before) {
        const now = after.get(`${s.namespace}/${s.name}`);
        if (!now) events.push({ type: 'DELETED', reason: 'deleted', revision: at, service: s });
        else if (now.revision !== s.revision) events.push({ type: 'MODIFIED', reason: 'updated', revision: at, service: toApiService(now) });
        after.delete(`${s.namespace}/${s.name}`);
      }
      for (const s of after.values()) events.push({ type: 'ADDED', reason: 'created', revision: at, service: toApiService(s) });
      revision = at;
      // The ring cannot bridge the gap: resuming from before it reads the store's history (or is compacted).
      ring = [];
      ringFloor = at;
      hub.publish(events);
    },
    apply(at, changes) {
      for (const change of changes) applyChange(change);
      revision = at;
      const events = changes.map((c) => toEvent(c, at));
      remember(events);
      hub.publish(events);
    },
  });

  const reads = createRegistryReads({ index, services: () => serviceRules, revision: () => revision, api });
  const effectiveTtl = (ttl: number) => Math.max(ttl, store.minTtlSeconds);

  /** Renews through the store's lease; the instance as this replica now knows it, or undefined when gone. */
  async function renew(record: InstanceRecord): Promise<Instance | undefined> {
    const ttl = await store.keepAlive(record);
    if (ttl <= 0) return undefined;
    const now = clock.now();
    // Memory only, like SQLite's renewals: a heartbeat raises no revision.
    record.lastHeartbeatAt = now;
    record.expiresAt = now + ttl * 1000;
    return api(record);
  }

  function matchesFilter(e: RegistryChange, filter: { namespace?: string; service?: string; resources?: readonly WatchResource[] }): boolean {
    const scope = changeScope(e);
    if (!(filter.resources ?? ['instances']).includes(scope.kind)) return false;
    if (filter.namespace !== undefined && filter.namespace !== scope.namespace) return false;
    if (filter.service !== undefined && filter.service !== scope.service) return false;
    return true;
  }

  const registry: Registry = {
    get revision() {
      return revision;
    },
    // Writes resolve once memory applied them: nothing is ever pending here.
    settled: () => Promise.resolve(),
    // Memory changes only in whole revisions, synchronously: any moment is a settled one.
    whenSettled: async <T>(fn: () => T): Promise<T> => fn(),
    waitForRevision: (at: number, timeoutMs: number) => store.waitForRevision(at, timeoutMs),
    // Nothing is batched: every write is its own etcd transaction.
    flushNow() {},

    async register(namespace: string, service: string, id: string, input: RegisterInput) {
      let existing = find(namespace, service, id);
      const fields: RegistrationFields = applyChanges(
        { namespace, service, id, address: input.address, port: input.port, zone: null, tags: [], metadata: {}, ...DEFAULTS },
        input,
      );
      // A TTL below etcd's minimum is raised to it; the answer shows the TTL in force.
      fields.ttlSeconds = effectiveTtl(fields.ttlSeconds);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (existing && sameRegistration(existing, fields)) {
          const renewed = await renew(existing);
          if (renewed) return { instance: renewed, created: false };
          // The lease ran out just now: register anew (the compare below sees the key gone).
        }
        const now = clock.now();
        const record: InstanceRecord = {
          ...fields,
          registeredAt: existing?.registeredAt ?? now,
          lastHeartbeatAt: now,
          expiresAt: now + fields.ttlSeconds * 1000,
          revision: 0,
          createRevision: existing?.createRevision ?? 0,
          lapsedAt: null,
        };
        const result = await store.putInstance(record, 'registered', existing, false);
        if (result.ok) {
          const stamped = { ...record, revision: result.revision, createRevision: existing ? record.createRevision : result.revision };
          return { instance: api(stamped), created: !existing };
        }
        if (result.conflict === 'changed') existing = result.current;
      }
      throw contended('This registration');
    },

    async heartbeat(namespace: string, service: string, id: string) {
      const record = find(namespace, service, id);
      if (!record) throw instanceNotFound(namespace, service, id);
      const renewed = await renew(record);
      if (!renewed) throw instanceNotFound(namespace, service, id);
      return renewed;
    },

    async patch(namespace: string, service: string, id: string, input: PatchInput) {
      let existing = find(namespace, service, id);
      let freshLease = false;
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (!existing) throw instanceNotFound(namespace, service, id);
        const fields = applyChanges(existing, input);
        fields.ttlSeconds = effectiveTtl(fields.ttlSeconds);
        if (sameRegistration(existing, fields)) {
          const renewed = await renew(existing);
          if (!renewed) throw instanceNotFound(namespace, service, id);
          return renewed;
        }
        const now = clock.now();
        const record: InstanceRecord = { ...existing, ...fields, lastHeartbeatAt: now, expiresAt: now + fields.ttlSeconds * 1000, lapsedAt: null };
        // Same TTL: the key keeps its lease (and the write renews it); another TTL needs a lease of that length.
        const keepLease = !freshLease && fields.ttlSeconds === existing.ttlSeconds;
        const result = await store.putInstance(record, 'updated', existing, keepLease);
        if (result.ok) return api({ ...record, revision: result.revision });
        if (result.conflict === 'changed') existing = result.current;
        // The lease memory knew was replaced or ran out: write with a fresh one (the compare decides if it exists).
        else if (result.conflict === 'lease_gone') freshLease = true;
      }
      throw contended('This update');
    },

    async deregister(namespace: string, service: string, id: string) {
      let existing = find(namespace, service, id);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (!existing) throw instanceNotFound(namespace, service, id);
        const result = await store.deleteInstance(existing);
        if (result.ok) return;
        existing = result.conflict === 'changed' ? result.current : undefined;
      }
      throw contended('This deregistration');
    },

    ...reads,

    async putService(namespace: string, name: string, input: PutServiceInput): Promise<{ service: Service; created: boolean }> {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const plan = serviceRules.plan(namespace, name, input);
        if ('service' in plan) return { service: plan.service, created: false };
        const result = await store.putService(plan.record, plan.reason, plan.type === 'ADDED' ? 0 : plan.record.revision).catch((err: unknown) => {
          if (plan.claimed !== undefined) serviceRules.unclaim(plan.claimed);
          throw err;
        });
        if (result.ok) {
          const stamped = { ...plan.record, revision: result.revision, createRevision: plan.type === 'ADDED' ? result.revision : plan.record.createRevision };
          return { service: toApiService(stamped), created: plan.type === 'ADDED' };
        }
        if (plan.claimed !== undefined) serviceRules.unclaim(plan.claimed);
        if (result.conflict === 'ip_taken') {
          // Another replica's Service holds it (memory has not seen it yet). Asked for: refuse; allocated: next.
          if (input.virtualIP !== undefined) {
            throw new RollcallError('virtual_ip_taken', `virtualIP ${input.virtualIP} already belongs to another Service; ask for a free one or omit virtualIP to get one allocated.`);
          }
          continue;
        }
        // Another replica changed this Service: let memory catch up with it, then decide again.
        if (result.conflict === 'changed' && result.current) await store.waitForRevision(result.current.revision, 5000);
      }
      throw contended('This Service write');
    },

    async deleteService(namespace: string, name: string) {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const record = serviceRules.inNamespace(namespace).get(name);
        if (!record) throw serviceNotFound(namespace, name);
        const result = await store.deleteService(record);
        if (result.ok) return;
        // Changed or deleted by another replica: let memory catch up, then decide again.
        if (result.conflict === 'changed') await store.waitForRevision(result.current?.revision ?? revision + 1, 1000);
      }
      throw contended('This Service deletion');
    },

    /** Leases are etcd's: it expires them itself, and every replica sees the DELETE on its watch. */
    expireDue: () => 0,
    protection: () => NOT_PROTECTING,
    // etcd's leases keep running while a replica restarts: there is nothing to grant again.
    startLeases() {},
    // A stalled replica does not stop etcd's lease clocks; the other replicas keep serving heartbeats.
    pauseLeases() {},
    // Heartbeats are keep-alives: nothing to save.
    flushHeartbeats: () => 0,

    /** From the in-memory ring when it reaches back far enough, else from etcd's history (or revision_compacted). */
    async eventsAfter(filter, after, upTo, limit) {
      let source: RegistryChange[];
      if (after >= ringFloor) source = ring.filter((e) => e.revision > after && e.revision <= upTo);
      else {
        const history = await store.history(after, Math.min(upTo, ringFloor));
        source = history.flatMap((h) => h.changes.map((c) => toEvent(c, h.revision)));
        if (upTo > ringFloor) source.push(...ring.filter((e) => e.revision <= upTo));
      }
      return source.filter((e) => matchesFilter(e, filter)).slice(0, limit);
    },

    compactedRevision: () => store.compactedRevision(),
  };
  return registry;
}
