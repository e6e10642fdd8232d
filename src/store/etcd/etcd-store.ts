// The etcd backend: keys, transactions with compare-and-swap, leases with one batched keep-alive stream, and the
// one watch (with previous values) that feeds this replica's memory. Every write is one transaction, so one
// etcd revision; the registry's revision is etcd's.
//
// Keys under the prefix:
//   <prefix>/instances/<namespace>/<service>/<id>   the registration (JSON), on an etcd lease of its TTL
//   <prefix>/services/<namespace>/<name>            a Service (JSON)
//   <prefix>/vips/<ip>                              the claim on a virtual IP, created with its Service
//   <prefix>/meta/deregistered                      written in the same transaction as a deregistration, so the
//                                                   watch tells it from an expiry (a lease's delete has none)
import type { Etcd3, ICompare, IKeyValue, IRequestOp, IWatchRequest, IWatchResponse, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, IEvent } from 'etcd3';
import { RollcallError } from '../../errors.js';
import type { InstanceRecord, ServiceRecord } from '../../registry/types.js';
import type { EventReason } from '../../schemas/instance.js';
import type { ServicePort, ServiceEventReason } from '../../schemas/service.js';
import type { ReplicatedStore, StoreChange, StoreSink, WriteResult } from '../backend.js';

export interface EtcdStoreOptions {
  prefix: string;
  /** Bound on every call: a write that etcd does not answer in time fails with store_unavailable. */
  timeoutMs: number;
  onError?: (err: unknown, what: string) => void;
}

interface InstanceValue {
  address: string;
  port: number;
  status: InstanceRecord['status'];
  weight: number;
  zone: string | null;
  tags: string[];
  metadata: Record<string, string>;
  ttlSeconds: number;
  registeredAt: number;
  lastHeartbeatAt: number;
  /** Why this version was written: ADDED/MODIFIED events carry it. */
  reason: 'registered' | 'updated';
}

interface ServiceValue {
  virtualIP: string;
  ports: ServicePort[];
  createdAt: number;
  reason: 'created' | 'updated';
}

type Decoded =
  | { kind: 'instance'; key: string; record: InstanceRecord; reason: InstanceValue['reason'] }
  | { kind: 'service'; key: string; record: ServiceRecord; reason: ServiceValue['reason'] };

export function storeUnavailable(err: unknown): RollcallError {
  if (err instanceof RollcallError) return err;
  return new RollcallError(
    'store_unavailable',
    `etcd did not answer (${(err as Error)?.message ?? String(err)}); nothing was written. Retry, on this replica or another.`,
  );
}

