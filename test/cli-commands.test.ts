// The people commands against a real registry: output (table and --json) and exit codes
// (0 ok, 1 bad input, 2 unreachable, 3 not found).
import { execFile } from 'node:child_process';
import t from 'tap';
import { api, CHILD_ENV, CLI, freePort, PATIENCE_MS, startServer } from './helper.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const baseEnv = CHILD_ENV;

function rollcall(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env }, timeout: 2 * PATIENCE_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}


t.test('register, list, get, heartbeat, services, namespaces, deregister', async (t) => {
  const server = await startServer(t);
  const env = { ROLLCALL_URL: server.url };

  const reg = await rollcall(['register', 'web', 'w1', '--address', '10.0.0.1', '--port', '8080', '--zone', 'a', '--tag', 'http', '--tag', 'v2', '--meta', 'version=2.4', '--ttl', '3600'], env);
  t.equal(reg.code, 0, reg.stderr);
  t.match(reg.stdout, /^registered default\/web\/w1 at 10\.0\.0\.1:8080 \(up, weight 1, ttl 3600s/);
  const again = await rollcall(['register', 'web', 'w1', '--address', '10.0.0.1', '--port', '8080', '--weight', '3', '--ttl', '3600', '--zone', 'a'], env);
  t.match(again.stdout, /^replaced default\/web\/w1/);
  const json = await rollcall(['register', 'web', 'w2', '--address', '::1', '--port', '9090', '--status', 'starting', '--ttl', '3600', '--json'], env);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { namespace: 'default', service: 'web', id: 'w2', address: '::1', port: 9090, status: 'starting', weight: 1 });

  const list = await rollcall(['list', 'web'], env);
  t.equal(list.code, 0);
  const lines = list.stdout.trimEnd().split('\n');
  t.match(lines[0], /^ID\s+ADDRESS\s+STATUS\s+WEIGHT\s+ZONE\s+TAGS\s+EXPIRES IN$/);
  t.match(lines[1], /^w1\s+10\.0\.0\.1:8080\s+up\s+3\s+a\s+-\s+\d+s$/);
  t.match(lines[2], /^w2\s+\[::1\]:9090\s+starting\s+1\s+-\s+-\s+\d+s$/);
  t.equal(lines.length, 3);
  const listJson = JSON.parse((await rollcall(['list', 'web', '--json', '--status', 'starting'], env)).stdout);
  t.match(listJson, { revision: Number, items: [{ id: 'w2' }] });
  t.equal(listJson.items.length, 1);
  const none = await rollcall(['list', 'nothing-here'], env);
  t.equal(none.code, 0, 'an unknown service lists empty');
  t.match(none.stdout, /^no instances of default\/nothing-here/);

  const get = await rollcall(['get', 'web', 'w1'], env);
  t.equal(get.code, 0);
  t.match(get.stdout, /instance:\s+default\/web\/w1\n/);
  t.match(get.stdout, /address:\s+10\.0\.0\.1:8080\n/);
  t.match(get.stdout, /zone:\s+a\n/);
  t.match(JSON.parse((await rollcall(['get', 'web', 'w2', '--json'], env)).stdout), { id: 'w2', status: 'starting' });

  const hb = await rollcall(['heartbeat', 'web', 'w1'], env);
  t.equal(hb.code, 0);
  t.match(hb.stdout, /^renewed default\/web\/w1 until \d{4}-/);

  await api(`${server.url}/v1/namespaces/other/services/db/instances/d1`, 'PUT', { address: '10.0.0.9', port: 5432, ttlSeconds: 3600 });
  const services = await rollcall(['services'], env);
  t.equal(services.code, 0);
  t.match(services.stdout, /^SERVICE\s+INSTANCES\s+UP\nweb\s+2\s+1\n$/);
  t.match(JSON.parse((await rollcall(['services', '-n', 'other', '--json'], env)).stdout), { items: [{ name: 'db', instances: 1, up: 1 }] });
  const namespaces = await rollcall(['namespaces'], env);
  t.match(namespaces.stdout, /^NAMESPACE\s+SERVICES\s+INSTANCES\ndefault\s+1\s+2\nother\s+1\s+1\n$/);
  t.match(JSON.parse((await rollcall(['namespaces', '--json'], env)).stdout), { items: [{ name: 'default' }, { name: 'other' }] });

  const dereg = await rollcall(['deregister', 'web', 'w1'], env);
  t.equal(dereg.code, 0);
  t.equal(dereg.stdout, 'deregistered default/web/w1\n');
  t.equal((await api(`${server.url}/v1/namespaces/default/services/web/instances/w1`)).status, 404);
});

