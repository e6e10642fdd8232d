// Continuous health: `rollcall agent --health-*` and `registration.healthCheck()` against a real registry,
// with a real child whose /health can be switched between 200, 500 and never answering.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createClient } from '../src/client/index.js';
import { createFlipCounter, HEALTH_METADATA } from '../src/client/health.js';
import { child, instanceUrl, startAgent } from './agent-process.js';
import { api, CHILD_ENV, CLI, freePort, startServer, startServerProcess, waitFor } from './helper.js';
import { getVia, nginxArgs, nginxPrefix, oldWorkersGone, requireBinary, spawnOwned } from './render-proxies.js';
import { changes, openWatch } from './watch-client.js';

const FAST = ['--health-interval', '200ms', '--health-timeout', '500ms', '--health-fall', '3', '--health-rise', '2'];

async function childGet(port: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return res.text();
}

/** Resolves once the child has answered `n` more /health probes than it had when called. */
async function probesPass(port: number, n: number): Promise<void> {
  const start = Number(await childGet(port, '/health-count'));
  await waitFor(async () => Number(await childGet(port, '/health-count')) >= start + n, 15_000, `${n} more health probes`);
}

const statuses = (messages: unknown[]) => changes(messages).map((e) => `${e.type} ${e.instance.status}`);

t.test('flip counter: fall failures take it down, rise passes bring it back, a lone failure does nothing', async (t) => {
  const c = createFlipCounter(2, 3);
  t.same([false, true, false, false, true].map((ok) => c.record(ok)), [undefined, undefined, undefined, undefined, undefined], 'streaks reset');
  t.same([false, false, false].map((ok) => c.record(ok)), [undefined, undefined, false], 'down after 3 failures in a row');
  t.same([true, false, true, true].map((ok) => c.record(ok)), [undefined, undefined, undefined, true], 'up after 2 passes in a row');
  t.equal(c.healthy, true);
});

t.test('agent --health-http: down after fall failures, up after rise passes, one event per flip, no flap on one failure', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const watch = await openWatch(server.url, { namespace: 'default', service: 'api' });
  t.teardown(() => watch.close());
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'h1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--meta', 'owner=team-a', '--health-http', '/health', ...FAST],
    child(port),
  );
  await watch.until((m) => statuses(m).includes('MODIFIED up'), 15_000);

  // One failing probe among passing ones: no flip.
  await childGet(port, '/set-health?code=500&times=1');
  await probesPass(port, 5);
  t.same(statuses(watch.messages), ['ADDED starting', 'MODIFIED up'], 'a single failure does not flap');

  await childGet(port, '/set-health?code=500');
  await watch.until((m) => statuses(m).includes('MODIFIED down'), 15_000);
  const down = (await api(instanceUrl(server.url, 'h1'))).body;
  t.equal(down.status, 'down');
  t.equal(down.metadata.owner, 'team-a', "the owner's metadata is kept");
  t.equal(down.metadata[HEALTH_METADATA.result], 'failing: HTTP 500 from /health', 'why, on the instance');
  t.ok(Date.parse(down.metadata[HEALTH_METADATA.at]) > 0, 'when, on the instance');
  await waitFor(() => /health check failed 3 times: HTTP 500 from \/health: default\/api\/h1 is down/.test(agent.stderr()), 5000, 'the flip logged with its reason');
  await probesPass(port, 3);
  t.same(statuses(watch.messages), ['ADDED starting', 'MODIFIED up', 'MODIFIED down'], 'failures after the flip change nothing');
  t.equal((await api(instanceUrl(server.url, 'h1'))).status, 200, 'down is not dead: still registered, still heartbeating');

  await childGet(port, '/set-health?code=200');
  await watch.until((m) => statuses(m).includes('MODIFIED up') && statuses(m).at(-1) === 'MODIFIED up', 15_000);
  t.equal((await api(instanceUrl(server.url, 'h1'))).body.metadata[HEALTH_METADATA.result], 'passing: HTTP 200 from /health');
  agent.proc.kill('SIGTERM');
  await agent.exited;
  await watch.until((m) => changes(m).some((e) => e.type === 'DELETED'), 5000);
  t.same(
    statuses(watch.messages),
    ['ADDED starting', 'MODIFIED up', 'MODIFIED down', 'MODIFIED up', 'MODIFIED draining', 'DELETED draining'],
    'exactly one event per flip',
  );
});

