// etcd keeps every revision until it is compacted. One replica at a time compacts to the newest revision minus
// --history-size, so watchers can resume from that far back on any replica and etcd's history does not grow
// without bound. Compaction is cluster-wide in etcd: a cluster shared by several registries keeps the history
// of the one with the smallest --history-size.
//
// The election is etcd's recipe (what etcd's concurrency.Election and etcd3's client.election() build on): the
// leader is whoever created the election key, which lives on the leader's lease; when a leader dies its lease
// runs out, the key goes, and the next replica's attempt creates it. etcd3's Election class is not used because
// its internal watch keeps reconnecting forever once the client is closed (seen in test/etcd-replicas.test.ts:
// the process never exits after an etcd outage).
import type { Etcd3 } from 'etcd3';

export interface CompactorOptions {
  prefix: string;
  historySize: number;
  intervalMs: number;
  timeoutMs: number;
  /** One keep-alive of a lease (the store's shared stream): the TTL left, 0 when it is gone. */
  renewLease: (lease: string) => Promise<number>;
  /** This replica compacted etcd: resumes from before `revision` answer revision_compacted. */
  onCompacted: (revision: number) => void;
  onError: (err: unknown, what: string) => void;
}

/** Seconds the leader's lease lasts: another replica takes over at most about this long after it died. */
const LEADER_TTL_SECONDS = 10;

export function startCompactor(client: Etcd3, options: CompactorOptions): () => Promise<void> {
  // Outside `<prefix>/` so the election never shows up on the registry's watch.
  const electionKey = Buffer.from(`${options.prefix}-election/compactor`);
  const me = Buffer.from(`${process.pid}@${Math.random().toString(36).slice(2)}`);
  let lease: string | undefined;
  let leading = false;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let done = 0;
  let lastCompaction = 0;

  /** Leads, or tries to become the leader. Runs every few seconds: the lease needs renewing within its TTL. */
  async function step() {
    if (leading && lease !== undefined) {
      if ((await options.renewLease(lease)) > 0) return;
      leading = false;
      lease = undefined;
    }
    const grant = await client.leaseClient.leaseGrant({ TTL: LEADER_TTL_SECONDS });
    const res = await client.kv.txn({
      compare: [{ key: electionKey, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: electionKey, value: me, lease: grant.ID } }],
      failure: [],
    });
    if (res.succeeded) {
      lease = grant.ID;
      leading = true;
    } else await client.leaseClient.leaseRevoke({ ID: grant.ID }).catch(() => {});
  }

  async function compactOnce() {
    const res = await client.kv.range({ key: electionKey, limit: 1 });
    const target = Number(res.header.revision) - options.historySize;
    if (target <= done) return;
    try {
      await client.kv.compact({ revision: target });
    } catch (err) {
      // Another registry on the cluster compacted further already: nothing to do.
      if (!/compacted/i.test((err as Error).message)) throw err;
    }
    done = target;
    options.onCompacted(target);
  }

  const period = Math.min(options.intervalMs, (LEADER_TTL_SECONDS * 1000) / 3);
  const loop = () => {
    timer = setTimeout(async () => {
      try {
        await step();
        if (leading && Date.now() - lastCompaction >= options.intervalMs) {
          lastCompaction = Date.now();
          await compactOnce();
        }
      } catch (err) {
        options.onError(err, 'compaction');
      }
      if (!stopped) loop();
    }, period);
    timer.unref();
  };
  loop();

  return async () => {
    stopped = true;
    clearTimeout(timer);
    // Hand over at once instead of after the lease runs out.
    if (lease !== undefined) await client.leaseClient.leaseRevoke({ ID: lease }, { deadline: Date.now() + options.timeoutMs }).catch(() => {});
  };
}
