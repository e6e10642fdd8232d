// Failing over across registry replicas (url: [a, b, c], --registry a,b,c), with real servers: a call to a dead or
// 503-answering replica goes to the next, a registration keeps its lease through whichever replica answers, a watch
// view and `rollcall watch` move to another replica when theirs is killed. The replicas here are independent SQLite
// registries, which is enough for the mechanics; that nothing is missed across the move (shared revisions) is
// proven over etcd in ha-etcd.test.ts.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { createClient, RollcallClientError } from '../src/client/index.js';
import { startAgent, child } from './agent-process.js';
import { oneLine, rollcall } from './cli-process.js';
import { api, CHILD_ENV, CLI, freePort, PATIENCE_MS, startServer, startServerProcess, waitFor } from './helper.js';

const FAST = { minMs: 50, maxMs: 300 };
const inst = (url: string, id: string, service = 'web') => `${url}/v1/namespaces/default/services/${service}/instances/${id}`;
const body = (n: number) => ({ ttlSeconds: 3600, address: `10.0.0.${n}`, port: 80 });

/** A replica that lost its store: answers every request 503 store_unavailable, as a rollcall replica cut off from etcd does. Counts the requests. */
async function unavailableReplica(t: Test): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'store_unavailable', message: 'The store (etcd) does not answer.' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

t.test('a call to a dead replica is sent to the next one, and later calls go to the one that answered', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const live = await startServer(t);
  const client = createClient({ url: [dead, live.url], retry: FAST });
  t.teardown(() => client.close());
  t.same(client.urls, [dead, live.url]);
  t.equal(client.url, dead, 'the first URL until something failed');
  const put = await client.putInstance('default', 'web', 'a', body(1));
  t.equal(put.created, true);
  t.equal(client.url, live.url, 'the replica that answered is now the first choice');
  t.equal((await api(inst(live.url, 'a'))).status, 200, 'registered on the live replica');
  t.equal((await client.getInstance('default', 'web', 'a')).address, '10.0.0.1');
});

t.test('a replica answering 503 is skipped; a 4xx is the registry\'s verdict and is not retried elsewhere', async (t) => {
  const sick = await unavailableReplica(t);
  const a = await startServer(t);
  const b = await startServer(t);
  await api(inst(b.url, 'only-on-b'), 'PUT', body(2));
  const client = createClient({ url: [sick.url, a.url, b.url], retry: FAST });
  t.teardown(() => client.close());
  await client.putInstance('default', 'web', 'x', body(1));
  t.equal(sick.hits(), 1, 'tried once');
  t.equal((await api(inst(a.url, 'x'))).status, 200, 'the write went to the next replica');
  const err = await client.getInstance('default', 'web', 'only-on-b').catch((e: unknown) => e);
  t.ok(err instanceof RollcallClientError);
  t.equal((err as RollcallClientError).code, 'instance_not_found', 'a 404 from a replica is the answer');
  t.equal(client.url, a.url, 'and does not move the client off that replica');
  t.equal(sick.hits(), 1, 'the 503 replica is not asked again while the current one answers');
});

t.test('when every replica fails, the error keeps the last code and names what each replica did', async (t) => {
  const sick = await unavailableReplica(t);
  const dead = `http://127.0.0.1:${await freePort()}`;
  const client = createClient({ url: [dead, sick.url], retry: FAST });
  t.teardown(() => client.close());
  const err = (await client.listNamespaces().catch((e: unknown) => e)) as RollcallClientError;
  t.ok(err instanceof RollcallClientError);
  t.equal(err.code, 'store_unavailable');
  t.equal(err.status, 503);
  t.match(err.message, /no registry replica answered/);
  t.match(err.message, new RegExp(`${dead}: Cannot reach the registry`));
  t.match(err.message, new RegExp(`${sick.url}: 503 store_unavailable`));
  t.throws(() => createClient({ url: [] }), /at least one registry URL/);
  t.throws(() => createClient({ url: ['http://127.0.0.1:1', 'ftp://x'] }), /Invalid registry URL "ftp:\/\/x"/);
});

t.test('a registration keeps its lease through whichever replica answers', async (t) => {
  const a = await startServerProcess(t);
  const b = await startServer(t);
  const client = createClient({ url: [a.url, b.url], retry: FAST });
  t.teardown(() => client.close());
  // A short TTL is the point here: heartbeats every ~1 s, so the move happens within the test.
  const reg = await client.register({ service: 'web', id: 'hb', address: '10.0.0.9', port: 80, ttlSeconds: 3 });
  reg.on('error', () => {});
  t.equal((await api(inst(a.url, 'hb'))).status, 200, 'registered on the first replica');
  await a.kill('SIGKILL');
  // b never saw the instance: its heartbeat answers 404 and the handle registers again there.
  await waitFor(async () => (await api(inst(b.url, 'hb'))).status === 200, PATIENCE_MS, 'registered on the second replica');
  t.equal(client.url, b.url);
  const before = (await api(inst(b.url, 'hb'))).body.lastHeartbeatAt as string;
  await waitFor(async () => (await api(inst(b.url, 'hb'))).body.lastHeartbeatAt !== before, PATIENCE_MS, 'heartbeats reach the second replica');
  t.ok(reg.registered);
});

