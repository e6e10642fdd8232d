// The pure DNS answer and the protocol rules around it, against a fake view: every name kind, NXDOMAIN vs
// NODATA, REFUSED, the clusterIP-vs-headless rule with a fake Service lookup, id labels, TXT size rules, EDNS
// and truncation, FORMERR for broken messages.
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import t from 'tap';
import { answerQuestion, txtStrings, type DnsInstance, type DnsService, type DnsView } from '../src/dns/answer.js';
import { idLabel, parseZoneName } from '../src/dns/names.js';
import { respond } from '../src/dns/protocol.js';

const settings = { zone: 'rollcall', ns: 'ns.rollcall', ttl: 5 };

function inst(id: string, address: string, port: number, extra: Partial<DnsInstance> = {}): DnsInstance {
  return { id, address, port, status: 'up', weight: 1, metadata: {}, ...extra };
}

function viewOf(data: Record<string, Record<string, DnsInstance[]>>, services?: Record<string, DnsService>): DnsView {
  const namespaces = new Map(
    Object.entries(data).map(([ns, svcs]) => [ns, new Map(Object.entries(svcs).map(([s, list]) => [s, new Map(list.map((i) => [i.id, i]))]))]),
  );
  return {
    revision: 42,
    namespace: (n) => namespaces.get(n),
    ...(services ? { services: { get: (ns: string, name: string) => services[`${ns}/${name}`] } } : {}),
  };
}

const view = viewOf({
  shop: {
    web: [
      inst('web-1', '10.0.0.1', 8081, { weight: 3, metadata: { version: '1.2', zone: 'a' } }),
      inst('web-2', '10.0.0.2', 8082),
      inst('Web_3', 'fd00::3', 8083),
      inst('drain', '10.0.0.9', 8089, { status: 'draining' }),
      inst('zero', '10.0.0.8', 8088, { weight: 0 }),
      inst('ext', 'db.example.com', 5432),
    ],
    idle: [inst('i-1', '10.0.1.1', 80, { status: 'down' })],
  },
});

const q = (name: string, type: string, v: DnsView = view) => answerQuestion({ name, type }, v, settings, () => 0);
const data = (answers: Answer[]) => answers.map((a) => `${a.type} ${JSON.stringify((a as { data: unknown }).data)}`).sort();

t.test('id labels: plain ids stay, others get a stable collision-free encoding', async (t) => {
  t.equal(idLabel('web-1'), 'web-1');
  t.equal(idLabel('payments-7f9c-1'), 'payments-7f9c-1');
  const upper = idLabel('Web-1');
  t.match(upper, /^web-1--[a-z2-7]{24}$/, 'upper case is encoded: DNS is case-insensitive, ids are not');
  t.not(upper, idLabel('WEB-1'), 'ids differing only in case get different labels');
  t.match(idLabel('a--b'), /^a-b--[a-z2-7]{24}$/, 'a plain-looking id with "--" is encoded, so it cannot pose as an encoding');
  t.match(idLabel('10.0.0.1:8080'), /^10-0-0-1-8080--[a-z2-7]{24}$/);
  t.match(idLabel('...'), /^id--[a-z2-7]{24}$/);
  const long = idLabel('x'.repeat(128));
  t.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), `128-char id fits one label: ${long}`);
  t.equal(idLabel('Web_3'), idLabel('Web_3'), 'stable');
  t.equal(idLabel('Web_3'), 'web-3--fgwavqfrl3oynarnykyzkto7', 'the documented encoding (RFC 4648 base32 of SHA-256), pinned');
});