t.test('exit codes: 3 not found, 1 bad input, 2 unreachable; one line on stderr', async (t) => {
  const server = await startServer(t);
  const env = { ROLLCALL_URL: server.url };
  for (const cmd of ['get', 'heartbeat', 'deregister']) {
    const r = await rollcall([cmd, 'web', 'missing'], env);
    t.equal(r.code, 3, `${cmd} of an unknown instance`);
    t.equal(r.stdout, '');
    t.match(r.stderr, /^rollcall: Instance "missing" .* not registered.*\n$/);
  }
  const jsonErr = await rollcall(['get', 'web', 'missing', '--json'], env);
  t.equal(jsonErr.code, 3);
  t.match(JSON.parse(jsonErr.stderr), { error: 'instance_not_found', status: 404 });

  const badAddress = await rollcall(['register', 'web', 'w1', '--address', 'bad host!', '--port', '80'], env);
  t.equal(badAddress.code, 1);
  t.match(badAddress.stderr, /address/);
  t.equal(badAddress.stderr.trim().split('\n').length, 1, 'one line');
  const badName = await rollcall(['register', 'Web', 'w1', '--address', '10.0.0.1', '--port', '80'], env);
  t.equal(badName.code, 1);
  t.match(badName.stderr, /service/);
  const badPort = await rollcall(['register', 'web', 'w1', '--address', '10.0.0.1', '--port', '0'], env);
  t.equal(badPort.code, 1, 'a bad flag value is refused before any request');
  t.match(badPort.stderr, /--port.*must be an integer from 1 to 65535/);
  const badStatus = await rollcall(['list', 'web', '--status', 'sleeping'], env);
  t.equal(badStatus.code, 1);

  const downUrl = `http://127.0.0.1:${await freePort()}`;
  const down = await rollcall(['list', 'web'], { ROLLCALL_URL: downUrl });
  t.equal(down.code, 2);
  t.match(down.stderr, /^rollcall: Cannot reach the registry at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)\.\n$/);
  // --registry wins over ROLLCALL_URL.
  const flag = await rollcall(['namespaces', '--registry', server.url], { ROLLCALL_URL: downUrl });
  t.equal(flag.code, 0);
  const badUrl = await rollcall(['namespaces', '--registry', 'not a url']);
  t.equal(badUrl.code, 1);
});

t.test('exit codes for answers that are hard to provoke from a healthy registry: 4 for 5xx, 5 for 401/403', async (t) => {
  const { exitCodeFor, EXIT } = await import('../src/cli/output.js');
  const { RollcallClientError } = await import('../src/client/index.js');
  t.equal(exitCodeFor(new RollcallClientError('internal_error', 'x', { status: 500 })), EXIT.registryError);
  t.equal(exitCodeFor(new RollcallClientError('not_ready', 'x', { status: 503 })), 4);
  t.equal(exitCodeFor(new RollcallClientError('bad_response', 'x')), 4);
  t.equal(exitCodeFor(new RollcallClientError('unauthorized', 'x', { status: 401 })), 5);
  t.equal(exitCodeFor(new RollcallClientError('forbidden', 'x', { status: 403 })), 5);
  t.equal(exitCodeFor(new RollcallClientError('body_too_large', 'x', { status: 413 })), 1);
  t.equal(exitCodeFor(new RollcallClientError('timeout', 'x')), EXIT.unreachable);
});
