// `rollcall agent` with a real registry and a real child process (test/fixtures/agent-child.ts).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { AGENT_CHILD as FIXTURE, child, instanceUrl, startAgent, type Agent } from './agent-process.js';
import { api, CHILD_ENV, CLI, freePort, startServer, startServerProcess, PATIENCE_MS, waitFor } from './helper.js';
import { changes, openWatch } from './watch-client.js';

const env = CHILD_ENV;

t.test('lifecycle: starting → up → draining → gone; SIGTERM reaches the child after the drain; its exit code passes through', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const watch = await openWatch(server.url, { namespace: 'default', service: 'api' });
  t.teardown(() => watch.close());
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'a1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '3600', '--drain-seconds', '0.6', '--tag', 'http', '--meta', 'v=1'],
    child(port, '--listen-after', '400', '--exit-code', '7'),
  );
  await watch.until((m) => changes(m).some((e) => e.instance.status === 'up'));
  t.match(stdoutLines(agent), ['child: started as', 'child: listening on']);
  agent.proc.kill('SIGTERM');
  const draining = await waitFor(() => changes(watch.messages).find((e) => e.instance.status === 'draining'), PATIENCE_MS, 'draining');
  const { code, signal } = await agent.exited;
  t.equal(code, 7, "the child's exit code");
  t.equal(signal, null);
  const got = /child: got SIGTERM at (\d+)/.exec(agent.stdout());
  t.ok(got, 'the signal reached the child');
  // Both clocks are this machine's: the registry stamped the draining write, the child the signal's arrival. The
  // agent waits --drain-seconds after the registry answered, so the gap is at least 600 ms however slow the machine.
  const drainedFor = Number(got?.[1]) - Date.parse(draining.instance.lastHeartbeatAt);
  t.ok(drainedFor >= 600, `the child got SIGTERM ${drainedFor} ms after the instance became draining (--drain-seconds 0.6)`);
  t.equal((await api(instanceUrl(server.url, 'a1'))).status, 404, 'deregistered before the agent exited');
  await watch.until((m) => changes(m).some((e) => e.type === 'DELETED'));
  t.same(
    changes(watch.messages).map((e) => [e.type, e.instance.status, e.reason]),
    [
      ['ADDED', 'starting', 'registered'],
      ['MODIFIED', 'up', 'updated'],
      ['MODIFIED', 'draining', 'updated'],
      ['DELETED', 'draining', 'deregistered'],
    ],
  );
  t.match(changes(watch.messages)[0].instance, { id: 'a1', port, address: '127.0.0.1', ttlSeconds: 3600, tags: ['http'], metadata: { v: '1' } });
});

function stdoutLines(agent: Agent): string[] {
  return agent.stdout().trim().split('\n');
}

t.test('a child that exits by itself: deregistered, its exit code passed through', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const watch = await openWatch(server.url, { namespace: 'default', service: 'api' });
  t.teardown(() => watch.close());
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'd1', '--address', '127.0.0.1', '--port', String(port)],
    child(port, '--die-after', '700', '--exit-code', '3'),
  );
  const { code } = await agent.exited;
  t.equal(code, 3);
  t.match(agent.stdout(), /dying with 3/);
  t.equal((await api(instanceUrl(server.url, 'd1'))).status, 404);
  await watch.until((m) => changes(m).some((e) => e.type === 'DELETED'));
  t.same(changes(watch.messages).at(-1)?.reason, 'deregistered', 'removed by the agent, not by expiry');
});

t.test('a child killed by a signal: the agent exits 128 + signal number', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'k1', '--address', '127.0.0.1', '--port', String(port)],
    child(port),
  );
  await waitFor(() => /listening/.test(agent.stdout()), PATIENCE_MS, 'child listening');
  const pid = Number(/started as (\d+)/.exec(agent.stdout())![1]);
  process.kill(pid, 'SIGKILL');
  t.equal((await agent.exited).code, 128 + 9);
  t.equal((await api(instanceUrl(server.url, 'k1'))).status, 404);
});