t.test('zone names', async (t) => {
  t.same(parseZoneName('rollcall', 'rollcall'), { kind: 'apex' });
  t.same(parseZoneName('WEB.Shop.ROLLCALL', 'rollcall'), { kind: 'service', namespace: 'shop', service: 'web' });
  t.same(parseZoneName('_web._tcp.shop.rollcall', 'rollcall'), { kind: 'service-type', namespace: 'shop', service: 'web' });
  t.same(parseZoneName('_http._tcp.web.shop.rollcall', 'rollcall'), { kind: 'named-port', namespace: 'shop', service: 'web', port: 'http', protocol: 'tcp' });
  t.same(parseZoneName('_services._dns-sd._udp.shop.rollcall', 'rollcall'), { kind: 'service-types', namespace: 'shop' });
  t.equal(parseZoneName('example.com', 'rollcall'), null);
  t.equal(parseZoneName('xrollcall', 'rollcall'), null, 'a suffix match must be at a label boundary');
  t.same(parseZoneName('a.b.c.d.e.shop.rollcall', 'rollcall'), { kind: 'nothing' });
});

t.test('service A/AAAA: routable IP instances, shuffled; hostnames, draining and weight 0 left out', async (t) => {
  const a = q('web.shop.rollcall', 'A');
  t.equal(a.rcode, 'NOERROR');
  t.ok(a.authoritative);
  t.same(data(a.answers), ['A "10.0.0.1"', 'A "10.0.0.2"']);
  t.same(data(q('web.shop.rollcall', 'AAAA').answers), ['AAAA "fd00::3"']);
  t.equal((a.answers[0] as { ttl: number }).ttl, 5);
  const orders = new Set<string>();
  for (let i = 0; i < 50; i++) {
    orders.add(answerQuestion({ name: 'web.shop.rollcall', type: 'A' }, view, settings).answers.map((r) => (r as { data: string }).data).join());
  }
  t.equal(orders.size, 2, 'both orders show up: shuffled per answer');
});

t.test('NXDOMAIN vs NODATA, with the SOA in authority', async (t) => {
  for (const name of ['nope.shop.rollcall', 'web.nope.rollcall', 'nope.web.shop.rollcall', '_nope._tcp.shop.rollcall', 'a.b.c.d.e.shop.rollcall']) {
    const r = q(name, 'A');
    t.equal(r.rcode, 'NXDOMAIN', name);
    t.same(r.authorities.map((x) => x.type), ['SOA'], `${name}: SOA in authority`);
  }
  for (const [name, type] of [
    ['web.shop.rollcall', 'TXT'],
    ['idle.shop.rollcall', 'A'],
    ['shop.rollcall', 'A'],
    ['_tcp.shop.rollcall', 'PTR'],
    ['web-1.web.shop.rollcall', 'AAAA'],
    ['rollcall', 'A'],
  ]) {
    const r = q(name!, type!);
    t.equal(r.rcode, 'NOERROR', `${name} ${type}`);
    t.equal(r.answers.length, 0, `${name} ${type}: no answers`);
    t.equal(r.authorities[0]?.type, 'SOA');
  }
  const soa = q('nope.shop.rollcall', 'A').authorities[0] as { ttl: number; data: { minimum: number; serial: number; mname: string } };
  t.equal(soa.ttl, 5);
  t.equal(soa.data.minimum, 5);
  t.equal(soa.data.serial, 42, 'SOA serial = registry revision');
  t.equal(soa.data.mname, 'ns.rollcall');
});

t.test('REFUSED outside the zone, not authoritative', async (t) => {
  const r = q('example.com', 'A');
  t.equal(r.rcode, 'REFUSED');
  t.notOk(r.authoritative);
});

t.test('SRV at all three names: one per routable instance with additionals', async (t) => {
  for (const name of ['web.shop.rollcall', '_web._tcp.shop.rollcall']) {
    const r = q(name, 'SRV');
    t.same(
      data(r.answers),
      [
        'SRV {"priority":0,"weight":1,"port":5432,"target":"db.example.com"}',
        'SRV {"priority":0,"weight":1,"port":8082,"target":"web-2.web.shop.rollcall"}',
        `SRV {"priority":0,"weight":1,"port":8083,"target":"${idLabel('Web_3')}.web.shop.rollcall"}`,
        'SRV {"priority":0,"weight":3,"port":8081,"target":"web-1.web.shop.rollcall"}',
      ],
      name,
    );
    t.same(
      r.additionals.map((a) => `${a.name} ${a.type} ${(a as { data: string }).data}`).sort(),
      ['web-1.web.shop.rollcall A 10.0.0.1', 'web-2.web.shop.rollcall A 10.0.0.2', `${idLabel('Web_3')}.web.shop.rollcall AAAA fd00::3`],
      'no additional for a hostname target',
    );
  }
  t.equal(q('_http._tcp.web.shop.rollcall', 'SRV').rcode, 'NXDOMAIN', 'no Service resource, no named ports');
});

