// The virtual IP policy: CIDR parsing, canonical addresses, allocation order, laps, full ranges; and the
// migration that brought Services to an existing database.
import t from 'tap';
import { join } from 'node:path';
import { bigIntToIp, createVirtualIpAllocator, ipToBigInt, parseCidr, type Cidr } from '../src/registry/virtual-ips.js';
import { createInstanceStore } from '../src/store/instance-store.js';
import { migrate, readMigrations } from '../src/store/migrate.js';
import { openDatabase } from '../src/store/open.js';

const cidr = (text: string) => parseCidr(text) as Cidr;

t.test('CIDR parsing: canonical text, sizes, clear refusals', async (t) => {
  t.match(cidr('127.77.0.0/16'), { family: 4, prefix: 16, size: 65536n, text: '127.77.0.0/16' });
  t.match(cidr('FD00:0077::/112'), { family: 6, prefix: 112, size: 65536n, text: 'fd00:77::/112' });
  t.match(parseCidr('10.0.0.0'), /prefix is missing/);
  t.match(parseCidr('10.0.0.1/8'), /host bits set; did you mean 10\.0\.0\.0\/8\?/);
  t.match(parseCidr('10.0.0.0/7'), /\/8 to \/30/);
  t.match(parseCidr('fd00::/63'), /\/64 to \/126/);
  t.match(parseCidr('fd00::/x'), /\/64 to \/126/);
  t.match(parseCidr('300.0.0.0/8'), /not an IPv4 or IPv6 address/);
});

t.test('addresses round-trip to canonical text (RFC 5952 for IPv6)', async (t) => {
  for (const [input, canonical] of [
    ['10.96.0.1', '10.96.0.1'],
    ['::', '::'],
    ['::1', '::1'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
  ] as const) {
    const family = input.includes(':') ? 6 : 4;
    t.equal(bigIntToIp(ipToBigInt(input)!, family), canonical, input);
  }
  t.equal(ipToBigInt('nope'), undefined);
});

t.test('allocation: in order, skipping held and requested addresses, network and broadcast never used', async (t) => {
  const ips = createVirtualIpAllocator(cidr('10.0.0.0/29')); // usable .1-.6
  t.equal(ips.allocate(), '10.0.0.1');
  t.equal(ips.reserve('10.0.0.2'), 'ok');
  t.equal(ips.reserve('10.0.0.2'), 'taken');
  t.equal(ips.reserve('10.0.0.0'), 'out_of_range', 'network');
  t.equal(ips.reserve('10.0.0.7'), 'out_of_range', 'broadcast');
  t.equal(ips.reserve('10.0.0.8'), 'out_of_range');
  t.equal(ips.reserve('fd00::1'), 'out_of_range', 'other family');
  t.same([ips.allocate(), ips.allocate(), ips.allocate(), ips.allocate()], ['10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  t.equal(ips.allocate(), undefined, 'full');
  t.same(ips.stats(), { capacity: 6n, used: 6n });
  ips.release('10.0.0.4');
  ips.release('10.0.0.2');
  t.equal(ips.allocate(), '10.0.0.2', 'after a lap the cursor finds released addresses in order');
  t.equal(ips.allocate(), '10.0.0.4');
  t.equal(ips.allocate(), undefined);
});

t.test('released addresses wait for the cursor to come round; held (restored) ones move it', async (t) => {
  const ips = createVirtualIpAllocator(cidr('127.77.0.0/16'));
  ips.hold('127.77.0.7');
  ips.hold('127.77.0.3');
  ips.hold('10.1.2.3'); // outside the range: held, never counted against it
  t.equal(ips.isTaken('10.1.2.3'), true);
  t.same(ips.stats(), { capacity: 65534n, used: 2n });
  t.equal(ips.allocate(), '127.77.0.8', 'continues after the highest restored address');
  ips.release('127.77.0.8');
  t.equal(ips.allocate(), '127.77.0.9', 'not the one just released');
  t.equal(ips.inRange('127.77.255.254'), true);
  t.equal(ips.inRange('127.77.255.255'), false);
});

t.test('allocating a whole /16 touches each address about once (amortised O(1))', async (t) => {
  const ips = createVirtualIpAllocator(cidr('127.77.0.0/16'));
  const seen = new Set<string>();
  for (let i = 0; i < 65534; i++) seen.add(ips.allocate()!);
  t.equal(seen.size, 65534, 'every usable address once');
  t.equal(ips.allocate(), undefined, 'then full, answered without a scan');
  ips.release('127.77.128.0');
  t.equal(ips.allocate(), '127.77.128.0', 'the only free address is found');
});

t.test('migration 002 keeps the events written before it, as instance events', async (t) => {
  const db = openDatabase(join(t.testdir(), 'r.db'));
  t.teardown(() => db.close());
  const [first, ...rest] = readMigrations();
  migrate(db, [first!]);
  const instance = { namespace: 'default', service: 'web', id: 'a', address: '10.0.0.1', port: 80 };
  db.prepare("INSERT INTO events (revision, type, reason, namespace, service, instance) VALUES (1, 'ADDED', 'registered', 'default', 'web', ?)").run(
    JSON.stringify(instance),
  );
  db.prepare("UPDATE counters SET value = 1 WHERE name = 'revision'").run();
  migrate(db, [first!, ...rest]);
  const store = createInstanceStore(db, { historySize: 100 });
  t.same(store.readEvents({}, 0, 1, 10), [{ type: 'ADDED', revision: 1, reason: 'registered', instance }]);
  t.same(store.readEvents({ resources: ['services'] }, 0, 1, 10), [], 'not a Service event');
  t.same(store.loadServices(), []);
  t.same(store.lastChangeByService(), [{ kind: 'instances', namespace: 'default', service: 'web', revision: 1 }]);
});
