// `rollcall service create|get|delete|list` and `rollcall watch --resources` against a real registry: output and
// exit codes.
import { spawn } from 'node:child_process';
import t from 'tap';
import { oneLine, rollcall } from './cli-process.js';
import { api, CHILD_ENV, CLI, freePort, startServer, waitFor } from './helper.js';


t.test('service create, get, list, delete: tables, --json and exit codes', async (t) => {
  const server = await startServer(t);
  const env = { ROLLCALL_URL: server.url };
  const created = await rollcall(['service', 'create', 'web', '--port', '80:8080/http', '--port', '9100/metrics'], env);
  t.equal(created.code, 0, created.stderr);
  t.equal(created.stdout, 'created service default/web at 127.77.0.1 (ports 80:8080/http,9100/metrics, revision 1)\n');
  const replaced = await rollcall(['service', 'create', 'web', '--port', '80:8080/http', '--port', '9100/metrics', '--json'], env);
  t.equal(replaced.code, 0);
  t.match(JSON.parse(replaced.stdout), { name: 'web', virtualIP: '127.77.0.1', revision: 1 });
  const asked = await rollcall(['service', 'create', 'db', '-n', 'team-a', '--port', '5432', '--virtual-ip', '127.77.9.9'], env);
  t.match(asked.stdout, /^created service team-a\/db at 127\.77\.9\.9 \(ports 5432,/);

  const get = await rollcall(['service', 'get', 'web'], env);
  t.equal(get.code, 0);
  t.match(get.stdout, /virtual IP: +127\.77\.0\.1/);
  t.same(get.stdout.trimEnd().split('\n').slice(4).map((l) => l.trim().split(/\s{2,}/)), [
    ['PORT', 'NAME', 'TARGET PORT', 'PROTOCOL'],
    ['80', 'http', '8080', 'tcp'],
    ['9100', 'metrics', 'registered port', 'tcp'],
  ]);
  t.match(JSON.parse((await rollcall(['service', 'get', 'web', '--json'], env)).stdout), { ports: [{ port: 80 }, { port: 9100 }] });

  await api(`${server.url}/v1/namespaces/default/services/plain/instances/a`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
  const list = await rollcall(['service', 'list'], env);
  t.equal(list.code, 0);
  t.same(list.stdout.trimEnd().split('\n').map((l) => l.split(/\s{2,}/)), [
    ['SERVICE', 'VIRTUAL IP', 'PORTS', 'INSTANCES', 'UP'],
    ['plain', '-', '-', '1', '1'],
    ['web', '127.77.0.1', '80:8080/http,9100/metrics', '0', '0'],
  ]);
  t.equal((await rollcall(['service', 'list', '-n', 'empty'], env)).stdout, 'no services in namespace empty\n');

  const [missing, taken, takenJson] = await Promise.all([
    rollcall(['service', 'get', 'nope'], env),
    rollcall(['service', 'create', 'api', '--port', '80', '--virtual-ip', '127.77.0.1'], env),
    rollcall(['service', 'create', 'api', '--port', '80', '--virtual-ip', '127.77.0.1', '--json'], env),
  ]);
  t.equal(missing.code, 3, 'not found');
  oneLine(t, missing);
  t.equal(taken.code, 1, 'a 4xx refusal');
  t.match(taken.stderr, /^rollcall: virtualIP 127\.77\.0\.1 already belongs to another Service/);
  t.match(JSON.parse(takenJson.stderr), { error: 'virtual_ip_taken', status: 409 });
  // Independent refusals, run side by side: each CLI start costs a second or more on a loaded machine.
  const badPorts = ['0', '80:', '80:99999', '80/Bad_Name', 'http'];
  const [twoUnnamed, noPort, ...badRuns] = await Promise.all([
    rollcall(['service', 'create', 'api', '--port', '80', '--port', '81'], env),
    rollcall(['service', 'create', 'api'], env),
    ...badPorts.map((bad) => rollcall(['service', 'create', 'api', '--port', bad], env)),
  ]);
  badRuns.forEach((r, i) => {
    t.equal(r.code, 1, `--port ${badPorts[i]}`);
    t.match(r.stderr, /PORT\[:TARGET_PORT\]\[\/NAME\]/);
  });
  t.equal(twoUnnamed!.code, 1);
  t.match(twoUnnamed!.stderr, /ports\.0\.name.*more than one port/);
  t.equal(noPort!.code, 1, '--port is required');

  t.equal((await rollcall(['service', 'delete', 'web'], env)).stdout, 'deleted service default/web\n');
  t.equal((await rollcall(['service', 'delete', 'web'], env)).code, 3);
  t.equal((await api(`${server.url}/v1/namespaces/default/services/plain/instances`)).body.items.length, 1, 'instances untouched');

  const down = await rollcall(['service', 'list', '--registry', `http://127.0.0.1:${await freePort()}`]);
  t.equal(down.code, 2, 'unreachable');
  oneLine(t, down);
});

t.test('rollcall watch --resources services,instances prints Service lines too; a bad list fails', async (t) => {
  const server = await startServer(t);
  await api(`${server.url}/v1/namespaces/default/services/web`, 'PUT', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  const child = spawn(process.execPath, [CLI, 'watch', '--registry', server.url, '--namespace', 'default', '--resources', 'services,instances'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: CHILD_ENV,
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('EXISTS'), 10_000, 'snapshot lines');
  t.match(out, /^1 SNAPSHOT 0 instance\(s\), 1 service\(s\)\n1 EXISTS service default\/web 127\.77\.0\.1 ports 80:8080\/http\n/);
  await api(`${server.url}/v1/namespaces/default/services/web`, 'DELETE');
  await waitFor(() => out.includes('DELETED'), 10_000, 'DELETED line');
  t.match(out, /2 DELETED service default\/web 127\.77\.0\.1 ports 80:8080\/http \(deleted\)/);
  child.kill('SIGTERM');
  const bad = await rollcall(['watch', '--registry', server.url, '--resources', 'pods']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^rollcall: Invalid request: querystring.resources/);
});