t.test('per-instance names: A/AAAA; hostname instances are a CNAME; any status resolves', async (t) => {
  t.same(data(q('web-1.web.shop.rollcall', 'A').answers), ['A "10.0.0.1"']);
  t.same(data(q(`${idLabel('Web_3')}.web.shop.rollcall`, 'AAAA').answers), ['AAAA "fd00::3"']);
  t.same(data(q(`${idLabel('Web_3').toUpperCase()}.WEB.shop.rollcall`, 'AAAA').answers), ['AAAA "fd00::3"'], 'case-insensitive');
  t.same(data(q('drain.web.shop.rollcall', 'A').answers), ['A "10.0.0.9"']);
  t.same(data(q('ext.web.shop.rollcall', 'A').answers), ['CNAME "db.example.com"']);
  t.equal(q('web-3.web.shop.rollcall', 'A').rcode, 'NXDOMAIN', 'the lower-cased id is not the encoded one');
});

t.test('DNS-SD: service types, instances, SRV + TXT', async (t) => {
  t.same(data(q('_services._dns-sd._udp.shop.rollcall', 'PTR').answers), ['PTR "_idle._tcp.shop.rollcall"', 'PTR "_web._tcp.shop.rollcall"']);
  t.same(data(q('_web._tcp.shop.rollcall', 'PTR').answers), [
    'PTR "ext._web._tcp.shop.rollcall"',
    'PTR "web-1._web._tcp.shop.rollcall"',
    'PTR "web-2._web._tcp.shop.rollcall"',
    `PTR "${idLabel('Web_3')}._web._tcp.shop.rollcall"`,
  ]);
  const ptr = q('_web._tcp.shop.rollcall', 'PTR');
  t.same(
    ptr.additionals.filter((a) => a.name === 'web-1._web._tcp.shop.rollcall').map((a) => a.type),
    ['SRV', 'TXT'],
    'PTR additionals: each instance\'s SRV and TXT (RFC 6763 §12.1)…',
  );
  t.ok(ptr.additionals.some((a) => a.name === 'web-1.web.shop.rollcall' && a.type === 'A'), '…and its address');
  const srv = q('web-1._web._tcp.shop.rollcall', 'SRV');
  t.same(data(srv.answers), ['SRV {"priority":0,"weight":3,"port":8081,"target":"web-1.web.shop.rollcall"}']);
  t.equal(srv.additionals.length, 1);
  const txt = q('web-1._web._tcp.shop.rollcall', 'TXT').answers[0] as { data: Buffer[] };
  t.same(txt.data.map(String), ['version=1.2', 'zone=a']);
  t.same((q('web-2._web._tcp.shop.rollcall', 'TXT').answers[0] as { data: Buffer[] }).data.map(String), [''], 'no metadata: one empty string');
});

t.test('TXT size rules (RFC 6763 §6)', async (t) => {
  const strings = txtStrings({ ok: 'v', big: 'x'.repeat(300), 'a=b': 'c', édition: '1', edge: 'y'.repeat(250) }).map(String);
  t.same(strings, ['edge=' + 'y'.repeat(250), 'ok=v'], 'over 255 bytes, "=" in key and non-ASCII keys are left out');
});

