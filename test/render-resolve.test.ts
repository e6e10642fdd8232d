// The two guards that keep one bad registration from freezing nginx: render-time name resolution (left out, said,
// looked up again) and isolation of the instances that make a check fail. Fake lookups and fake checks here;
// render-isolation.test.ts runs the same with real nginx.
import t from 'tap';
import { isolateFailure, namedInOutput, type Suspect } from '../src/generators/isolate-failure.js';
import { renderNginx } from '../src/generators/nginx.js';
import { parseGeneratorOptions } from '../src/generators/options.js';
import { createHostResolver } from '../src/generators/resolve-hosts.js';
import type { Instance } from '../src/schemas/instance.js';

t.test('resolver: IP literals skipped, new names looked up once, known names answered from the last lookup', async (t) => {
  const asked: string[] = [];
  const resolvable = new Set(['web-1', 'localhost']);
  const resolver = createHostResolver({ refreshMs: 0, lookup: async (h) => (asked.push(h), resolvable.has(h)) });
  t.teardown(() => resolver.close());
  t.same([...(await resolver.unresolved(['10.0.0.1', '::1', 'web-1', 'demo-9', 'Demo-9']))], ['demo-9'], 'case-insensitive names');
  t.same(asked.sort(), ['demo-9', 'web-1'], 'no lookup for IP literals, one per name');
  t.same([...(await resolver.unresolved(['web-1', 'demo-9']))], ['demo-9']);
  t.equal(asked.length, 2, 'known names are not looked up again by a render');
  await resolver.unresolved(['web-1']);
  await resolver.unresolved(['web-1', 'demo-9']);
  t.equal(asked.length, 3, 'a name dropped and seen again is a new name');
});

t.test('resolver: a lookup slower than the timeout counts as not resolving', async (t) => {
  const resolver = createHostResolver({ refreshMs: 0, timeoutMs: 20, lookup: () => new Promise<boolean>(() => {}) });
  t.teardown(() => resolver.close());
  t.same([...(await resolver.unresolved(['slow']))], ['slow']);
});

t.test('resolver: a refresh that flips an answer emits change', async (t) => {
  const resolvable = new Set<string>();
  const resolver = createHostResolver({ refreshMs: 10, lookup: async (h) => resolvable.has(h) });
  // The refresh timer is unref'd (it must not keep a CLI alive); hold the test process open while waiting on it.
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => (clearInterval(keepAlive), resolver.close()));
  t.same([...(await resolver.unresolved(['demo-9']))], ['demo-9']);
  const changed = new Promise<void>((resolve) => resolver.on('change', resolve));
  resolvable.add('demo-9');
  await changed;
  t.same([...(await resolver.unresolved(['demo-9']))], [], 'resolves now, answered without a new render-time lookup');
});

const inst = (service: string, id: string, address: string, port = 8000): Instance =>
  ({ namespace: 'default', service, id, address, port, status: 'up', weight: 1, zone: null, tags: [], meta: {} }) as unknown as Instance;

t.test('nginx: a left-out instance is a comment, not a server line; a service left with nothing answers 503', async (t) => {
  const instances = [inst('web', 'a', '127.0.0.1'), inst('web', 'b', 'demo-9'), inst('api', 'x', 'demo-9')];
  const leaveOut = new Map([
    ['web/b', 'hostname demo-9 does not resolve here'],
    ['api/x', 'hostname demo-9 does not resolve here'],
  ]);
  const conf = renderNginx({ namespace: 'default', instances, leaveOut }, parseGeneratorOptions({ listen: '8080' }));
  t.notMatch(conf, /server demo-9/);
  t.match(conf, /server 127\.0\.0\.1:8000 weight=1;/);
  t.match(conf, /# left out b: hostname demo-9 does not resolve here/);
  t.match(conf, /server_name api\.default;\n {4}# left out x: hostname demo-9 does not resolve here\n {4}# no routable instance\n {4}return 503;/);
});

const suspects: Suspect[] = [
  { service: 'api', id: 'x', address: '10.0.0.1', port: 80 },
  { service: 'web', id: 'a', address: '127.0.0.1', port: 8000 },
  { service: 'web', id: 'b', address: 'demo-9', port: 8000 },
  { service: 'web', id: 'c', address: 'Demo-9', port: 9000 },
];

t.test('the nginx message names the host:port; only that instance matches', async (t) => {
  const output = 'nginx: [emerg] host not found in upstream "demo-9:8000" in /x/rollcall.conf:7\nnginx: configuration file /x/nginx.conf test failed';
  t.same(namedInOutput(output, suspects).map((s) => s.id), ['b']);
  t.same(namedInOutput('nginx: [emerg] unknown directive "x"', suspects), []);
});

t.test('isolate: leaves out what the message names, round after round, keeping earlier leave-outs', async (t) => {
  const tried: string[][] = [];
  const broken = new Set(['web/b', 'web/c']);
  const result = await isolateFailure({
    instances: suspects,
    leaveOut: new Map([['web/z', 'hostname z does not resolve here']]),
    output: 'host not found in upstream "demo-9:8000"',
    attempt: async (leaveOut) => {
      tried.push([...leaveOut.keys()].sort());
      const bad = [...broken].find((k) => !leaveOut.has(k));
      return bad === 'web/c' ? { passed: false, output: 'host not found in upstream "demo-9:9000"' } : { passed: !bad, output: '' };
    },
  });
  t.same(tried, [['web/b', 'web/z'], ['web/b', 'web/c', 'web/z']]);
  t.same(result?.culprits, ['web/b', 'web/c'], 'culprits are the new leave-outs only');
  t.equal(result?.attempts, 2);
  t.match(result?.leaveOut.get('web/b'), /check failed on host demo-9:8000/);
});

t.test('isolate: a message that names nothing bisects by service; the hint is tried first next time', async (t) => {
  const tried: string[][] = [];
  const attempt = async (leaveOut: ReadonlyMap<string, string>) => {
    tried.push([...leaveOut.keys()].sort());
    return { passed: leaveOut.has('web/a'), output: 'some other error' };
  };
  const first = await isolateFailure({ instances: suspects, leaveOut: new Map(), output: 'some other error', attempt });
  t.same(tried, [['api/x'], ['web/a', 'web/b', 'web/c']], 'one service at a time, in name order');
  t.same(first?.culprits, ['web/a', 'web/b', 'web/c']);
  tried.length = 0;
  const again = await isolateFailure({ instances: suspects, leaveOut: new Map(), output: 'some other error', hint: first?.leaveOut, attempt });
  t.same(tried, [['web/a', 'web/b', 'web/c']], 'the hint passes at once');
  t.equal(again?.attempts, 1);
});

t.test('isolate: nothing passes → null (the caller keeps the previous config)', async (t) => {
  let n = 0;
  const result = await isolateFailure({
    instances: suspects,
    leaveOut: new Map(),
    output: 'broken',
    attempt: async () => (n++, { passed: false, output: 'broken' }),
  });
  t.equal(result, null);
  t.equal(n, 2, 'one try per service');
});
