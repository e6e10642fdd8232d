// rollcall's DNS against Debian's dig and Node's resolver: every record kind and rcode, truncation then TCP, a
// change visible in the next answer, TTL 0, the serve flags, the TCP limits and the metrics.
import dnsPacket from 'dns-packet';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { connect } from 'node:net';
import t from 'tap';
import { idLabel } from '../src/dns/names.js';
import { createManualClock } from '../src/registry/clock.js';
import { dig, rdata, requireDig, startDnsServer } from './dns-helper.js';
import { api, CHILD_ENV, CLI, freePort, startServerProcess, waitFor } from './helper.js';

t.test('dig: every record kind and response code', async (t) => {
  const bin = requireDig(t);
  if (!bin) return;
  const s = await startDnsServer(t);
  await s.register('shop', 'web', 'web-1', { address: '10.0.0.1', port: 8081, weight: 3, metadata: { version: '1.2' } });
  await s.register('shop', 'web', 'web-2', { address: '10.0.0.2', port: 8082 });
  await s.register('shop', 'web', 'Web-V6', { address: 'fd00::6', port: 8086 });
  await s.register('shop', 'web', 'ext', { address: 'db.example.com', port: 5432 });
  const d = (...args: string[]) => dig(bin, s.dnsPort, ...args);

  const a = await d('web.shop.rollcall', 'A');
  t.equal(a.status, 'NOERROR');
  t.ok(a.flags.includes('aa'), 'authoritative');
  t.notOk(a.flags.includes('ra'), 'no recursion available');
  t.same(rdata(a.answer, 'A').sort(), ['10.0.0.1', '10.0.0.2']);
  t.equal(a.answer[0]![1], '5', 'default TTL 5');
  t.same(rdata((await d('web.shop.rollcall', 'AAAA')).answer, 'AAAA'), ['fd00::6']);

  const v6 = idLabel('Web-V6');
  for (const name of ['web.shop.rollcall', '_web._tcp.shop.rollcall']) {
    const srv = await d(name, 'SRV');
    t.same(
      rdata(srv.answer, 'SRV').sort(),
      ['0 1 5432 db.example.com.', '0 1 8082 web-2.web.shop.rollcall.', `0 1 8086 ${v6}.web.shop.rollcall.`, '0 3 8081 web-1.web.shop.rollcall.'],
      `${name} SRV`,
    );
    t.same(
      srv.additional.filter((r) => r[3] !== 'OPT').map((r) => `${r[0]} ${r[3]} ${r[4]}`).sort(),
      ['web-1.web.shop.rollcall. A 10.0.0.1', 'web-2.web.shop.rollcall. A 10.0.0.2', `${v6}.web.shop.rollcall. AAAA fd00::6`],
      `${name}: A/AAAA additionals`,
    );
  }
  t.same(rdata((await d('web-1.web.shop.rollcall', 'A')).answer, 'A'), ['10.0.0.1'], 'per-instance name');
  t.same(rdata((await d(`${v6}.web.shop.rollcall`, 'AAAA')).answer, 'AAAA'), ['fd00::6'], 'encoded per-instance name');
  t.same(rdata((await d('ext.web.shop.rollcall', 'A')).answer, 'CNAME'), ['db.example.com.'], 'hostname instance: CNAME');

  t.same(rdata((await d('_services._dns-sd._udp.shop.rollcall', 'PTR')).answer, 'PTR'), ['_web._tcp.shop.rollcall.']);
  t.same(rdata((await d('_web._tcp.shop.rollcall', 'PTR')).answer, 'PTR').sort(), [
    'ext._web._tcp.shop.rollcall.',
    'web-1._web._tcp.shop.rollcall.',
    'web-2._web._tcp.shop.rollcall.',
    `${v6}._web._tcp.shop.rollcall.`,
  ]);
  t.same(rdata((await d('web-1._web._tcp.shop.rollcall', 'SRV')).answer, 'SRV'), ['0 3 8081 web-1.web.shop.rollcall.']);
  t.same(rdata((await d('web-1._web._tcp.shop.rollcall', 'TXT')).answer, 'TXT'), ['"version=1.2"']);

  const nx = await d('nope.shop.rollcall', 'A');
  t.equal(nx.status, 'NXDOMAIN');
  t.same(rdata(nx.authority, 'SOA').map((x) => x.split(' ').slice(0, 2).join(' ')), ['ns.rollcall. hostmaster.rollcall.']);
  const nodata = await d('web.shop.rollcall', 'TXT');
  t.equal(nodata.status, 'NOERROR');
  t.equal(nodata.answer.length, 0, 'NODATA: no answers');
  t.equal(rdata(nodata.authority, 'SOA').length, 1, 'NODATA: SOA in authority');
  const refused = await d('example.com', 'A');
  t.equal(refused.status, 'REFUSED');
  t.notOk(refused.flags.includes('aa'));
  t.same(rdata((await d('rollcall', 'NS')).answer, 'NS'), ['ns.rollcall.']);
  const soa = rdata((await d('rollcall', 'SOA')).answer, 'SOA')[0]!.split(' ');
  t.equal(soa[2], '4', 'SOA serial is the registry revision');
  t.equal(soa[6], '5', 'SOA minimum = negative TTL');
  t.same(rdata((await d('WEB.Shop.ROLLCALL', 'A')).answer, 'A').sort(), ['10.0.0.1', '10.0.0.2'], 'case-insensitive');
  t.same(rdata((await d('web.shop.rollcall', 'ANY')).answer, 'HINFO'), ['"RFC8482" ""'], 'ANY: RFC 8482 HINFO');
  t.same(rdata((await d('web.shop.rollcall', 'A', '+tcp')).answer, 'A').sort(), ['10.0.0.1', '10.0.0.2'], 'over TCP');
  const noEdns = await d('web.shop.rollcall', 'A', '+noedns');
  t.equal(noEdns.additional.length, 0, 'no OPT when the query has none');
  t.match((await d('web.shop.rollcall', 'A', '+bufsize=1400')).raw, /EDNS: version: 0, flags:; udp: 1232/, 'EDNS0 OPT echoed');
});

