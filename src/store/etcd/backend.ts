// --store etcd: the client, the store and the registry over it, and what /readyz and shutdown need from them.
import type { Config } from '../../config.js';
import type { Clock } from '../../registry/clock.js';
import { createReplicatedRegistry } from '../../registry/replicated-registry.js';
import { parseCidr, type Cidr } from '../../registry/virtual-ips.js';
import type { WatchHub } from '../../watch/hub.js';
import { createEtcdClient } from './client.js';
import { startCompactor } from './compactor.js';
import { createEtcdStore } from './etcd-store.js';

/** Changes kept in each replica's memory for resuming watchers; older resumes read etcd's history. */
const HISTORY_RING_MAX = 10_000;

export async function openEtcdBackend(config: Config, hub: WatchHub, clock: Clock, onError: (err: unknown, what: string) => void) {
  const client = createEtcdClient(config);
  const store = createEtcdStore(client, { prefix: config.etcdPrefix, timeoutMs: config.etcdTimeout, onError });
  try {
    const registry = await createReplicatedRegistry({
      store,
      hub,
      clock,
      // Valid: loadConfig checked it.
      serviceCidr: parseCidr(config.serviceCidr) as Cidr,
      historyRing: Math.min(config.historySize, HISTORY_RING_MAX),
    });
    const stopCompactor = startCompactor(client, {
      prefix: config.etcdPrefix,
      historySize: config.historySize,
      intervalMs: config.etcdCompactInterval,
      timeoutMs: config.etcdTimeout,
      renewLease: (lease) => store.renewLease(lease),
      onCompacted: (revision) => store.noteCompacted(revision),
      onError,
    });
    return {
      registry,
      notReadyReason: () => (store.available ? null : `etcd (${config.etcdEndpoints.join(', ')}) is unreachable; writes answer 503 store_unavailable until it is back.`),
      async close() {
        await stopCompactor();
        await store.close();
        client.close();
      },
    };
  } catch (err) {
    await store.close();
    client.close();
    throw new Error(`cannot reach etcd at ${config.etcdEndpoints.join(', ')}: ${(err as Error).message}`, { cause: err });
  }
}