t.test('ANY is answered minimally (RFC 8482); SOA and NS at the apex', async (t) => {
  t.same(data(q('web.shop.rollcall', 'ANY').answers), ['HINFO {"cpu":"RFC8482","os":""}']);
  t.equal(q('nope.shop.rollcall', 'ANY').rcode, 'NXDOMAIN');
  t.same(data(q('rollcall', 'NS').answers), ['NS "ns.rollcall"']);
  t.equal(q('rollcall', 'SOA').answers[0]?.type, 'SOA');
});

t.test('clusterIP vs headless: a Service with a virtual IP answers A with it; named ports get SRV', async (t) => {
  const withService = viewOf(
    { shop: { web: [inst('web-1', '10.0.0.1', 8081), inst('web-2', '10.0.0.2', 8082)] } },
    {
      'shop/web': { virtualIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] },
      'shop/empty': { virtualIP: '10.96.0.11', ports: [] },
      'shop/headless': { virtualIP: '', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    },
  );
  t.same(data(q('web.shop.rollcall', 'A', withService).answers), ['A "10.96.0.10"']);
  t.equal(q('web.shop.rollcall', 'AAAA', withService).answers.length, 0, 'v4 virtual IP: AAAA is NODATA');
  t.same(data(q('empty.shop.rollcall', 'A', withService).answers), ['A "10.96.0.11"'], 'a Service without instances still has its virtual IP');
  t.equal(q('headless.shop.rollcall', 'A', withService).rcode, 'NOERROR', 'headless Service without instances: NODATA');
  t.equal(q('headless.shop.rollcall', 'A', withService).answers.length, 0);
  const http = q('_http._tcp.web.shop.rollcall', 'SRV', withService);
  t.same(data(http.answers), [
    'SRV {"priority":0,"weight":1,"port":8081,"target":"web-1.web.shop.rollcall"}',
    'SRV {"priority":0,"weight":1,"port":8082,"target":"web-2.web.shop.rollcall"}',
  ]);
  t.equal(q('_dns._udp.web.shop.rollcall', 'SRV', withService).answers.length, 2, 'UDP named port under _udp');
  t.equal(q('_dns._tcp.web.shop.rollcall', 'SRV', withService).rcode, 'NXDOMAIN', 'a UDP port is not under _tcp');
  t.equal(q('_tcp.web.shop.rollcall', 'SRV', withService).rcode, 'NOERROR', 'empty non-terminal above named ports');
  t.equal(q('_grpc._tcp.web.shop.rollcall', 'SRV', withService).rcode, 'NXDOMAIN');
});

// --- the wire: respond() ---

function query(name: string, type: string, extra: Partial<Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }], ...extra });
}

const bigView = viewOf({ shop: { big: Array.from({ length: 40 }, (_, i) => inst(`big-${i}`, `10.1.0.${i}`, 9000 + i)) } });

t.test('respond: header flags, question echoed as asked, EDNS echoed', async (t) => {
  const reply = respond(query('Web.SHOP.rollcall', 'A'), 'udp', view, settings);
  const p = dnsPacket.decode(reply.response!);
  t.equal(p.id, 4242);
  t.ok(p.flag_aa, 'AA inside the zone');
  t.ok(p.flag_rd, 'RD copied');
  t.notOk(p.flag_ra, 'no recursion available');
  t.equal(p.questions![0]!.name, 'Web.SHOP.rollcall', 'question case kept (0x20)');
  t.equal(p.additionals!.length, 0, 'no OPT unless asked');
  const edns = dnsPacket.decode(respond(query('web.shop.rollcall', 'A', { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0 } as never] }), 'udp', view, settings).response!);
  t.equal(edns.additionals![0]!.type, 'OPT');
  const refused = dnsPacket.decode(respond(query('example.com', 'A'), 'udp', view, settings).response!);
  t.equal((refused as { rcode?: string }).rcode, 'REFUSED');
  t.notOk(refused.flag_aa);
});

