// The proof that HAProxy can discover backends through rollcall's DNS alone: a `resolvers` section pointing at
// rollcall and a `server-template` resolving `_web._tcp.shop.rollcall` (SRV with A additionals). Registering an
// instance brings it traffic, deregistering one takes its traffic away, and the HAProxy process is never reloaded
// or restarted (same PID, no signal sent, still running at the end).
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { startDnsServer } from './dns-helper.js';
import { api } from './helper.js';
import { freePort, haproxyCheck, idBackend, requireBinary, spawnOwned, waitFor } from './render-proxies.js';

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(res.statusCode === 200 ? body : `status ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function spread(port: number, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await get(port));
  return seen;
}

t.test('HAProxy follows rollcall DNS (SRV + server-template) without a reload', async (t) => {
  const haproxy = requireBinary(t, 'haproxy');
  if (!haproxy) return;
  const s = await startDnsServer(t, { config: { dnsTtl: 1 } });
  const [b1, b2, b3] = [await idBackend(t, 'b1'), await idBackend(t, 'b2'), await idBackend(t, 'b3')];
  const register = (b: { id: string; port: number }) => s.register('shop', 'web', b.id, { address: '127.0.0.1', port: b.port });
  await register(b1);
  await register(b2);

  const frontPort = await freePort();
  const dir = t.testdir();
  const config = [
    'global',
    '    maxconn 256',
    'defaults',
    '    mode http',
    '    timeout connect 2s',
    '    timeout client 10s',
    '    timeout server 10s',
    'resolvers rollcall',
    `    nameserver rollcall 127.0.0.1:${s.dnsPort}`,
    '    accepted_payload_size 8192',
    '    resolve_retries 3',
    '    timeout resolve 200ms',
    '    timeout retry 200ms',
    '    hold valid 1s',
    '    hold obsolete 0s',
    '    hold nx 0s',
    'frontend fe',
    `    bind 127.0.0.1:${frontPort}`,
    '    default_backend be',
    'backend be',
    '    balance roundrobin',
    '    server-template srv 1-8 _web._tcp.shop.rollcall resolvers rollcall init-addr none',
    '',
  ].join('\n');
  const check = await haproxyCheck(haproxy, join(dir, 'check'), config);
  t.equal(check.code, 0, `haproxy -c: ${check.output}`);
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  const proc = spawnOwned(t, [haproxy, '-db', '-f', file]);
  const pid = proc.pid;

  const both = await waitFor('traffic to b1 and b2', async () => {
    const seen = await spread(frontPort, 8);
    return seen.has('b1') && seen.has('b2') ? seen : null;
  }, 30_000, 200);
  t.same([...both].sort(), ['b1', 'b2'], `HAProxy found both instances through SRV (logs: ${proc.logs()})`);

  await register(b3);
  await waitFor('traffic to the newly registered b3', async () => (await spread(frontPort, 6)).has('b3'), 30_000, 200);
  t.pass('a newly registered instance gets traffic');

  await api(`${s.url}/v1/namespaces/shop/services/web/instances/b1`, 'DELETE');
  await waitFor('no traffic to deregistered b1', async () => {
    const seen = await spread(frontPort, 12);
    return !seen.has('b1') && seen.has('b2') && seen.has('b3');
  }, 30_000, 200);
  const before = b1.hits();
  const after = await spread(frontPort, 30);
  t.notOk(after.has('b1'), 'a deregistered instance gets no more traffic');
  t.equal(b1.hits(), before);
  t.ok(b2.hits() > 0 && b3.hits() > 0);

  t.equal(proc.pid, pid, 'same HAProxy process');
  t.equal(proc.exitCode, null, 'never exited');
  t.equal(proc.signalCode, null, 'never signalled');
  const metrics = (await api(`${s.url}/metrics`)).body as string;
  t.match(metrics, /rollcall_dns_queries_total\{type="SRV",rcode="NOERROR",transport="udp"\} [1-9]/, 'HAProxy asked SRV over UDP');
});