t.test('a hung child (accepts TCP, never answers HTTP) is taken out by the probe timeout', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'g1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--health-http', '/health', ...FAST],
    child(port),
  );
  await waitFor(async () => (await api(instanceUrl(server.url, 'g1'))).body?.status === 'up', 15_000, 'up');
  await childGet(port, '/set-health?code=hang');
  const down = await waitFor(async () => {
    const r = await api(instanceUrl(server.url, 'g1'));
    return r.body?.status === 'down' ? r.body : undefined;
  }, 15_000, 'down');
  t.match(down.metadata[HEALTH_METADATA.result], /no answer from \/health within 500 ms/);
});

t.test('--health-exec: a failing command takes it down; a passing one brings it back', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const flag = join(t.testdir(), 'healthy');
  writeFileSync(flag, '');
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'e1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--health-exec', `test -e '${flag}'`, ...FAST],
    child(port),
  );
  await waitFor(async () => (await api(instanceUrl(server.url, 'e1'))).body?.status === 'up', 15_000, 'up');
  rmSync(flag);
  await waitFor(async () => (await api(instanceUrl(server.url, 'e1'))).body?.status === 'down', 15_000, 'down');
  await waitFor(() => /health check failed 3 times: `test -e '.*'` exited 1: default\/api\/e1 is down/.test(agent.stderr()), 5000, 'the flip logged with its reason');
  writeFileSync(flag, '');
  await waitFor(async () => (await api(instanceUrl(server.url, 'e1'))).body?.status === 'up', 15_000, 'up again');
});

t.test("states the check did not set stay: a drained instance is not brought up, a person's down stays down", async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 's1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--health-http', '/health', ...FAST],
    child(port),
  );
  await waitFor(async () => (await api(instanceUrl(server.url, 's1'))).body?.status === 'up', 15_000, 'up');

  t.equal((await api(instanceUrl(server.url, 's1'), 'PATCH', { status: 'draining' })).status, 200);
  await probesPass(port, 4);
  t.equal((await api(instanceUrl(server.url, 's1'))).body.status, 'draining', 'passing probes leave draining alone');
  await childGet(port, '/set-health?code=500');
  await probesPass(port, 5);
  t.equal((await api(instanceUrl(server.url, 's1'))).body.status, 'draining', 'failing probes leave draining alone too');
  await childGet(port, '/set-health?code=200');
  await probesPass(port, 4);
  t.equal((await api(instanceUrl(server.url, 's1'))).body.status, 'draining');

  t.equal((await api(instanceUrl(server.url, 's1'), 'PATCH', { status: 'down' })).status, 200);
  await probesPass(port, 4);
  t.equal((await api(instanceUrl(server.url, 's1'))).body.status, 'down', "a person's down is not flipped back up");
  await waitFor(() => /keeps the status it has/.test(agent.stderr()), 5000, 'the agent says it left the status alone');
});