/** Rejects with store_unavailable when p takes longer than ms. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(storeUnavailable(new Error(`${what} timed out after ${ms} ms`))), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function createEtcdStore(client: Etcd3, options: EtcdStoreOptions): ReplicatedStore & { minTtl(): Promise<number> } {
  const { prefix, timeoutMs } = options;
  const root = `${prefix}/`;
  // The end of the prefix range: "/" + 1 is "0".
  const rootEnd = Buffer.from(`${prefix}0`);
  const key = {
    instance: (r: { namespace: string; service: string; id: string }) => `${root}instances/${r.namespace}/${r.service}/${r.id}`,
    service: (r: { namespace: string; name: string }) => `${root}services/${r.namespace}/${r.name}`,
    vip: (ip: string) => `${root}vips/${ip}`,
    deregistered: `${root}meta/deregistered`,
  };
  const b = (s: string) => Buffer.from(s);

  let sink: StoreSink | undefined;
  let applied = 0;
  let compacted = 0;
  let connected = false;
  let closed = false;
  let minTtlSeconds = 1;
  // The etcd lease of every instance, from the watch (a heartbeat on any replica renews the lease in the value).
  const leases = new Map<string, string>();
  let waiters: { revision: number; resolve: (ok: boolean) => void }[] = [];
  let watchStream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  function decode(kv: IKeyValue): Decoded | undefined {
    const k = kv.key.toString();
    if (!k.startsWith(root)) return undefined;
    const parts = k.slice(root.length).split('/');
    if (parts[0] === 'instances' && parts.length === 4) {
      const v = JSON.parse(kv.value.toString()) as InstanceValue;
      const record: InstanceRecord = {
        namespace: parts[1]!,
        service: parts[2]!,
        id: parts[3]!,
        address: v.address,
        port: v.port,
        status: v.status,
        weight: v.weight,
        zone: v.zone,
        tags: v.tags,
        metadata: v.metadata,
        ttlSeconds: v.ttlSeconds,
        registeredAt: v.registeredAt,
        lastHeartbeatAt: v.lastHeartbeatAt,
        // As of the last write or the last heartbeat this replica served: renewals on other replicas raise no event.
        expiresAt: v.lastHeartbeatAt + v.ttlSeconds * 1000,
        revision: Number(kv.mod_revision),
        createRevision: Number(kv.create_revision),
        lapsedAt: null,
      };
      return { kind: 'instance', key: k, record, reason: v.reason };
    }
    if (parts[0] === 'services' && parts.length === 3) {
      const v = JSON.parse(kv.value.toString()) as ServiceValue;
      const record: ServiceRecord = {
        namespace: parts[1]!,
        name: parts[2]!,
        virtualIP: v.virtualIP,
        ports: v.ports,
        createdAt: v.createdAt,
        revision: Number(kv.mod_revision),
        createRevision: Number(kv.create_revision),
      };
      return { kind: 'service', key: k, record, reason: v.reason };
    }
    return undefined;
  }

  function advance(revision: number) {
    if (revision <= applied) return;
    applied = revision;
    if (waiters.length === 0) return;
    const due = waiters.filter((w) => w.revision <= revision);
    waiters = waiters.filter((w) => w.revision > revision);
    for (const w of due) w.resolve(true);
  }

  /** The whole prefix at one revision: start-up, and a relist after the watch fell behind compaction. */
  async function load(): Promise<void> {
    const res = await withTimeout(client.kv.range({ key: b(root), range_end: rootEnd }), timeoutMs, 'loading the registry');
    const revision = Number(res.header.revision);
    const instances: InstanceRecord[] = [];
    const services: ServiceRecord[] = [];
    leases.clear();
    for (const kv of res.kvs) {
      const d = decode(kv);
      if (d?.kind === 'instance') {
        instances.push(d.record);
        leases.set(d.key, kv.lease);
      } else if (d?.kind === 'service') services.push(d.record);
    }
    sink!.reset(revision, instances, services);
    // Not through advance(): a relist may land below a write some caller waits for; it arrives by the watch.
    applied = Math.max(applied, revision);
    advance(revision);
  }

  /** The changes of one revision's events. A delete is a deregistration when the marker was written with it. */
  function changesOf(events: IEvent[]): StoreChange[] {
    const deregistration = events.some((e) => e.type === 'Put' && e.kv.key.toString() === key.deregistered);
    const changes: StoreChange[] = [];
    for (const e of events) {
      if (e.type === 'Put') {
        const d = decode(e.kv);
        if (!d) continue;
        // version 1 = the key was created at this revision (its prev_kv would be absent too).
        const type = e.kv.version === '1' ? 'ADDED' : 'MODIFIED';
        if (d.kind === 'instance') {
          leases.set(d.key, e.kv.lease);
          changes.push({ kind: 'instance', type, reason: d.reason, record: d.record });
        } else changes.push({ kind: 'service', type, reason: d.reason, record: d.record });
        continue;
      }
      const k = e.kv.key.toString();
      leases.delete(k);
      // Without the previous value (it was compacted before the watch read it) there is no record to report.
      const prev = e.prev_kv ? decode(e.prev_kv) : undefined;
      if (!prev) {
        if (k.startsWith(`${root}instances/`) || k.startsWith(`${root}services/`)) options.onError?.(new Error(`delete of ${k} without its previous value`), 'watch');
        continue;
      }
      if (prev.kind === 'instance') {
        const reason: EventReason = deregistration ? 'deregistered' : 'expired';
        changes.push({ kind: 'instance', type: 'DELETED', reason, record: prev.record });
      } else {
        const reason: ServiceEventReason = 'deleted';
        changes.push({ kind: 'service', type: 'DELETED', reason, record: prev.record });
      }
    }
    return changes;
  }

  /** Splits a watch response into revisions, in order (etcd never splits one revision over two responses). */
  function byRevision(events: IEvent[]): { revision: number; events: IEvent[] }[] {
    const out: { revision: number; events: IEvent[] }[] = [];
    for (const e of events) {
      const revision = Number(e.kv.mod_revision);
      const last = out[out.length - 1];
      if (last && last.revision === revision) last.events.push(e);
      else out.push({ revision, events: [e] });
    }
    return out;
  }

  function onWatch(res: IWatchResponse) {
    if (res.created && !res.canceled) {
      connected = true;
      backoffMs = 100;
      return;
    }
    if (res.canceled) {
      const compactRevision = Number(res.compact_revision ?? 0);
      dropWatch();
      if (compactRevision > 0) {
        // This replica was away longer than the history etcd keeps: relist, then watch from there.
        compacted = Math.max(compacted, compactRevision);
        void load().then(openWatch, (err: unknown) => {
          options.onError?.(err, 'relist');
          scheduleReconnect();
        });
      } else scheduleReconnect();
      return;
    }
    for (const { revision, events } of byRevision(res.events)) {
      if (revision <= applied) continue;
      sink!.apply(revision, changesOf(events));
      advance(revision);
    }
  }

  function dropWatch() {
    connected = false;
    const s = watchStream;
    watchStream = undefined;
    // Its handlers check that they belong to the current stream, so what it still emits is ignored.
    s?.cancel();
  }

  function scheduleReconnect() {
    dropWatch();
    if (closed || reconnectTimer) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      openWatch();
    }, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 2000);
  }

  /** One watch over the prefix from the revision after the last applied one: nothing lost across reconnects. */
  function openWatch() {
    if (closed) return;
    client.watchClient.watch().then(
      (stream) => {
        if (closed) {
          stream.end();
          return;
        }
        watchStream = stream;
        const current = () => watchStream === stream;
        stream.on('data', (res) => {
          if (current()) onWatch(res);
        });
        stream.on('error', (err: unknown) => {
          if (!current()) return;
          options.onError?.(err, 'watch');
          scheduleReconnect();
        });
        stream.on('end', () => {
          if (current()) scheduleReconnect();
        });
        stream.write({ create_request: { key: b(root), range_end: rootEnd, start_revision: applied + 1, prev_kv: true } });
      },
      (err: unknown) => {
        options.onError?.(err, 'watch');
        scheduleReconnect();
      },
    );
  }

  async function txn(compare: ICompare[], success: IRequestOp[], failure: IRequestOp[], what: string) {
    try {
      return await withTimeout(client.kv.txn({ compare, success, failure }), timeoutMs, what);
    } catch (err) {
      if (/lease not found/i.test((err as Error).message)) return 'lease_gone' as const;
      throw storeUnavailable(err);
    }
  }

  /** After a committed write: resolves once memory applied it (read-your-writes on this replica). */
  async function committed(revision: number): Promise<{ ok: true; revision: number }> {
    // Committed whatever happens next: a slow watch delays the answer, never turns it into an error.
    await waitForRevision(revision, timeoutMs);
    return { ok: true, revision };
  }

  function waitForRevision(revision: number, ms: number): Promise<boolean> {
    if (revision <= applied) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve: (ok: boolean) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => {
        waiters = waiters.filter((w) => w !== waiter);
        resolve(false);
      }, ms);
      waiters.push(waiter);
    });
  }

  function revokeLater(lease: string | undefined) {
    if (lease === undefined || lease === '0') return;
    // Best effort: a lease that holds no key any more only costs etcd memory until it runs out.
    client.leaseClient.leaseRevoke({ ID: lease }).catch(() => {});
  }

  // Heartbeats: one keep-alive stream for every lease of this replica; answers come back in order per lease.
  let keepAliveStream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  let keepAliveOpening: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> | undefined;
  const renewing = new Map<string, ((ttl: number | Error) => void)[]>();

  function failKeepAlives(err: Error) {
    keepAliveStream = undefined;
    for (const queue of renewing.values()) for (const done of queue) done(err);
    renewing.clear();
  }

  function keepAliveChannel() {
    if (keepAliveStream) return Promise.resolve(keepAliveStream);
    keepAliveOpening ??= client.leaseClient.leaseKeepAlive().then(
      (stream) => {
        keepAliveOpening = undefined;
        stream.on('data', (res: ILeaseKeepAliveResponse) => {
          const queue = renewing.get(res.ID);
          const done = queue?.shift();
          if (queue?.length === 0) renewing.delete(res.ID);
          done?.(Number(res.TTL));
        });
        const broken = (err?: unknown) => {
          if (keepAliveStream !== stream) return;
          failKeepAlives(err instanceof Error ? err : new Error('the keep-alive stream ended'));
        };
        stream.on('error', broken);
        stream.on('end', broken);
        keepAliveStream = stream;
        return stream;
      },
      (err: unknown) => {
        keepAliveOpening = undefined;
        throw err;
      },
    );
    return keepAliveOpening;
  }

  const store = {
    get minTtlSeconds() {
      return minTtlSeconds;
    },
    get revision() {
      return applied;
    },
    get available() {
      return connected;
    },

    /** The smallest TTL etcd grants (it raises shorter ones): asked once, by granting and revoking a 1 s lease. */
    async minTtl(): Promise<number> {
      const grant = await withTimeout(client.leaseClient.leaseGrant({ TTL: 1 }), timeoutMs, 'granting a lease');
      revokeLater(grant.ID);
      minTtlSeconds = Math.max(1, Number(grant.TTL));
      return minTtlSeconds;
    },

    async start(s: StoreSink) {
      sink = s;
      await store.minTtl();
      await load();
      openWatch();
    },

    waitForRevision,

    async putInstance(record: InstanceRecord, reason: 'registered' | 'updated', expected: number, keepLease: boolean): Promise<WriteResult<InstanceRecord>> {
      const k = key.instance(record);
      const current = leases.get(k);
      let lease: string;
      if (keepLease) {
        if (current === undefined) return { ok: false, conflict: 'lease_gone' };
        lease = current;
      } else {
        try {
          const grant = await withTimeout(client.leaseClient.leaseGrant({ TTL: record.ttlSeconds }), timeoutMs, 'granting a lease');
          lease = grant.ID;
        } catch (err) {
          throw storeUnavailable(err);
        }
      }
      const value: InstanceValue = {
        address: record.address,
        port: record.port,
        status: record.status,
        weight: record.weight,
        zone: record.zone,
        tags: record.tags,
        metadata: record.metadata,
        ttlSeconds: record.ttlSeconds,
        registeredAt: record.registeredAt,
        lastHeartbeatAt: record.lastHeartbeatAt,
        reason,
      };
      const compare: ICompare =
        expected === 0
          ? { key: b(k), target: 'Create', result: 'Equal', create_revision: 0 }
          : { key: b(k), target: 'Mod', result: 'Equal', mod_revision: expected };
      const res = await txn([compare], [{ request_put: { key: b(k), value: b(JSON.stringify(value)), lease } }], [{ request_range: { key: b(k) } }], 'writing an instance');
      if (res === 'lease_gone') return { ok: false, conflict: 'lease_gone' };
      if (!res.succeeded) {
        if (!keepLease) revokeLater(lease);
        const kv = res.responses[0]?.response_range.kvs[0];
        const d = kv ? decode(kv) : undefined;
        return { ok: false, conflict: 'changed', current: d?.kind === 'instance' ? d.record : undefined };
      }
      // The lease the key had before this write holds nothing now.
      if (!keepLease && expected !== 0) revokeLater(current);
      return committed(Number(res.header.revision));
    },

    async deleteInstance(record: InstanceRecord): Promise<WriteResult<InstanceRecord>> {
      const k = key.instance(record);
      const lease = leases.get(k);
      const res = await txn(
        [{ key: b(k), target: 'Mod', result: 'Equal', mod_revision: record.revision }],
        [{ request_delete_range: { key: b(k) } }, { request_put: { key: b(key.deregistered), value: b(k) } }],
        [{ request_range: { key: b(k) } }],
        'deleting an instance',
      );
      if (res === 'lease_gone') return { ok: false, conflict: 'lease_gone' };
      if (!res.succeeded) {
        const kv = res.responses[0]?.response_range.kvs[0];
        const d = kv ? decode(kv) : undefined;
        return { ok: false, conflict: 'changed', current: d?.kind === 'instance' ? d.record : undefined };
      }
      revokeLater(lease);
      return committed(Number(res.header.revision));
    },

    async keepAlive(record: InstanceRecord): Promise<number> {
      const lease = leases.get(key.instance(record));
      if (lease === undefined || lease === '0') return 0;
      let stream;
      try {
        stream = await withTimeout(keepAliveChannel(), timeoutMs, 'opening the keep-alive stream');
      } catch (err) {
        throw storeUnavailable(err);
      }
      const answer = new Promise<number>((resolve, reject) => {
        let queue = renewing.get(lease);
        if (!queue) renewing.set(lease, (queue = []));
        queue.push((ttl) => (typeof ttl === 'number' ? resolve(ttl) : reject(storeUnavailable(ttl))));
      });
      stream.write({ ID: lease });
      try {
        return await withTimeout(answer, timeoutMs, 'renewing a lease');
      } catch (err) {
        // A stream that does not answer is broken: the next heartbeat opens a new one.
        if (keepAliveStream === stream) {
          failKeepAlives(err as Error);
          stream.end();
        }
        throw err;
      }
    },

    async putService(record: ServiceRecord, reason: 'created' | 'updated', expected: number): Promise<WriteResult<ServiceRecord>> {
      const k = key.service(record);
      const value: ServiceValue = { virtualIP: record.virtualIP, ports: record.ports, createdAt: record.createdAt, reason };
      const compare: ICompare[] =
        expected === 0
          ? [
              { key: b(k), target: 'Create', result: 'Equal', create_revision: 0 },
              // Two replicas never hand out one address: the claim key must not exist yet.
              { key: b(key.vip(record.virtualIP)), target: 'Create', result: 'Equal', create_revision: 0 },
            ]
          : [{ key: b(k), target: 'Mod', result: 'Equal', mod_revision: expected }];
      const success: IRequestOp[] = [{ request_put: { key: b(k), value: b(JSON.stringify(value)) } }];
      if (expected === 0) success.push({ request_put: { key: b(key.vip(record.virtualIP)), value: b(`${record.namespace}/${record.name}`) } });
      const res = await txn(compare, success, [{ request_range: { key: b(k) } }], 'writing a Service');
      if (res === 'lease_gone') throw storeUnavailable(new Error('unexpected lease error on a Service'));
      if (!res.succeeded) {
        const kv = res.responses[0]?.response_range.kvs[0];
        const d = kv ? decode(kv) : undefined;
        if (expected === 0 && !d) return { ok: false, conflict: 'ip_taken' };
        return { ok: false, conflict: 'changed', current: d?.kind === 'service' ? d.record : undefined };
      }
      return committed(Number(res.header.revision));
    },

    async deleteService(record: ServiceRecord): Promise<WriteResult<ServiceRecord>> {
      const k = key.service(record);
      const res = await txn(
        [{ key: b(k), target: 'Mod', result: 'Equal', mod_revision: record.revision }],
        [{ request_delete_range: { key: b(k) } }, { request_delete_range: { key: b(key.vip(record.virtualIP)) } }],
        [{ request_range: { key: b(k) } }],
        'deleting a Service',
      );
      if (res === 'lease_gone') throw storeUnavailable(new Error('unexpected lease error on a Service'));
      if (!res.succeeded) {
        const kv = res.responses[0]?.response_range.kvs[0];
        const d = kv ? decode(kv) : undefined;
        return { ok: false, conflict: 'changed', current: d?.kind === 'service' ? d.record : undefined };
      }
      return committed(Number(res.header.revision));
    },

    /**
     * etcd's MVCC history between two revisions, read by a watch of its own from after + 1 (etcd has no
     * "range over history"); ends at upTo, which is a revision of this prefix that memory already applied.
     */
    async history(after: number, upTo: number): Promise<{ revision: number; changes: StoreChange[] }[]> {
      if (upTo <= after) return [];
      let stream: IDuplexStream<IWatchRequest, IWatchResponse>;
      try {
        stream = await withTimeout(client.watchClient.watch(), timeoutMs, 'reading history');
      } catch (err) {
        throw storeUnavailable(err);
      }
      const out: { revision: number; changes: StoreChange[] }[] = [];
      let finished = false;
      const reading = new Promise<void>((resolve, reject) => {
        stream.on('data', (res: IWatchResponse) => {
          if (finished || (res.created && !res.canceled)) return;
          if (res.canceled) {
            const compactRevision = Number(res.compact_revision ?? 0);
            if (compactRevision > 0) {
              compacted = Math.max(compacted, compactRevision);
              reject(
                new RollcallError(
                  'revision_compacted',
                  `sinceRevision ${after} is older than etcd's retained history (compacted up to ${compactRevision}). List again and watch from the listed revision.`,
                ),
              );
            } else reject(storeUnavailable(new Error(res.cancel_reason || 'history watch canceled')));
            return;
          }
          for (const group of byRevision(res.events)) {
            if (group.revision > upTo) return resolve();
            // Only the instance and Service keys: the leases map belongs to the live watch, not to history.
            out.push({ revision: group.revision, changes: historyChanges(group.events) });
            if (group.revision === upTo) return resolve();
          }
        });
        stream.on('error', (err: unknown) => {
          if (!finished) reject(storeUnavailable(err));
        });
        stream.on('end', () => {
          if (!finished) reject(storeUnavailable(new Error('history watch ended')));
        });
      });
      stream.write({ create_request: { key: b(root), range_end: rootEnd, start_revision: after + 1, prev_kv: true } });
      try {
        await withTimeout(reading, timeoutMs, 'reading history');
      } finally {
        finished = true;
        stream.cancel();
      }
      return out;
    },

    compactedRevision() {
      return compacted;
    },

    async close() {
      closed = true;
      clearTimeout(reconnectTimer);
      dropWatch();
      keepAliveStream?.end();
      failKeepAlives(new Error('closing'));
      for (const w of waiters) w.resolve(false);
      waiters = [];
    },
  };

  /** changesOf without touching the live leases map. */
  function historyChanges(events: IEvent[]): StoreChange[] {
    const saved = new Map(leases);
    try {
      return changesOf(events);
    } finally {
      leases.clear();
      for (const [k, v] of saved) leases.set(k, v);
    }
  }

  return store;
}