t.test('a watch view whose replica is killed continues on another replica', async (t) => {
  const a = await startServerProcess(t);
  const b = await startServer(t);
  // a is ahead of b (revision 2 against 1), so a's resume point is one b has not reached.
  await api(inst(a.url, 'on-a'), 'PUT', body(1));
  await api(inst(a.url, 'on-a'), 'PATCH', { weight: 2 });
  await api(inst(b.url, 'on-b'), 'PUT', body(2));
  const client = createClient({ url: [a.url, b.url], retry: FAST });
  t.teardown(() => client.close());
  const view = client.watch({ service: 'web' });
  const errors: string[] = [];
  view.on('error', (e) => errors.push(e.message));
  await view.ready;
  t.same(view.instances().map((i) => i.id), ['on-a']);
  await a.kill('SIGKILL');
  // Independent registries number revisions apart, so b refuses a's resume point (revision_ahead) and the view
  // lists b after a few tries; over etcd the resume point is valid on every replica and nothing is listed again.
  await waitFor(() => view.instances().some((i) => i.id === 'on-b'), PATIENCE_MS, 'the view shows the second replica');
  t.same(view.instances().map((i) => i.id), ['on-b']);
  await api(inst(b.url, 'later'), 'PUT', body(3));
  await waitFor(() => view.instances().length === 2, PATIENCE_MS, 'events from the second replica');
  t.match(errors.join('\n'), new RegExp(`Watch connection .*${a.url}`), 'the lost replica was reported');
});

t.test('CLI: --registry a,b,c on the people commands, `watch`, `render` and `agent`', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const a = await startServerProcess(t);
  const b = await startServer(t);
  const list = `${dead},${a.url},${b.url}`;

  const reg = await rollcall(['register', 'web', 'w1', '--address', '10.0.0.1', '--port', '80', '--ttl', '3600', '--registry', list]);
  t.equal(reg.code, 0, reg.stderr);
  t.equal((await api(inst(a.url, 'w1'))).status, 200, 'the people CLI skipped the dead replica');
  const viaEnv = await rollcall(['get', 'web', 'w1', '--json'], { ROLLCALL_URL: `${dead},${a.url}` });
  t.equal(viaEnv.code, 0, viaEnv.stderr);
  t.equal(JSON.parse(viaEnv.stdout).id, 'w1');
  const allDead = await rollcall(['list', 'web', '--registry', `${dead},${dead.replace(/\d+$/, String(await freePort()))}`]);
  t.equal(allDead.code, 2, 'unreachable everywhere: exit 2');
  oneLine(t, allDead);
  const bad = await rollcall(['list', 'web', '--registry', `${a.url},ftp://x`]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--registry.*must be an http:\/\/ or https:\/\/ URL/);

  // rollcall watch: a killed replica → the next one, resumed with sinceRevision (the ERROR line shows it was a resume).
  const watch = spawn(process.execPath, [CLI, 'watch', '--registry', `${a.url},${b.url}`, '--namespace', 'default', '--service', 'web'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: CHILD_ENV,
  });
  t.teardown(() => void watch.kill('SIGKILL'));
  let out = '';
  let err = '';
  watch.stdout.on('data', (d: Buffer) => (out += d.toString()));
  watch.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => /EXISTS default\/web\/w1 .*\n/.test(out), PATIENCE_MS, 'snapshot from a');
  // a ahead of b (revision 2 against 1): b refuses a's resume point.
  await api(inst(a.url, 'w1'), 'PATCH', { weight: 2 });
  await waitFor(() => /MODIFIED default\/web\/w1 .*\n/.test(out), PATIENCE_MS, 'the change on a');
  await api(inst(b.url, 'on-b'), 'PUT', body(2));
  await a.kill('SIGKILL');
  await waitFor(() => /EXISTS default\/web\/on-b .*\n/.test(out), PATIENCE_MS, 'b listed after the move');
  t.match(err, /starting over from a snapshot/, 'b refused a\'s resume point (independent registries): the watch listed b');

  // rollcall render: the one-shot's request and its watch view both skip the dead replica.
  const render = await rollcall(['render', 'haproxy', '--registry', `${dead},${b.url}`, '--namespace', 'default', '--listen', '9000']);
  t.equal(render.code, 0, render.stderr);
  t.match(render.stdout, /10\.0\.0\.2:80/, 'rendered from the live replica');

  // rollcall agent: registers through the first replica that answers.
  const port = await freePort();
  const agent = startAgent(t, ['--registry', `${dead},${b.url}`, '--service', 'api', '--id', 'ag', '--address', '127.0.0.1', '--port', String(port), '--ttl', '3600'], child(port));
  await waitFor(async () => (await api(inst(b.url, 'ag', 'api'))).body?.status === 'up', PATIENCE_MS, 'the agent registered on b');
  t.ok(agent.proc.pid);
  const badAgent = await rollcall(['agent', '--registry', `${b.url},nope`, '--service', 'api', '--port', '80', '--', 'true']);
  t.equal(badAgent.code, 1);
  t.match(badAgent.stderr, /--registry must be a URL .*got "nope"/);
});