t.test('bad health flags: one line, exit 1, nothing started', async (t) => {
  const server = await startServer(t);
  const run = async (args: string[]) => {
    const p = spawn(process.execPath, [CLI, 'agent', '--registry', server.url, '--service', 'api', '--id', 'b1', '--port', '80', ...args, '--', 'echo', 'started'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: CHILD_ENV,
    });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(p, 'exit')) as [number];
    return { code, out, err };
  };
  const cases: Array<[string[], RegExp]> = [
    [['--health-fall', '0'], /--health-fall must be an integer from 1/],
    [['--health-rise', 'x'], /--health-rise must be an integer from 1/],
    [['--health-interval', '0'], /--health-interval must be a positive duration/],
    [['--health-interval', '0ms'], /--health-interval must be a positive duration/],
    [['--health-timeout', '5'], /--health-timeout must be a positive duration/],
    [['--health-http', '/h', '--health-tcp'], /one health check at most, got --health-http and --health-tcp/],
    [['--health-tcp', '--health-exec', 'true'], /one health check at most/],
    [['--health-http', 'health'], /--health-http must be a path/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.code, 1, args.join(' '));
    t.match(r.err, message, args.join(' '));
    t.equal(r.err.trim().split('\n').length, 1, 'one line');
    t.equal(r.out, '', 'the command never ran');
  }
  t.equal((await api(instanceUrl(server.url, 'b1'))).status, 404, 'nothing registered');
});

t.test('client library: registration.healthCheck flips with rise/fall and stops on deregister', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url });
  t.teardown(() => client.close());
  const reg = await client.register({ service: 'lib', id: 'l1', address: '127.0.0.1', port: 9000, ttlSeconds: 300, metadata: { v: '1' } });
  let healthy = true;
  let probes = 0;
  const flips: string[] = [];
  reg.on('health', (f) => flips.push(`${f.healthy ? 'healthy' : 'sick'} ${f.applied ?? '-'}`));
  reg.healthCheck(
    () => {
      probes++;
      if (healthy === false && probes % 2 === 0) throw new Error('database gone');
      return healthy;
    },
    { intervalMs: 20, timeoutMs: 200, rise: 2, fall: 3 },
  );
  const url = instanceUrl(server.url, 'l1', 'lib');
  healthy = false;
  const down = await waitFor(async () => {
    const r = await api(url);
    return r.body?.status === 'down' ? r.body : undefined;
  }, 10_000, 'down');
  t.equal(down.metadata.v, '1');
  t.match(down.metadata[HEALTH_METADATA.result], /^failing: (the check returned false|the check threw: database gone)$/);
  healthy = true;
  await waitFor(async () => (await api(url)).body?.status === 'up', 10_000, 'up');
  // The registry shows the PATCH before the client has read its answer and emitted the flip.
  await waitFor(() => flips.length >= 2, 10_000, 'the recovery flip');
  t.same(flips, ['sick down', 'healthy up']);

  // A probe slower than timeoutMs counts as a failure.
  const slow = await client.register({ service: 'lib', id: 'l2', address: '127.0.0.1', port: 9001, ttlSeconds: 300 });
  slow.healthCheck(() => new Promise((resolve) => setTimeout(() => resolve(true), 1000).unref()), { intervalMs: 20, timeoutMs: 50, fall: 2 });
  await waitFor(async () => (await api(instanceUrl(server.url, 'l2', 'lib'))).body?.status === 'down', 10_000, 'slow probe → down');

  t.throws(() => reg.healthCheck(() => true, { fall: 0 }), /fall must be an integer/);
  t.throws(() => reg.healthCheck(() => true, { intervalMs: 0 }), /intervalMs must be a positive/);

  const before = probes;
  await reg.deregister();
  const after = probes;
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.ok(probes - after <= 1 && after >= before, 'no more probes after deregister');
  t.throws(() => reg.healthCheck(() => true), /deregistered or its client closed/);
});

