// `rollcall service create|get|delete|list` and `rollcall env` against a real registry: output, exit codes, and
// variables a real shell reads; `rollcall agent --env-services` hands them to a real child.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { formatEnv, serviceEnv, shellQuote } from '../src/cli/service-env.js';
import { api, CHILD_ENV, CLI, freePort, startServer, waitFor } from './helper.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...CHILD_ENV, ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const rollcall = (args: string[], env: Record<string, string> = {}) => run(process.execPath, [CLI, ...args], env);
const oneLine = (t: Test, r: Run) => t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);

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

  const missing = await rollcall(['service', 'get', 'nope'], env);
  t.equal(missing.code, 3, 'not found');
  oneLine(t, missing);
  const taken = await rollcall(['service', 'create', 'api', '--port', '80', '--virtual-ip', '127.77.0.1'], env);
  t.equal(taken.code, 1, 'a 4xx refusal');
  t.match(taken.stderr, /^rollcall: virtualIP 127\.77\.0\.1 already belongs to another Service/);
  const takenJson = await rollcall(['service', 'create', 'api', '--port', '80', '--virtual-ip', '127.77.0.1', '--json'], env);
  t.match(JSON.parse(takenJson.stderr), { error: 'virtual_ip_taken', status: 409 });
  for (const bad of ['0', '80:', '80:99999', '80/Bad_Name', 'http']) {
    const r = await rollcall(['service', 'create', 'api', '--port', bad], env);
    t.equal(r.code, 1, `--port ${bad}`);
    t.match(r.stderr, /PORT\[:TARGET_PORT\]\[\/NAME\]/);
  }
  const twoUnnamed = await rollcall(['service', 'create', 'api', '--port', '80', '--port', '81'], env);
  t.equal(twoUnnamed.code, 1);
  t.match(twoUnnamed.stderr, /ports\.0\.name.*more than one port/);
  t.equal((await rollcall(['service', 'create', 'api'], env)).code, 1, '--port is required');

  t.equal((await rollcall(['service', 'delete', 'web'], env)).stdout, 'deleted service default/web\n');
  t.equal((await rollcall(['service', 'delete', 'web'], env)).code, 3);
  t.equal((await api(`${server.url}/v1/namespaces/default/services/plain/instances`)).body.items.length, 1, 'instances untouched');

  const down = await rollcall(['service', 'list', '--registry', `http://127.0.0.1:${await freePort()}`]);
  t.equal(down.code, 2, 'unreachable');
  oneLine(t, down);
});

t.test('rollcall env: sh output a real shell sources, dotenv and json, --services selection', async (t) => {
  const server = await startServer(t);
  const env = { ROLLCALL_URL: server.url };
  await rollcall(['service', 'create', 'web-front', '--port', '80:8080/http', '--port', '443/https-alt'], env);
  await rollcall(['service', 'create', 'db', '--port', '5432'], env);
  await rollcall(['service', 'create', 'other', '-n', 'team-b', '--port', '1'], env);
  await api(`${server.url}/v1/namespaces/default/services/no-vip/instances/a`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });

  const sh = await rollcall(['env'], env);
  t.equal(sh.code, 0, sh.stderr);
  t.equal(
    sh.stdout,
    [
      "export DB_SERVICE_HOST='127.77.0.2'",
      "export DB_SERVICE_PORT='5432'",
      "export WEB_FRONT_SERVICE_HOST='127.77.0.1'",
      "export WEB_FRONT_SERVICE_PORT='80'",
      "export WEB_FRONT_SERVICE_PORT_HTTP='80'",
      "export WEB_FRONT_SERVICE_PORT_HTTPS_ALT='443'",
      '',
    ].join('\n'),
    'Kubernetes names, sorted by service; a service without a Service has none',
  );
  const file = join(t.testdir(), 'env.sh');
  writeFileSync(file, sh.stdout);
  const sourced = await run('sh', ['-c', `. ${file}; echo "$WEB_FRONT_SERVICE_HOST:$WEB_FRONT_SERVICE_PORT_HTTPS_ALT $DB_SERVICE_PORT"; sh -c 'echo "$DB_SERVICE_HOST"'`]);
  t.equal(sourced.stdout, '127.77.0.1:443 5432\n127.77.0.2\n', 'sh sources it, and exports reach its children');

  const dotenv = await rollcall(['env', '--format', 'dotenv', '--services', 'db'], env);
  t.equal(dotenv.stdout, 'DB_SERVICE_HOST=127.77.0.2\nDB_SERVICE_PORT=5432\n');
  const json = await rollcall(['env', '--format', 'json', '-n', 'team-b'], env);
  t.same(JSON.parse(json.stdout), { OTHER_SERVICE_HOST: '127.77.0.3', OTHER_SERVICE_PORT: '1' });
  t.equal((await rollcall(['env', '-n', 'empty'], env)).stdout, '', 'no Services, no variables');
  t.same(JSON.parse((await rollcall(['env', '-n', 'empty', '--format', 'json'], env)).stdout), {});

  const missing = await rollcall(['env', '--services', 'db,nope'], env);
  t.equal(missing.code, 3);
  t.match(missing.stderr, /^rollcall: no Service "nope" in namespace "default"/);
  const badSel = await rollcall(['env', '--services', 'Bad_Name'], env);
  t.equal(badSel.code, 1);
  t.match(badSel.stderr, /^error: option '--services <all\|a,b>' argument 'Bad_Name' is invalid\. must be "all"/);
  t.equal((await rollcall(['env', '--format', 'yaml'], env)).code, 1);
});

