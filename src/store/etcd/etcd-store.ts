// The etcd backend: transactions with compare-and-swap, leases, and the one watch (with previous values) that
// feeds this replica's memory. Every write is one transaction, so one etcd revision; the registry's revision is
// etcd's. The key layout is in keys.ts, heartbeats in keep-alive.ts.
import type { Etcd3, ICompare, IDuplexStream, IEvent, IKeyValue, IRequestOp, IWatchRequest, IWatchResponse } from 'etcd3';
import { RollcallError } from '../../errors.js';
import type { InstanceRecord, ServiceRecord } from '../../registry/types.js';
import type { EventReason } from '../../schemas/instance.js';
import type { ServiceEventReason } from '../../schemas/service.js';
import type { ReplicatedStore, StoreChange, StoreSink, WriteResult } from '../backend.js';
import { createKeepAlive } from './keep-alive.js';
import { createKeyspace, encodeInstance, encodeService, type Decoded } from './keys.js';
import { storeUnavailable, withTimeout } from './timeouts.js';

/** How often readiness checks that etcd has a quorum (a linearizable read), and how long that read may take. */
const PROBE_EVERY_MS = 1000;
const PROBE_TIMEOUT_MS = 2000;

export interface EtcdStoreOptions {
  prefix: string;
  /** Bound on every call: a write that etcd does not answer in time fails with store_unavailable. */
  timeoutMs: number;
  onError?: (err: unknown, what: string) => void;
}