t.test('end to end: nginx (via rollcall render --watch) stops sending to a sick instance and resumes after recovery', async (t) => {
  const nginx = requireBinary(t, 'nginx');
  if (!nginx) return;
  const dir = t.testdir();
  const server = await startServer(t);
  const [portA, portB, nginxPort] = await Promise.all([freePort(), freePort(), freePort()]);
  for (const [id, port] of [['a', portA], ['b', portB]] as const) {
    startAgent(t, ['--registry', server.url, '--service', 'web', '--id', id, '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--health-http', '/health', ...FAST], child(port));
  }
  await waitFor(async () => (await api(`${server.url}/v1/namespaces/default/services/web/instances?status=up`)).body?.items?.length === 2, 15_000, 'both up');

  const prefix = await nginxPrefix(join(dir, 'nginx'));
  const conf = join(prefix.confD, 'rollcall.conf');
  const ngx = nginxArgs(nginx, join(dir, 'nginx'), prefix.main);
  const common = ['--registry', server.url, '--namespace', 'default', '--service', 'web', '--listen', `127.0.0.1:${nginxPort}`, '--out', conf];
  const oneShot = spawnOwned(t, [process.execPath, CLI, 'render', 'nginx', ...common]);
  t.equal((await once(oneShot, 'exit'))[0], 0, oneShot.logs());
  const nginxProc = spawnOwned(t, ngx);
  const watcher = spawnOwned(t, [process.execPath, CLI, 'render', 'nginx', ...common, '--watch', '--check', `${ngx.join(' ')} -t -q`, '--reload', `${ngx.join(' ')} -s reload`]);
  await waitFor(() => watcher.logs().includes('following namespace'), 15_000, 'the render watcher');

  const who = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const res = await getVia(nginxPort, 'web.default');
      if (res.status === 200) seen.add(res.body.trim());
    }
    return [...seen].sort();
  };
  await waitFor(async () => (await who(10)).length === 2, 15_000, 'nginx spreads over a and b');

  await childGet(portB, '/set-health?code=500');
  const onlyA = await waitFor(async () => {
    const seen = await who(12);
    return oldWorkersGone(nginxProc) && seen.length === 1 && seen[0] === `hello from ${portA}` ? seen : undefined;
  }, 20_000, 'nginx to stop sending to the sick b');
  t.same(onlyA, [`hello from ${portA}`], 'the sick instance gets no traffic');

  await childGet(portB, '/set-health?code=200');
  await waitFor(async () => (await who(12)).length === 2, 20_000, 'nginx to send to b again');
  t.pass('b gets traffic again after it recovered');
});

t.test('registry unreachable: the agent keeps probing and sends the current state once the registry is back', async (t) => {
  const port = await freePort();
  const first = await startServerProcess(t);
  const agent = startAgent(
    t,
    ['--registry', first.url, '--service', 'api', '--id', 'u1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--health-http', '/health', ...FAST],
    child(port),
  );
  await waitFor(async () => (await api(instanceUrl(first.url, 'u1'))).body?.status === 'up', 15_000, 'up');
  await first.kill('SIGKILL');
  await childGet(port, '/set-health?code=500');
  await waitFor(() => /health check failed 3 times/.test(agent.stderr()), 15_000, 'the flip while the registry is down');
  const again = await startServerProcess(t, { dataDir: first.dataDir, port: first.port });
  const back = await waitFor(async () => {
    const r = await api(instanceUrl(again.url, 'u1'));
    return r.body?.status === 'down' ? r.body : undefined;
  }, 20_000, 'the sick state to reach the restarted registry');
  t.equal(back.metadata[HEALTH_METADATA.result], 'failing: HTTP 500 from /health');
});

t.test('without a --health-* flag the readiness check is repeated (here --ready-http)', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'r1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '300', '--ready-http', '/health', ...FAST],
    child(port),
  );
  await waitFor(async () => (await api(instanceUrl(server.url, 'r1'))).body?.status === 'up', 15_000, 'up');
  await childGet(port, '/set-health?code=503');
  const down = await waitFor(async () => {
    const r = await api(instanceUrl(server.url, 'r1'));
    return r.body?.status === 'down' ? r.body : undefined;
  }, 15_000, 'down through the repeated readiness check');
  t.equal(down.metadata[HEALTH_METADATA.result], 'failing: HTTP 503 from /health');
});