t.test('respond: truncation over UDP at 512 or the EDNS size; full over TCP', async (t) => {
  const udp = respond(query('big.shop.rollcall', 'A'), 'udp', bigView, settings);
  t.ok(udp.truncated);
  t.ok(udp.response!.length <= 512);
  const p = dnsPacket.decode(udp.response!);
  t.ok(p.flag_tc, 'TC=1');
  t.ok(p.answers!.length > 0 && p.answers!.length < 40, `as many whole answers as fit (${p.answers!.length})`);
  const opt = { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0 } as never] };
  const edns = respond(query('big.shop.rollcall', 'A', opt), 'udp', bigView, settings);
  t.notOk(edns.truncated, '40 A records fit in 4096');
  t.equal(dnsPacket.decode(edns.response!).answers!.length, 40);
  const srv = respond(query('_big._tcp.shop.rollcall', 'SRV', opt), 'udp', bigView, settings);
  const srvPacket = dnsPacket.decode(srv.response!);
  t.notOk(srv.truncated || srvPacket.flag_tc, '40 SRV fit in 4096…');
  t.equal(srvPacket.answers!.length, 40);
  t.same(srvPacket.additionals!.map((a) => a.type), ['OPT'], '…once the additionals are dropped (no TC for those)');
  const tcp = dnsPacket.decode(respond(query('_big._tcp.shop.rollcall', 'SRV'), 'tcp', bigView, settings).response!);
  t.notOk(tcp.flag_tc);
  t.equal(tcp.answers!.length, 40);
  t.equal(tcp.additionals!.length, 40);
  const srvSmall = dnsPacket.decode(respond(query('_web._tcp.shop.rollcall', 'SRV'), 'udp', view, settings).response!);
  t.equal(srvSmall.answers!.length, 4, 'additionals dropped before answers: no TC needed');
  t.notOk(srvSmall.flag_tc);
});

t.test('respond: FORMERR, NOTIMP, BADVERS and drops', async (t) => {
  const good = query('web.shop.rollcall', 'A');
  t.equal(respond(good.subarray(0, 11), 'udp', view, settings).response, null, 'shorter than a header: dropped');
  const truncated = respond(good.subarray(0, 20), 'udp', view, settings);
  t.equal(truncated.rcode, 'FORMERR');
  t.equal(dnsPacket.decode(truncated.response!).id, 4242);
  const response = Buffer.from(good);
  response[2]! |= 0x80;
  t.equal(respond(response, 'udp', view, settings).response, null, 'a response is never answered');
  const twoQuestions = Buffer.from(good);
  twoQuestions.writeUInt16BE(2, 4);
  t.equal(respond(twoQuestions, 'udp', view, settings).rcode, 'FORMERR');
  const huge = Buffer.from(good);
  huge.writeUInt16BE(65535, 6);
  t.equal(respond(huge, 'udp', view, settings).rcode, 'FORMERR', 'huge answer count');
  // A name that is a pointer to itself.
  const loop = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  t.equal(respond(loop, 'udp', view, settings).rcode, 'FORMERR', 'compression loop');
  const notify = Buffer.from(good);
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  t.equal(respond(notify, 'udp', view, settings).rcode, 'NOTIMP');
  const v1 = respond(query('web.shop.rollcall', 'A', { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, ednsVersion: 1, flags: 0 } as never] }), 'udp', view, settings);
  t.equal(v1.rcode, 'BADVERS');
  t.equal(respond(query('rollcall', 'AXFR'), 'tcp', view, settings).rcode, 'REFUSED', 'no zone transfers');
  const chaos = query('version.bind', 'TXT');
  chaos.writeUInt16BE(3, chaos.length - 2);
  t.equal(respond(chaos, 'udp', view, settings).rcode, 'REFUSED', 'CHAOS class');
  const unknownClass = query('web.shop.rollcall', 'A');
  unknownClass.writeUInt16BE(1234, unknownClass.length - 2);
  const unknown = respond(unknownClass, 'udp', view, settings);
  t.equal(unknown.rcode, 'REFUSED', 'unknown class');
  t.equal(dnsPacket.decode(unknown.response!).questions!.length, 0, 'unknown class: header only');
});
