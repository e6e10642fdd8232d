// `rollcall proxy` end to end, both data planes, driven by a real registry: real HTTP backends registered as
// instances of a Service, traffic sent to the Service's virtual IP. nftables mode runs in a network namespace the
// test creates (unshare -n); in CI it must run (a missing unshare/nft fails loudly), elsewhere it skips loudly.
import t, { type Test } from 'tap';
import { waitFor } from './helper.js';
import { netnsUnavailable, startProxyNode, type ProxyNode } from './proxy-node.js';

const NS = 'e2e';
const servicePath = (name: string) => `/v1/namespaces/${NS}/services/${name}`;
const instancePath = (svc: string, id: string) => `${servicePath(svc)}/instances/${id}`;

async function register(node: ProxyNode, svc: string, id: string, port: number, fields: Record<string, unknown> = {}): Promise<void> {
  const res = await node.call('api', { method: 'PUT', path: instancePath(svc, id), body: { address: '127.0.0.1', port, ttlSeconds: 3600, ...fields } });
  if (res.status !== 200 && res.status !== 201) throw new Error(`register ${id}: ${res.status} ${JSON.stringify(res.body)}`);
}

// Other tests (and other checkouts) on this machine use loopback virtual IPs too: ask for a random one, and high
// ports, which userspace mode can bind without privilege.
const vipBase = `127.77.${100 + Math.floor(Math.random() * 150)}.`;
let nextVip = 1 + Math.floor(Math.random() * 200);
const basePort = 20000 + Math.floor(Math.random() * 30000);