t.test('env formatting: quoting survives any value; names as the kubelet makes them', async (t) => {
  const vars = serviceEnv([{ name: 'a-b-c', virtualIP: 'fd00::1', ports: [{ name: 'x-y', port: 1, targetPort: null, protocol: 'tcp' }] }]);
  t.same(vars, [
    ['A_B_C_SERVICE_HOST', 'fd00::1'],
    ['A_B_C_SERVICE_PORT', '1'],
    ['A_B_C_SERVICE_PORT_X_Y', '1'],
  ]);
  const nasty = `it's "$(rm -rf /)" \`x\` \\ ; done`;
  const file = join(t.testdir(), 'q.sh');
  writeFileSync(file, formatEnv([['X', nasty]], 'sh'));
  t.equal((await run('sh', ['-c', `. ${file}; printf %s "$X"`])).stdout, nasty);
  t.equal(shellQuote("'"), `''\\'''`);
});

t.test('agent --env-services: the variables reach a real child; a missing Service stops before CMD starts', async (t) => {
  const server = await startServer(t);
  await api(`${server.url}/v1/namespaces/default/services/web`, 'PUT', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  await api(`${server.url}/v1/namespaces/default/services/db`, 'PUT', { ports: [{ port: 5432 }] });
  const fixture = fileURLToPath(new URL('./fixtures/agent-child.js', import.meta.url));
  const port = await freePort();
  const script = `echo "env: $WEB_SERVICE_HOST $WEB_SERVICE_PORT $WEB_SERVICE_PORT_HTTP \${DB_SERVICE_HOST:-none}"; exec "${process.execPath}" "${fixture}" ${port}`;
  const agent = spawn(
    process.execPath,
    [CLI, 'agent', '--registry', server.url, '--service', 'api', '--id', 'a1', '--address', '127.0.0.1', '--port', String(port), '--env-services', 'web', '--', 'sh', '-c', script],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...CHILD_ENV, WEB_SERVICE_HOST: 'stale' } },
  );
  const exited = once(agent, 'exit');
  t.teardown(() => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  agent.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => out.includes('child: listening'), 10_000, 'the child');
  t.match(out, /^env: 127\.77\.0\.1 80 80 none\n/, 'only the Services asked for; the registry wins over an inherited value');
  t.match(err, /--env-services: 3 variables/);
  agent.kill('SIGTERM');
  await exited;

  const refused = await rollcall(['agent', '--registry', server.url, '--service', 'api', '--port', String(port), '--env-services', 'web,nope', '--', 'sh', '-c', 'echo started']);
  t.equal(refused.code, 1);
  t.notMatch(refused.stdout, /started/, 'CMD never ran');
  t.match(refused.stderr, /no Service "nope" in namespace "default".*is not started/);
  t.equal((await api(`${server.url}/v1/namespaces/default/services/api/instances`)).body.items.length, 0, 'and nothing was registered');
  const badFlag = await rollcall(['agent', '--service', 'api', '--port', '1', '--env-services', 'a,,b', '--', 'true']);
  t.equal(badFlag.code, 1);
  oneLine(t, badFlag);
});
