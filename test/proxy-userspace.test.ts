// The userspace data plane with real sockets: listeners on loopback virtual IPs (127.77.x.y binds on Linux with no
// setup), real backends, states handed over as the control loop would. The registry-driven end-to-end run is in
// proxy-e2e.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { computeDesiredState, type DesiredState } from '../src/dataplane/desired-state.js';
import { createProxyMetrics } from '../src/dataplane/metrics.js';
import { createUserspaceProxy } from '../src/dataplane/userspace/proxy.js';
import type { Instance } from '../src/schemas/instance.js';
import { svc } from './dataplane-fixtures.js';
import { inst } from './generators-fixtures.js';
import { freePort, waitFor } from './helper.js';
import { fetchName, spread, startBackend } from './proxy-backends.js';

const VIP = '127.77.201.1';

function startProxy(t: Test, options: { maxTries?: number; connectTimeoutMs?: number } = {}) {
  const metrics = createProxyMetrics();
  const logs: string[] = [];
  const proxy = createUserspaceProxy({
    connectTimeoutMs: options.connectTimeoutMs ?? 2000,
    maxTries: options.maxTries ?? 3,
    closeGraceMs: 1000,
    metrics,
    log: (l) => logs.push(l),
  });
  t.teardown(() => proxy.close());
  return { proxy, metrics, logs };
}

function state(vip: string, port: number, instances: Instance[]): DesiredState {
  return computeDesiredState([svc('web', vip, [{ port, protocol: 'tcp' }])], instances);
}

t.test('spreads new connections by weight; a new instance gets traffic; a draining one gets none', async (t) => {
  const [a, b, c] = [await startBackend(t, 'a'), await startBackend(t, 'b'), await startBackend(t, 'c')];
  const port = await freePort();
  const { proxy, metrics } = startProxy(t);
  const ia = inst('web', 'a', { address: '127.0.0.1', port: a.port, weight: 1 });
  const ib = inst('web', 'b', { address: '127.0.0.1', port: b.port, weight: 3 });
  t.equal(await proxy.apply(state(VIP, port, [ia, ib])), 'applied');
  t.same(proxy.addresses(), [{ key: 'shop/web/' + port, host: VIP, port, listening: true }]);
  const url = `http://${VIP}:${port}/`;
  t.same(await spread(url, 40), { a: 10, b: 30 }, 'smooth weighted round-robin: exactly 1:3 over whole cycles');

  const ic = inst('web', 'c', { address: '127.0.0.1', port: c.port, weight: 1 });
  t.equal(await proxy.apply(state(VIP, port, [ia, ib, ic])), 'applied');
  t.same(await spread(url, 50), { a: 10, b: 30, c: 10 }, 'the newcomer gets its share');

  t.equal(await proxy.apply(state(VIP, port, [ia, { ...ib, status: 'draining' }, ic])), 'applied');
  t.same(await spread(url, 20), { a: 10, c: 10 }, 'draining: no new connections');
  t.equal(await proxy.apply(state(VIP, port, [ia, { ...ib, status: 'draining' }, ic])), 'unchanged');
  const text = await metrics.registry.metrics();
  t.match(text, new RegExp(`rollcall_proxy_connections_total\\{namespace="shop",service="web",port="${port}"\\} 110`));
  t.match(text, /rollcall_proxy_bytes_total\{namespace="shop",service="web",port="\d+",direction="out"\} [1-9]/);
});

t.test('a refusing instance is skipped without the client seeing an error; nothing routable resets at once', async (t) => {
  const good = await startBackend(t, 'good');
  const dead = await freePort(); // nobody listens: connects are refused
  const port = await freePort();
  const { proxy, metrics } = startProxy(t);
  await proxy.apply(
    state(VIP, port, [inst('web', 'dead', { address: '127.0.0.1', port: dead, weight: 5 }), inst('web', 'good', { address: '127.0.0.1', port: good.port })]),
  );
  const url = `http://${VIP}:${port}/`;
  t.same(await spread(url, 12), { good: 12 }, 'every request answered by the live instance');
  t.match(await metrics.registry.metrics(), /rollcall_proxy_connect_failures_total\{[^}]*\} (1[0-9]|[5-9])/, 'the refusals are counted');

  await proxy.apply(state(VIP, port, [inst('web', 'dead', { address: '127.0.0.1', port: dead })]));
  const started = performance.now();
  t.equal(await fetchName(url), 'error:ECONNRESET', 'only a refusing instance: the client is reset, not left hanging');
  await proxy.apply(state(VIP, port, []));
  t.equal(await fetchName(url), 'error:ECONNRESET', 'no instance at all: reset');
  t.ok(performance.now() - started < 5000, 'at once (generous bound; the point is no connect timeout is waited for)');
});