async function createService(node: ProxyNode, name: string, port: number): Promise<string> {
  const body = { ports: [{ port }], virtualIP: `${vipBase}${nextVip++}` };
  const res = await node.call('api', { method: 'PUT', path: servicePath(name), body });
  if (res.status !== 201) throw new Error(`service ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.virtualIP as string;
}

async function scenario(t: Test, mode: 'nftables' | 'userspace'): Promise<void> {
  const node = await startProxyNode(t, { netns: mode === 'nftables' });
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async (name) => (await node.call('backend', { name })).port as number));
  const vip = await createService(node, 'web', basePort);
  const emptyVip = await createService(node, 'empty', basePort + 1);
  await register(node, 'web', 'a', a!, { weight: 1 });
  await register(node, 'web', 'b', b!, { weight: 3 });
  const metricsPort = basePort + 10;
  const started = await node.call('proxy', { args: ['--mode', mode, '--namespace', NS, '--drain-grace', '1000', '--metrics-listen', `127.0.0.1:${metricsPort}`] });
  t.equal(started.exitCode, null, `the proxy runs: ${started.stderr}`);
  const url = `http://${vip}:${basePort}/`;
  const spread = async (n: number) => (await node.call('spread', { url, n })).counts as Record<string, number>;

  await t.test('traffic to virtualIP:port spreads by weight', async (t) => {
    const counts = await spread(mode === 'nftables' ? 400 : 40);
    t.same(Object.keys(counts).sort(), ['a', 'b'], `only the instances answer: ${JSON.stringify(counts)}`);
    if (mode === 'userspace') t.same(counts, { a: 10, b: 30 }, 'smooth weighted round-robin: exactly 1:3');
    // numgen random: b's share of 400 is binomial(400, 0.75), mean 300, sd 8.7; 240-360 is ±6.9 sd.
    else t.ok(counts.b! > 240 && counts.b! < 360, `random by weight, about 3:1 (${JSON.stringify(counts)})`);
  });

  await t.test('a new instance gets traffic', async (t) => {
    await register(node, 'web', 'c', c!, { weight: 3 });
    await waitFor(async () => (await spread(10)).c, 5000, 'c to get traffic');
    t.pass('c answers through the virtual IP');
  });

  await t.test('draining and deregistered instances stop getting new connections', async (t) => {
    await register(node, 'web', 'b', b!, { weight: 3, status: 'draining' });
    const drained = performance.now();
    await waitFor(async () => (await spread(20)).b === undefined, 5000, 'b to get no new connections');
    t.comment(`b out of rotation after ${Math.round(performance.now() - drained)} ms (debounce 100 ms)`);
    await node.call('api', { method: 'DELETE', path: instancePath('web', 'c') });
    await waitFor(async () => (await spread(20)).c === undefined, 5000, 'c to get no new connections');
    t.same(Object.keys(await spread(10)), ['a'], 'only a is left');
  });

  await t.test('open connections survive their instance going to draining', async (t) => {
    const port = (await node.call('lineBackend', { name: 'held' })).port as number;
    const heldVip = await createService(node, 'held', basePort + 2);
    await register(node, 'held', 'h', port);
    await waitFor(async () => (await node.call('fetch', { url: `http://${heldVip}:${basePort + 2}/`, timeoutMs: 1000 })).result !== 'error:ECONNREFUSED', 5000, 'held to be served');
    const { handle } = await node.call('hold', { host: heldVip, port: basePort + 2 });
    t.equal((await node.call('ask', { handle, line: '1' })).answer, 'held:1');
    await register(node, 'held', 'h', port, { status: 'draining' });
    const before = (await node.call('proxyLog')).stderr.match(/in force/g).length;
    await waitFor(async () => (await node.call('proxyLog')).stderr.match(/in force/g).length > before, 5000, 'the change to be in force');
    t.equal((await node.call('ask', { handle, line: '2' })).answer, 'held:2', 'the open connection keeps flowing');
  });

  await t.test('no routable instance: refused at once, never a hanging client', async (t) => {
    const { result, ms } = await node.call('fetch', { url: `http://${emptyVip}:${basePort + 1}/`, timeoutMs: 5000 });
    t.equal(result, mode === 'nftables' ? 'error:ECONNREFUSED' : 'error:ECONNRESET', 'refused (TCP reset)');
    // The aim is 100 ms; the bound here is generous for a loaded machine: the point is no timeout.
    t.ok(ms < 1000, `in ${Math.round(ms)} ms`);
  });

  await t.test('metrics and /healthz', async (t) => {
    const health = await node.call('metrics', { url: `http://127.0.0.1:${metricsPort}/healthz` });
    t.equal(health.status, 200);
    t.match(JSON.parse(health.text), { status: 'ok', mode, registryConnected: true });
    const metrics = await node.call('metrics', { url: `http://127.0.0.1:${metricsPort}/metrics` });
    t.match(metrics.text, new RegExp(`rollcall_proxy_backends\\{namespace="e2e",service="web",port="${basePort}"\\} 1`));
    t.match(metrics.text, new RegExp(`rollcall_proxy_backends\\{namespace="e2e",service="empty",port="${basePort + 1}"\\} 0`));
    t.match(metrics.text, /rollcall_proxy_rule_applies_total\{result="applied"\} \d+/);
    t.match(metrics.text, /rollcall_proxy_rule_apply_duration_seconds_count [1-9]/);
  });

  await t.test('registry killed: traffic keeps flowing on the last state', async (t) => {
    await node.call('killRegistry');
    t.same(await spread(10), { a: 10 }, 'served from the last view');
    const health = await node.call('metrics', { url: `http://127.0.0.1:${metricsPort}/healthz` });
    await waitFor(async () => JSON.parse((await node.call('metrics', { url: `http://127.0.0.1:${metricsPort}/healthz` })).text).registryConnected === false, 10_000, 'healthz to notice');
    t.equal(health.status, 200, 'still healthy: the data plane serves');
  });

  await t.test('SIGTERM stops the proxy cleanly', async (t) => {
    const stopped = await node.call('stopProxy', { signal: 'SIGTERM' });
    t.equal(stopped.code, 0, `exit 0: ${stopped.stderr}`);
    if (mode === 'nftables') {
      t.match(stopped.stderr, /table ip rollcall removed/);
      const list = await node.call('nft', { args: ['list', 'table', 'ip', 'rollcall'] });
      t.not(list.code, 0, 'the table is gone');
      t.equal((await node.call('fetch', { url, timeoutMs: 1000 })).result, 'error:ECONNREFUSED', 'the virtual IP no longer leads anywhere');
    } else {
      t.equal((await node.call('fetch', { url, timeoutMs: 1000 })).result, 'error:ECONNREFUSED', 'the listeners are closed');
    }
  });
}

t.test('userspace mode', async (t) => scenario(t, 'userspace'));

t.test('--all-namespaces serves every namespace; --zone prefers the zone and falls back when it has none', async (t) => {
  const node = await startProxyNode(t, { netns: false });
  const [a, b, other] = await Promise.all(['zone-a', 'zone-b', 'other-ns'].map(async (name) => (await node.call('backend', { name })).port as number));
  const vip = await createService(node, 'zoned', basePort + 4);
  const otherBody = { ports: [{ port: basePort + 5 }], virtualIP: `${vipBase}${nextVip++}` };
  const otherSvc = await node.call('api', { method: 'PUT', path: '/v1/namespaces/elsewhere/services/api', body: otherBody });
  t.equal(otherSvc.status, 201);
  await register(node, 'zoned', 'a', a!, { zone: 'a' });
  await register(node, 'zoned', 'b', b!, { zone: 'b' });
  const put = await node.call('api', { method: 'PUT', path: '/v1/namespaces/elsewhere/services/api/instances/o', body: { address: '127.0.0.1', port: other, ttlSeconds: 3600 } });
  t.equal(put.status, 201);
  const started = await node.call('proxy', { args: ['--mode', 'userspace', '--all-namespaces', '--zone', 'a', '--drain-grace', '0'] });
  t.equal(started.exitCode, null, started.stderr);
  const url = `http://${vip}:${basePort + 4}/`;
  t.same((await node.call('spread', { url, n: 6 })).counts, { 'zone-a': 6 }, 'zone a has a routable instance: only it');
  t.equal((await node.call('fetch', { url: `http://${otherBody.virtualIP}:${basePort + 5}/` })).result, 'other-ns', 'the other namespace is served too');
  await register(node, 'zoned', 'a', a!, { zone: 'a', status: 'draining' });
  await waitFor(async () => (await node.call('spread', { url, n: 4 })).counts['zone-b'] === 4, 5000, 'fallback to zone b');
  t.pass('zone a has none left: every zone');
});

const why = netnsUnavailable();
if (why !== undefined && process.env.CI !== 'true') {
  t.test('nftables mode', { skip: `SKIPPED, not proven on this machine: ${why} (needs unshare, iproute2 and nftables, root or CAP_NET_ADMIN)` }, async () => {});
} else {
  // In CI a missing namespace or nft fails here, loudly, instead of skipping.
  t.test('nftables mode', async (t) => {
    t.equal(why, undefined, 'a network namespace with nft is available');
    if (why === undefined) await scenario(t, 'nftables');
  });
}

// A connect that never completes cannot be staged on plain loopback (a port either accepts or refuses); in a
// namespace of its own an nft rule can drop the SYNs. Skips and fails like the nftables part.
const timeoutCase = why !== undefined && process.env.CI !== 'true' ? `SKIPPED, not proven on this machine: ${why}` : false;
t.test('userspace mode: a connect that times out moves on to the next instance', { skip: timeoutCase }, async (t) => {
  t.equal(why, undefined, 'a network namespace with nft is available');
  if (why !== undefined) return;
  const node = await startProxyNode(t, { netns: true });
  const good = (await node.call('backend', { name: 'good' })).port as number;
  const blackHole = 9; // nothing listens; the rule below drops the SYN, so the connect hangs instead of being refused
  for (const cmd of [
    ['add', 'table', 'ip', 'blackhole'],
    ['add', 'chain', 'ip', 'blackhole', 'out', '{ type filter hook output priority 0; policy accept; }'],
    ['add', 'rule', 'ip', 'blackhole', 'out', 'tcp', 'dport', String(blackHole), 'drop'],
  ]) {
    const res = await node.call('nft', { args: cmd });
    t.equal(res.code, 0, `nft ${cmd.join(' ')}: ${res.stderr}`);
  }
  const direct = await node.call('fetch', { url: `http://127.0.0.1:${blackHole}/`, timeoutMs: 500 });
  t.equal(direct.result, 'error:TIMEOUT', 'the black hole really hangs a connect (not refused)');
  const vip = await createService(node, 'slow', basePort + 3);
  await register(node, 'slow', 'black-hole', blackHole, { weight: 5 });
  await register(node, 'slow', 'good', good);
  const started = await node.call('proxy', { args: ['--mode', 'userspace', '--namespace', NS, '--connect-timeout', '300', '--drain-grace', '0'] });
  t.equal(started.exitCode, null, started.stderr);
  const counts = (await node.call('spread', { url: `http://${vip}:${basePort + 3}/`, n: 6 })).counts;
  t.same(counts, { good: 6 }, 'every request answered, the hanging instance skipped after its connect timeout');
});