t.test('registry down at start: the child runs, the agent registers once the registry is up', async (t) => {
  const registryPort = await freePort();
  const port = await freePort();
  const agent = startAgent(
    t,
    ['--registry', `http://127.0.0.1:${registryPort}`, '--service', 'api', '--id', 'r1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '3600'],
    child(port),
  );
  await waitFor(() => /listening/.test(agent.stdout()), PATIENCE_MS, 'the child runs without a registry');
  t.match(agent.stderr(), /registry not reachable yet/);
  const server = await startServerProcess(t, { port: registryPort });
  const res = await waitFor(async () => {
    const r = await api(instanceUrl(server.url, 'r1'));
    return r.status === 200 && r.body.status === 'up' ? r : undefined;
  }, PATIENCE_MS, 'registered as up');
  t.equal(res.body.port, port);
  agent.proc.kill('SIGINT');
  const { code } = await agent.exited;
  t.equal(code, 0);
  t.match(agent.stdout(), /got SIGINT/, 'SIGINT is forwarded as SIGINT');
  t.equal((await api(instanceUrl(server.url, 'r1'))).status, 404);
});

t.test('--ready-http: up only once the path answers 2xx', async (t) => {
  const server = await startServer(t);
  const port = await freePort();
  const ready = join(t.testdir(), 'ready');
  const agent = startAgent(
    t,
    ['--registry', server.url, '--service', 'api', '--id', 'h1', '--address', '127.0.0.1', '--port', String(port), '--ready-http', '/ready'],
    child(port, '--ready-file', ready),
  );
  await waitFor(() => /listening/.test(agent.stdout()), PATIENCE_MS, 'child listening');
  // The port is open, but /ready answers 503 until the file exists: the agent must keep it starting.
  t.equal((await api(instanceUrl(server.url, 'h1'))).body.status, 'starting', 'port open but /ready answers 503');
  writeFileSync(ready, '');
  await waitFor(async () => (await api(instanceUrl(server.url, 'h1'))).body.status === 'up', PATIENCE_MS, 'up');
  agent.proc.kill('SIGTERM');
  t.equal((await agent.exited).code, 0);
});

t.test('bad flags, no command, refused registration: one line, non-zero exit, nothing started', async (t) => {
  const server = await startServer(t);
  const run = async (args: string[]) => {
    const p = spawn(process.execPath, [CLI, 'agent', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(p, 'exit')) as [number];
    return { code, out, err };
  };
  const reg = ['--registry', server.url];
  const cases: Array<[string[], RegExp]> = [
    [[...reg, '--service', 'api', '--port', '80'], /no command given/],
    [[...reg, '--port', '80', '--', 'true'], /--service is required/],
    [[...reg, '--service', 'api', '--', 'true'], /--port is required/],
    [[...reg, '--service', 'api', '--port', 'x', '--', 'true'], /--port must be an integer/],
    [[...reg, '--service', 'Api', '--port', '80', '--', 'true'], /--service must be a DNS-1123 label/],
    [[...reg, '--service', 'api', '--port', '80', '--weight', '300', '--', 'true'], /--weight must be an integer from 0 to 256/],
    [[...reg, '--service', 'api', '--port', '80', '--meta', 'novalue', '--', 'true'], /--meta must be key=value/],
    [[...reg, '--service', 'api', '--port', '80', '--drain-seconds', '-1', '--', 'true'], /--drain-seconds must be/],
    [['--registry', 'nope', '--service', 'api', '--port', '80', '--', 'true'], /--registry must be a URL/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.code, 1, args.join(' '));
    t.match(r.err, message);
    t.equal(r.err.trim().split('\n').length, 1, 'one line');
  }
  // The registry refuses the address: the child is never started.
  const refused = await run([...reg, '--service', 'api', '--port', '80', '--address', 'bad host!', '--', process.execPath, FIXTURE, '80']);
  t.equal(refused.code, 1);
  t.match(refused.err, /refused/);
  t.equal(refused.out, '', 'the child never ran');
  // A command that cannot be run: 127, and the registration is removed.
  const missing = await run([...reg, '--service', 'api', '--id', 'm1', '--port', '80', '--address', '127.0.0.1', '--', '/nonexistent/cmd']);
  t.equal(missing.code, 127);
  t.equal((await api(instanceUrl(server.url, 'm1'))).status, 404);
});
