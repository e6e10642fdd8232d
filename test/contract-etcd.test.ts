// The contract suite on the etcd backend: one real 3-member cluster for the file, a key prefix per test.
import t from 'tap';
import { contractSuite } from './contract.js';
import { startEtcdCluster, requireEtcd } from './etcd-cluster.js';
import { startServer } from './helper.js';

if (requireEtcd(t)) {
  const cluster = await startEtcdCluster(t);
  let n = 0;
  contractSuite(t, async (t, options = {}) => {
    const { url } = await startServer(t, {
      config: {
        store: 'etcd',
        etcdEndpoints: cluster.endpoints.join(','),
        etcdPrefix: cluster.prefix(`contract-${++n}`),
        // Compaction is cluster-wide: only the test that asks for a short history compacts, right away.
        etcdCompactInterval: '200ms',
        ...options,
      },
    });
    return { url };
  });
}