t.test('dig: truncation over UDP, then the full answer over TCP', async (t) => {
  const bin = requireDig(t);
  if (!bin) return;
  const s = await startDnsServer(t);
  for (let i = 0; i < 40; i++) await s.register('shop', 'big', `big-${i}`, { address: `10.1.0.${i}`, port: 9000 + i });
  const udp = await dig(bin, s.dnsPort, '_big._tcp.shop.rollcall', 'SRV', '+ignore', '+noedns');
  t.ok(udp.flags.includes('tc'), 'TC=1 over 512 bytes');
  t.ok(udp.answer.length < 40);
  const tcp = await dig(bin, s.dnsPort, '_big._tcp.shop.rollcall', 'SRV', '+tcp');
  t.notOk(tcp.flags.includes('tc'));
  t.equal(rdata(tcp.answer, 'SRV').length, 40);
  t.equal(tcp.additional.filter((r) => r[3] === 'A').length, 40, 'additionals over TCP');
  const retried = await dig(bin, s.dnsPort, '_big._tcp.shop.rollcall', 'SRV', '+noedns');
  t.equal(rdata(retried.answer, 'SRV').length, 40, 'dig retries over TCP by itself');
  const metrics = (await api(`${s.url}/metrics`)).body as string;
  t.match(metrics, /rollcall_dns_truncated_total\{transport="udp"\} [1-9]/);
  t.match(metrics, /rollcall_dns_queries_total\{type="SRV",rcode="NOERROR",transport="tcp"\} [1-9]/);
  t.match(metrics, /rollcall_dns_query_duration_seconds_count\{transport="udp"\} [1-9]/);
});

