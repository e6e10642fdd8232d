// The etcd test harness itself: a 3-member cluster forms, takes writes through the etcd3 client, and keeps
// serving with one member killed and again once it is back.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { requireEtcd, restartMember, startEtcdCluster } from './etcd-cluster.js';

t.test('a 3-member cluster forms, survives a member loss and takes it back', async (t) => {
  if (!requireEtcd(t)) return;
  const cluster = await startEtcdCluster(t);
  const client = new Etcd3({ hosts: cluster.endpoints });
  t.teardown(() => client.close());
  const prefix = cluster.prefix('harness');
  await client.put(`${prefix}/a`).value('1');
  t.equal(await client.get(`${prefix}/a`).string(), '1');

  await cluster.members[0]!.kill();
  await client.put(`${prefix}/b`).value('2');
  t.equal(await client.get(`${prefix}/b`).string(), '2', 'writes continue with two of three members');

  await restartMember(cluster.members[0]!);
  const only = new Etcd3({ hosts: [cluster.members[0]!.clientUrl] });
  t.teardown(() => only.close());
  t.equal(await only.get(`${prefix}/b`).string(), '2', 'the restarted member caught up');
});
