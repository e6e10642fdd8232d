// Kubernetes-style service variables: `rollcall env` output a real shell reads, and `rollcall agent --env-services`
// handing them to a real child.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { formatEnv, serviceEnv, shellQuote } from '../src/cli/service-env.js';
import { rollcall, run, oneLine } from './cli-process.js';
import { api, CHILD_ENV, CLI, freePort, startServer, waitFor } from './helper.js';


t.test('rollcall env: sh output a real shell sources, dotenv and json, --services selection', async (t) => {
  const server = await startServer(t);
  const env = { ROLLCALL_URL: server.url };
  // Made over HTTP: the CLI's own create is tested in service-cli.test.ts.
  const put = (ns: string, name: string, body: object) => api(`${server.url}/v1/namespaces/${ns}/services/${name}`, 'PUT', body);
  await put('default', 'web-front', { ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'https-alt', port: 443 }] });
  await put('default', 'db', { ports: [{ port: 5432 }] });
  await put('team-b', 'other', { ports: [{ port: 1 }] });
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

  // Independent runs side by side: each CLI start costs a second or more on a loaded machine.
  const [dotenv, json, empty, emptyJson, missing, badSel, badFormat] = await Promise.all([
    rollcall(['env', '--format', 'dotenv', '--services', 'db'], env),
    rollcall(['env', '--format', 'json', '-n', 'team-b'], env),
    rollcall(['env', '-n', 'empty'], env),
    rollcall(['env', '-n', 'empty', '--format', 'json'], env),
    rollcall(['env', '--services', 'db,nope'], env),
    rollcall(['env', '--services', 'Bad_Name'], env),
    rollcall(['env', '--format', 'yaml'], env),
  ]);
  t.equal(dotenv.stdout, 'DB_SERVICE_HOST=127.77.0.2\nDB_SERVICE_PORT=5432\n');
  t.same(JSON.parse(json.stdout), { OTHER_SERVICE_HOST: '127.77.0.3', OTHER_SERVICE_PORT: '1' });
  t.equal(empty.stdout, '', 'no Services, no variables');
  t.same(JSON.parse(emptyJson.stdout), {});
  t.equal(missing.code, 3);
  t.match(missing.stderr, /^rollcall: no Service "nope" in namespace "default"/);
  t.equal(badSel.code, 1);
  t.match(badSel.stderr, /^error: option '--services <all\|a,b>' argument 'Bad_Name' is invalid\. must be "all"/);
  t.equal(badFormat.code, 1);
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