t.test('dig: register, drain, deregister and expiry show in the next answer', async (t) => {
  const bin = requireDig(t);
  if (!bin) return;
  const clock = createManualClock();
  const s = await startDnsServer(t, { clock });
  const addresses = async () => rdata((await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A')).answer, 'A').sort();
  const srvTargets = async () => rdata((await dig(bin, s.dnsPort, '_web._tcp.shop.rollcall', 'SRV')).answer, 'SRV').map((x) => x.split(' ')[3]).sort();

  t.equal((await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A')).status, 'NXDOMAIN', 'before any instance');
  await s.register('shop', 'web', 'web-1', { address: '10.0.0.1', port: 80 });
  t.same(await addresses(), ['10.0.0.1'], 'registered: in the next answer');
  await s.register('shop', 'web', 'web-2', { address: '10.0.0.2', port: 80, ttlSeconds: 5 });
  t.same(await addresses(), ['10.0.0.1', '10.0.0.2']);
  t.same(await srvTargets(), ['web-1.web.shop.rollcall.', 'web-2.web.shop.rollcall.']);

  await api(`${s.url}/v1/namespaces/shop/services/web/instances/web-1`, 'PATCH', { status: 'draining' });
  t.same(await addresses(), ['10.0.0.2'], 'draining: out of the next answer');
  t.same(await srvTargets(), ['web-2.web.shop.rollcall.']);
  t.same(rdata((await dig(bin, s.dnsPort, 'web-1.web.shop.rollcall', 'A')).answer, 'A'), ['10.0.0.1'], 'its own name still resolves');

  await api(`${s.url}/v1/namespaces/shop/services/web/instances/web-1`, 'DELETE');
  t.equal((await dig(bin, s.dnsPort, 'web-1.web.shop.rollcall', 'A')).status, 'NXDOMAIN', 'deregistered: gone');

  clock.advance(5000);
  t.equal(s.registry.expireDue(), 1, 'web-2 lease ended');
  await s.registry.settled();
  const after = await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A');
  t.equal(after.status, 'NXDOMAIN', 'expired: the service has no instances left');
});

t.test('dig: TTL 0, another domain and NS', async (t) => {
  const bin = requireDig(t);
  if (!bin) return;
  const s = await startDnsServer(t, { config: { dnsTtl: 0, dnsDomain: 'Svc.Example', dnsNs: 'dns1.example.net' } });
  await s.register('shop', 'web', 'web-1', { address: '10.0.0.1', port: 80 });
  const a = await dig(bin, s.dnsPort, 'web.shop.svc.example', 'A');
  t.same(rdata(a.answer, 'A'), ['10.0.0.1']);
  t.equal(a.answer[0]![1], '0', 'TTL 0');
  t.same(rdata((await dig(bin, s.dnsPort, 'svc.example', 'NS')).answer, 'NS'), ['dns1.example.net.']);
  t.equal((await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A')).status, 'REFUSED', 'the default domain is not served');
  const nx = await dig(bin, s.dnsPort, 'x.shop.svc.example', 'A');
  t.equal(nx.authority[0]![1], '0', 'negative TTL from the SOA');
});

t.test('rollcall serve --dns-listen (and ROLLCALL_DNS_LISTEN) answers dig', async (t) => {
  const bin = requireDig(t);
  if (!bin) return;
  const flagPort = await freePort();
  const byFlag = await startServerProcess(t, { args: ['--dns-listen', `127.0.0.1:${flagPort}`, '--dns-ttl', '7'] });
  await api(`${byFlag.url}/v1/namespaces/shop/services/web/instances/web-1`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
  const a = await waitFor(async () => {
    const r = await dig(bin, flagPort, 'web.shop.rollcall', 'A');
    return r.answer.length > 0 ? r : null;
  }, 10_000);
  t.same(rdata(a.answer, 'A'), ['10.0.0.1']);
  t.equal(a.answer[0]![1], '7', '--dns-ttl');
  const envPort = await freePort();
  await startServerProcess(t, { env: { ROLLCALL_DNS_LISTEN: `127.0.0.1:${envPort}` } });
  t.equal((await dig(bin, envPort, 'rollcall', 'SOA')).status, 'NOERROR', 'env ROLLCALL_DNS_LISTEN');
});

t.test('bad DNS settings: one line on stderr, exit 1', async (t) => {
  for (const args of [['--dns-listen', 'nonsense'], ['--dns-listen', '127.0.0.1:99999'], ['--dns-ttl', '-1'], ['--dns-domain', 'bad..domain']]) {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data-dir', t.testdir(), ...args], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    t.equal(code, 1, `${args.join(' ')}: exit 1`);
    t.match(stderr, /^rollcall: Invalid configuration: dns\w+: [^\n]+\n$/, `${args.join(' ')}: ${stderr.trim()}`);
  }
});

t.test('a DNS port already in use: one line on stderr, exit 1', async (t) => {
  const taken = createSocket('udp4');
  await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = taken.address().port;
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data-dir', t.testdir(), '--dns-listen', `127.0.0.1:${port}`], {
    env: CHILD_ENV,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 1);
  t.match(stderr, /^rollcall: cannot start: .*EADDRINUSE.*\n$/);
});

t.test("Node's dns.promises.Resolver resolves A, SRV, TXT and PTR", async (t) => {
  const s = await startDnsServer(t);
  await s.register('shop', 'api', 'api-1', { address: '10.0.0.1', port: 8081, weight: 2, metadata: { v: '1' } });
  await s.register('shop', 'api', 'api-2', { address: '10.0.0.2', port: 8082 });
  const resolver = new Resolver({ timeout: 5000, tries: 1 });
  resolver.setServers([`127.0.0.1:${s.dnsPort}`]);
  t.same((await resolver.resolve4('api.shop.rollcall')).sort(), ['10.0.0.1', '10.0.0.2']);
  const ttl = await resolver.resolve4('api.shop.rollcall', { ttl: true });
  t.equal(ttl[0]!.ttl, 5);
  const srv = (await resolver.resolveSrv('_api._tcp.shop.rollcall')).sort((x, y) => x.port - y.port);
  t.same(srv, [
    { name: 'api-1.api.shop.rollcall', port: 8081, priority: 0, weight: 2 },
    { name: 'api-2.api.shop.rollcall', port: 8082, priority: 0, weight: 1 },
  ]);
  t.same(await resolver.resolve4(srv[0]!.name), ['10.0.0.1'], 'an SRV target resolves');
  t.same(await resolver.resolveTxt('api-1._api._tcp.shop.rollcall'), [['v=1']]);
  t.same((await resolver.resolvePtr('_api._tcp.shop.rollcall')).sort(), ['api-1._api._tcp.shop.rollcall', 'api-2._api._tcp.shop.rollcall']);
  await t.rejects(resolver.resolve4('nope.shop.rollcall'), { code: 'ENOTFOUND' }, 'NXDOMAIN');
  await t.rejects(resolver.resolve6('api.shop.rollcall'), { code: 'ENODATA' }, 'NODATA');
  await t.rejects(resolver.resolve4('example.com'), { code: 'EREFUSED' }, 'REFUSED outside the zone');
  await s.register('shop', 'api', 'api-3', { address: '10.0.0.3', port: 8083 });
  t.same((await resolver.resolve4('api.shop.rollcall')).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3'], 'a change in the next answer');
});

t.test('TCP limits: idle connections, oversized messages and too many connections are closed', async (t) => {
  const s = await startDnsServer(t, { config: { dnsTcpIdleMs: 200, dnsTcpMaxConnections: 2 } });
  const open = async () => {
    const socket = connect(s.dnsPort, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    return socket;
  };
  const idle = await open();
  await once(idle, 'close');
  t.pass('an idle connection is closed');

  const big = await open();
  big.write(Buffer.from([0xff, 0xff, 0, 0]));
  await once(big, 'close');
  t.pass('a 65535-byte length prefix closes the connection');

  // A client that pipelines queries for a large answer and never reads: answering stops at a full write
  // buffer, and the idle timeout closes it.
  for (let i = 0; i < 40; i++) await s.register('shop', 'big', `big-${i}`, { address: `10.1.0.${i}`, port: 9000 + i });
  const greedy = await open();
  const greedyClosed = new Promise((resolve) => greedy.once('close', resolve));
  greedy.pause();
  greedy.write(Buffer.concat(Array.from({ length: 3000 }, (_, i) => dnsPacket.streamEncode({ type: 'query', id: i, questions: [{ name: '_big._tcp.shop.rollcall', type: 'SRV' }] }))));
  const tcpConnections = async () => Number(/^rollcall_dns_tcp_connections (\d+)/m.exec((await api(`${s.url}/metrics`)).body as string)?.[1]);
  await waitFor(async () => (await tcpConnections()) === 0, 30_000, 'the server to close the connection of a client that never reads');
  let answers = 0;
  let buffered = Buffer.alloc(0);
  greedy.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      answers++;
    }
  });
  greedy.resume();
  await greedyClosed;
  t.ok(answers < 3000, `a client that never reads is closed (it got ${answers} of 3000 answers)`);

  const first = await open();
  const second = await open();
  const third = await open();
  await once(third, 'close');
  t.pass('the third connection over a limit of 2 is closed');
  first.destroy();
  second.destroy();
});

t.test('dig: a Service with a virtual IP answers its name with that address (clusterIP); SRV still lists instances', async (t) => {
  const bin = requireDig(t);
  if (!bin) return;
  const s = await startDnsServer(t);
  await s.register('shop', 'web', 'web-1', { address: '10.0.0.1', port: 8080 });
  t.same(rdata((await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A')).answer, 'A'), ['10.0.0.1'], 'headless before the Service exists');
  const created = await api(`${s.url}/v1/namespaces/shop/services/web`, 'PUT', { ports: [{ name: 'http', port: 80 }] });
  t.equal(created.status, 201);
  const vip = created.body.virtualIP as string;
  t.same(rdata((await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A')).answer, 'A'), [vip], 'the virtual IP, in the next answer');
  const named = await dig(bin, s.dnsPort, '_http._tcp.web.shop.rollcall', 'SRV');
  t.same(rdata(named.answer, 'SRV'), ['0 1 8080 web-1.web.shop.rollcall.'], "the Service's named port lists the instances");
  t.equal((await api(`${s.url}/v1/namespaces/shop/services/web`, 'DELETE')).status, 204);
  t.same(rdata((await dig(bin, s.dnsPort, 'web.shop.rollcall', 'A')).answer, 'A'), ['10.0.0.1'], 'headless again once the Service is deleted');
});