export function createEtcdStore(client: Etcd3, options: EtcdStoreOptions): ReplicatedStore & { minTtl(): Promise<number>; noteCompacted(revision: number): void; renewLease(lease: string): Promise<number> } {
  const { prefix, timeoutMs } = options;
  const keys = createKeyspace(prefix);
  const { root, rootEnd, key } = keys;
  const b = (s: string) => Buffer.from(s);

  let sink: StoreSink | undefined;
  let applied = 0;
  let compacted = 0;
  let connected = false;
  // Whether a linearizable read (it needs a quorum) answered lately: a watch on a member that lost its quorum
  // stays open and silent, so the watch alone cannot tell that writes would fail.
  let quorum = true;
  let probe: NodeJS.Timeout | undefined;
  let closed = false;
  let minTtlSeconds = 1;
  // The etcd lease of each instance record this store decoded (from the watch, or a lost compare's answer): a
  // record is one version of the key, and a version's lease never changes, so a write that compares on that
  // version knows exactly which lease the key has.
  const leases = new WeakMap<InstanceRecord, string>();
  let waiters: { revision: number; resolve: (ok: boolean) => void }[] = [];
  let watchStream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  function decode(kv: IKeyValue): Decoded | undefined {
    const d = keys.decode(kv);
    if (d?.kind === 'instance') leases.set(d.record, kv.lease);
    return d;
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
    for (const kv of res.kvs) {
      const d = decode(kv);
      if (d?.kind === 'instance') instances.push(d.record);
      else if (d?.kind === 'service') services.push(d.record);
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
        if (d.kind === 'instance') changes.push({ kind: 'instance', type, reason: d.reason, record: d.record });
        else changes.push({ kind: 'service', type, reason: d.reason, record: d.record });
        continue;
      }
      const k = e.kv.key.toString();
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

  const keepAlive = createKeepAlive(client, timeoutMs);

  const store = {
    get minTtlSeconds() {
      return minTtlSeconds;
    },
    get revision() {
      return applied;
    },
    get available() {
      return connected && quorum;
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
      // etcd just answered: ready from the first request on (the watch's own answer follows within milliseconds,
      // and a failure of it turns this false again).
      connected = true;
      openWatch();
      probe = setInterval(() => {
        withTimeout(client.kv.range({ key: b(key.deregistered), limit: 1 }), Math.min(timeoutMs, PROBE_TIMEOUT_MS), 'probing etcd').then(
          () => (quorum = true),
          () => (quorum = false),
        );
      }, PROBE_EVERY_MS);
      probe.unref();
    },

    waitForRevision,

    async putInstance(record: InstanceRecord, reason: 'registered' | 'updated', previous: InstanceRecord | undefined, keepLease: boolean): Promise<WriteResult<InstanceRecord>> {
      const k = key.instance(record);
      const expected = previous?.revision ?? 0;
      const current = previous ? leases.get(previous) : undefined;
      let lease: string;
      if (keepLease) {
        if (current === undefined || current === '0') return { ok: false, conflict: 'lease_gone' };
        lease = current;
      } else {
        try {
          const grant = await withTimeout(client.leaseClient.leaseGrant({ TTL: record.ttlSeconds }), timeoutMs, 'granting a lease');
          lease = grant.ID;
        } catch (err) {
          throw storeUnavailable(err);
        }
      }
      const compare: ICompare =
        expected === 0
          ? { key: b(k), target: 'Create', result: 'Equal', create_revision: 0 }
          : { key: b(k), target: 'Mod', result: 'Equal', mod_revision: expected };
      const res = await txn([compare], [{ request_put: { key: b(k), value: encodeInstance(record, reason), lease } }], [{ request_range: { key: b(k) } }], 'writing an instance');
      if (res === 'lease_gone') return { ok: false, conflict: 'lease_gone' };
      if (!res.succeeded) {
        if (!keepLease) revokeLater(lease);
        const kv = res.responses[0]?.response_range.kvs[0];
        const d = kv ? decode(kv) : undefined;
        return { ok: false, conflict: 'changed', current: d?.kind === 'instance' ? d.record : undefined };
      }
      // The lease the key had before this write holds nothing now; a kept one is renewed (a write is proof of life).
      if (!keepLease) revokeLater(current);
      else await store.renewLease(lease).catch(() => 0);
      return committed(Number(res.header.revision));
    },

    async deleteInstance(record: InstanceRecord): Promise<WriteResult<InstanceRecord>> {
      const k = key.instance(record);
      const lease = leases.get(record);
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
      const lease = leases.get(record);
      if (lease === undefined || lease === '0') return 0;
      return store.renewLease(lease);
    },

    /** One keep-alive of a lease over the shared stream: the TTL it has now, 0 when it is gone. */
    renewLease: (lease: string) => keepAlive.renew(lease),

    async putService(record: ServiceRecord, reason: 'created' | 'updated', expected: number): Promise<WriteResult<ServiceRecord>> {
      const k = key.service(record);
      const compare: ICompare[] =
        expected === 0
          ? [
              { key: b(k), target: 'Create', result: 'Equal', create_revision: 0 },
              // Two replicas never hand out one address: the claim key must not exist yet.
              { key: b(key.vip(record.virtualIP)), target: 'Create', result: 'Equal', create_revision: 0 },
            ]
          : [{ key: b(k), target: 'Mod', result: 'Equal', mod_revision: expected }];
      const success: IRequestOp[] = [{ request_put: { key: b(k), value: encodeService(record, reason) } }];
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
          // A progress answer: the watch is past upTo even if this prefix had no change at upTo itself (upTo may
          // be the revision memory was loaded at, which can belong to another prefix or to no key at all).
          if (res.events.length === 0 && !res.canceled && Number(res.header.revision) >= upTo) return resolve();
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
            out.push({ revision: group.revision, changes: changesOf(group.events) });
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
      // etcd answers a progress request only once the watch caught up with the present: ask until it has.
      const poke = setInterval(() => stream.write({ progress_request: {} }), 100);
      try {
        await withTimeout(reading, timeoutMs, 'reading history');
      } finally {
        finished = true;
        clearInterval(poke);
        stream.cancel();
      }
      return out;
    },

    compactedRevision() {
      return compacted;
    },

    /** This replica's compactor compacted etcd up to revision. */
    noteCompacted(revision: number) {
      compacted = Math.max(compacted, revision);
    },

    async close() {
      closed = true;
      clearInterval(probe);
      clearTimeout(reconnectTimer);
      dropWatch();
      keepAlive.close();
      for (const w of waiters) w.resolve(false);
      waiters = [];
    },
  };

  return store;
}