t.test('100 MiB through the proxy arrive byte-identical, in both directions, with half-close', async (t) => {
  // An echo server that hashes what it got and, once the client has finished sending, answers with the hash and
  // then streams the same bytes back. Half-close: the client's end must reach it while it still writes.
  const payload = randomBytes(1024 * 1024);
  const rounds = 100;
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    const hash = createHash('sha256');
    s.on('data', (c: Buffer) => hash.update(c));
    s.on('end', () => {
      s.write(hash.digest('hex') + '\n');
      let i = 0;
      const pump = () => {
        while (i < rounds) {
          i++;
          if (!s.write(payload)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  t.teardown(() => echo.close());
  const port = await freePort();
  const { proxy } = startProxy(t);
  await proxy.apply(state(VIP, port, [inst('web', 'echo', { address: '127.0.0.1', port: (echo.address() as { port: number }).port })]));

  const sock = connect({ host: VIP, port, allowHalfOpen: true });
  await once(sock, 'connect');
  const expected = createHash('sha256');
  for (let i = 0; i < rounds; i++) expected.update(payload);
  const expectedHex = expected.digest('hex');
  const got = createHash('sha256');
  let head = '';
  let received = 0;
  sock.on('data', (c: Buffer) => {
    if (head.endsWith('\n') === false) {
      const nl = c.indexOf(10);
      if (nl < 0) return void (head += c.toString());
      head += c.subarray(0, nl + 1).toString();
      c = c.subarray(nl + 1);
    }
    received += c.length;
    got.update(c);
  });
  let i = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (i < rounds) {
        i++;
        if (!sock.write(payload)) return void sock.once('drain', pump);
      }
      sock.end();
      resolve();
    };
    pump();
  });
  await once(sock, 'end');
  t.equal(head.trim(), expectedHex, 'upstream: 100 MiB arrived byte-identical (sha256), and our end reached it');
  t.equal(received, rounds * payload.length);
  t.equal(got.digest('hex'), expectedHex, 'downstream: 100 MiB came back byte-identical after our half-close');
});

t.test('open connections survive their instance going to draining and being deregistered', async (t) => {
  // A line server: answers each line with its name, so one connection can be used before and after the change.
  const lines = createServer((s) => s.on('data', (c: Buffer) => s.write(`old:${c.toString()}`)));
  lines.listen(0, '127.0.0.1');
  await once(lines, 'listening');
  t.teardown(() => lines.close());
  const other = await startBackend(t, 'new');
  const port = await freePort();
  const { proxy } = startProxy(t);
  const old = inst('web', 'old', { address: '127.0.0.1', port: (lines.address() as { port: number }).port });
  await proxy.apply(state(VIP, port, [old]));
  const sock: Socket = connect({ host: VIP, port });
  const ask = async (line: string) => {
    sock.write(line);
    const [data] = (await once(sock, 'data')) as [Buffer];
    return data.toString();
  };
  t.equal(await ask('1'), 'old:1');
  await proxy.apply(state(VIP, port, [{ ...old, status: 'draining' }, inst('web', 'new', { address: '127.0.0.1', port: other.port })]));
  t.equal(await ask('2'), 'old:2', 'draining: the open connection keeps flowing');
  t.equal(await fetchName(`http://${VIP}:${port}/`), 'new', 'new connections go elsewhere');
  await proxy.apply(state(VIP, port, [inst('web', 'new', { address: '127.0.0.1', port: other.port })]));
  t.equal(await ask('3'), 'old:3', 'deregistered: still flowing until it ends');
  sock.end();
});

t.test('listeners come and go with services; a port already taken is reported and retried', async (t) => {
  const b = await startBackend(t, 'b');
  const port = await freePort();
  const blocker = createServer();
  blocker.listen(port, '127.77.201.2');
  await once(blocker, 'listening');
  const { proxy, logs } = startProxy(t);
  const both = computeDesiredState(
    [svc('web', VIP, [{ port, protocol: 'tcp' }]), svc('api', '127.77.201.2', [{ port, protocol: 'tcp' }])],
    [inst('web', 'b', { address: '127.0.0.1', port: b.port }), inst('api', 'b', { address: '127.0.0.1', port: b.port })],
  );
  await proxy.apply(both);
  t.same(proxy.addresses().map((a) => a.host), [VIP], 'api could not listen');
  t.match(logs.join('\n'), new RegExp(`cannot listen on 127\\.77\\.201\\.2:${port} for shop/api/${port}: EADDRINUSE`));
  await new Promise<void>((resolve) => blocker.close(() => resolve()));
  t.equal(await proxy.apply(both), 'applied', 'the next pass tries again');
  t.same(proxy.addresses().map((a) => a.host).sort(), [VIP, '127.77.201.2']);
  t.equal(await fetchName(`http://127.77.201.2:${port}/`), 'b');

  await proxy.apply(computeDesiredState([svc('web', VIP, [{ port, protocol: 'tcp' }])], [inst('web', 'b', { address: '127.0.0.1', port: b.port })]));
  await waitFor(async () => (await fetchName(`http://127.77.201.2:${port}/`)) === 'error:ECONNREFUSED', 5000, 'api listener closed');
  t.same(proxy.addresses().map((a) => a.host), [VIP]);
});
