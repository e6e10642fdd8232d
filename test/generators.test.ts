// Golden files, sanitization and the real binaries for the nginx and HAProxy generators.
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { RollcallError } from '../src/errors.js';
import { renderHaproxy } from '../src/generators/haproxy.js';
import { renderNginx } from '../src/generators/nginx.js';
import { parseGeneratorOptions, parseListen, type GeneratorOptions } from '../src/generators/options.js';
import { HOSTILE, INJECTED_WORDS, ORDINARY, inst } from './generators-fixtures.js';
import { haproxyCheck, nginxTest, requireBinary } from './render-proxies.js';

// Tests run from dist/test; golden files live in the source tree so a diff shows up in review.
const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), '../../test/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

async function golden(t: Test, name: string, actual: string): Promise<void> {
  const file = join(GOLDEN, name);
  if (UPDATE) await writeFile(file, actual);
  t.equal(actual, await readFile(file, 'utf8'), `${name} matches the golden file (UPDATE_GOLDEN=1 rewrites it)`);
}

const generators = { nginx: renderNginx, haproxy: renderHaproxy } as const;
const opts = (raw: Parameters<typeof parseGeneratorOptions>[0] = {}): GeneratorOptions => parseGeneratorOptions({ listen: '8080', ...raw });

for (const [proxy, render] of Object.entries(generators)) {
  t.test(`${proxy}: golden files`, async (t) => {
    await golden(t, `${proxy}-shop.conf`, render({ namespace: 'shop', instances: ORDINARY }, opts()));
    await golden(
      t,
      `${proxy}-shop-least-conn-services.conf`,
      render({ namespace: 'shop', instances: ORDINARY }, opts({ listen: '127.0.0.1:8081', balance: 'least_conn', service: 'api,missing' })),
    );
    await golden(t, `${proxy}-empty.conf`, render({ namespace: 'shop', instances: [] }, opts({ listen: '[::1]:8082', balance: 'random' })));
  });

  t.test(`${proxy}: deterministic, independent of input order and of fields it does not use`, async (t) => {
    const a = render({ namespace: 'shop', instances: ORDINARY }, opts());
    const reversed = render({ namespace: 'shop', instances: [...ORDINARY].reverse() }, opts());
    t.equal(reversed, a, 'input order does not matter');
    const touched = ORDINARY.map((i) => ({ ...i, revision: 99, lastHeartbeatAt: '2030-01-01T00:00:00.000Z', tags: ['t'], metadata: { k: 'v' } }));
    t.equal(render({ namespace: 'shop', instances: touched }, opts()), a, 'heartbeats, revisions, tags and metadata do not change the config');
    const changed = ORDINARY.map((i) => (i.id === 'api-1' ? { ...i, weight: 5 } : i));
    t.not(render({ namespace: 'shop', instances: changed }, opts()), a, 'a weight change does');
  });

  t.test(`${proxy}: hostile registry content cannot inject anything`, async (t) => {
    const out = render({ namespace: 'shop', instances: HOSTILE }, opts());
    const directives = out
      .split('\n')
      .filter((l) => !l.trim().startsWith('#'))
      .join('\n');
    for (const word of INJECTED_WORDS) t.notOk(directives.includes(word), `no "${word}" outside comments`);
    t.notOk(out.includes('\r'), 'no carriage return anywhere');
    for (const line of out.split('\n').filter((l) => l.trim().startsWith('#'))) {
      t.match(line, /^\s*# [A-Za-z0-9._:@/=,+ ?<>()-]*$/, `comment is plain: ${line}`);
    }
    t.notOk(directives.includes('evil'), 'a service name that is not a DNS label is dropped');
    t.match(out, /127\.0\.0\.1:9001/, 'the sound instance is there');
    t.match(out, /127\.0\.0\.2:9002/, 'an instance with a hostile id still serves, its id only in a comment');
    t.notOk(out.includes('127.0.0.3') || out.includes('127.0.0.4') || out.includes('127.0.0.5'), 'bad addresses and ports are left out');
    t.notOk(/127\.0\.0\.6:9006 weight[ =]1\.5/.test(out), 'a fractional weight never reaches the config');
    const clean = HOSTILE.map((i) => ({ ...i, tags: [], metadata: {}, zone: null }));
    t.equal(render({ namespace: 'shop', instances: clean }, opts()), out, 'tags, metadata and zone do not reach the config at all');
  });
}

t.test('nginx: routing semantics in the output', async (t) => {
  const out = renderNginx({ namespace: 'shop', instances: ORDINARY }, opts());
  t.match(out, /upstream rc_shop_api \{\n {4}# api-1\n {4}server 10\.0\.0\.1:8080 weight=1;\n {4}# api-2\n {4}server 10\.0\.0\.2:8080 weight=3;\n/, 'routable instances with weights');
  t.notOk(out.includes('10.0.0.3'), 'draining left out');
  t.notOk(out.includes('10.0.0.4'), 'down left out');
  t.notOk(out.includes('10.0.1.2'), 'starting left out');
  t.notOk(out.includes('upstream rc_shop_web'), 'no empty upstream for a service without routable instances');
  t.notOk(out.includes('upstream rc_shop_db'), 'weight 0 only → no upstream');
  t.match(out, /server_name web\.shop;\n(?: {4}#.*\n)* {4}return 503;/, 'web answers 503');
  t.match(out, /listen 8080 default_server;\n {4}return 404;/, 'unknown hosts get 404');
  t.match(out, /server \[::1\]:6379 weight=2;/, 'IPv6 in brackets');
  t.notOk(out.includes('10.9.9.9'), 'other namespaces never leak in');
  const long = renderNginx({ namespace: 'n'.repeat(20), instances: [inst('s'.repeat(30), 'x', { namespace: 'n'.repeat(20) })] }, opts());
  t.match(long, `server_name ~^${'s'.repeat(30)}\\.${'n'.repeat(20)}$;`, 'hosts too long for the server_names hash become exact regexes');
});

t.test('haproxy: routing semantics in the output', async (t) => {
  const out = renderHaproxy({ namespace: 'shop', instances: ORDINARY }, opts());
  t.match(out, /# api-3 \(draining\)\n {4}server i_[0-9a-f]{16} 10\.0\.0\.3:8080 weight 0\n/, 'draining kept with weight 0');
  t.notOk(out.includes('10.0.0.4') || out.includes('10.0.1.2'), 'down and starting get no server line');
  t.match(out, /backend rc_shop_web\n {4}balance roundrobin\n {4}# left out web-b: starting\n/, 'empty backend for web (503)');
  t.match(out, /use_backend rc_shop_api if \{ var\(txn\.rc_host\) -m str api\.shop \}/, 'Host routing');
  t.match(out, /http-request return status 404/, 'unknown hosts get 404');
  t.notOk(out.includes('10.9.9.9'), 'other namespaces never leak in');
});

t.test('options: listen, balance and services are validated with clear errors', async (t) => {
  t.same(parseListen('8080'), { port: 8080 });
  t.same(parseListen('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  t.same(parseListen('[::1]:80'), { host: '::1', port: 80 });
  t.same(parseListen('*:80'), { port: 80 });
  t.same(parseListen('lb.internal:80'), { host: 'lb.internal', port: 80 });
  for (const bad of ['', '0', '65536', 'abc', ':80', '1.2.3.4:', '[::1]', '[zz]:80', '1.2.3.4:80;', 'a b:80', '::1:80']) {
    t.throws(() => parseListen(bad), RollcallError, `listen ${JSON.stringify(bad)} refused`);
  }
  t.throws(() => parseGeneratorOptions({ balance: 'first' }), { code: 'bad_request', message: /balance "first" is not supported: use one of round_robin, least_conn, random/ });
  t.throws(() => parseGeneratorOptions({ service: 'ok,Not_OK' }), { code: 'bad_request', message: /service "Not_OK"/ });
  t.same(parseGeneratorOptions({ service: ['b,a', 'a'] }).services, ['a', 'b'], 'sorted, deduplicated');
  for (const render of [renderNginx, renderHaproxy]) {
    t.throws(() => render({ namespace: 'shop', instances: [] }, { listen: { port: 80 }, balance: 'source' as never }), { code: 'bad_request' });
    t.throws(() => render({ namespace: 'Bad NS', instances: [] }, opts()), { code: 'bad_request' });
  }
});

t.test('real binaries accept every generated config', async (t) => {
  const nginx = requireBinary(t, 'nginx');
  const haproxy = requireBinary(t, 'haproxy');
  const cases: [string, GeneratorOptions, typeof ORDINARY][] = [
    ['ordinary', opts(), ORDINARY],
    ['least-conn-services', opts({ listen: '127.0.0.1:8081', balance: 'least_conn', service: 'api,missing' }), ORDINARY],
    ['random-v6-empty', opts({ listen: '[::1]:8082', balance: 'random' }), []],
    ['hostile', opts(), HOSTILE],
    ['long-names', opts(), [inst('a'.repeat(63), 'x'), inst(`b${'-'.repeat(61)}b`, 'y')].map((i) => ({ ...i, namespace: 'n'.repeat(63) }))],
  ];
  const base = t.testdir();
  for (const [name, options, instances] of cases) {
    const namespace = name === 'long-names' ? 'n'.repeat(63) : 'shop';
    if (nginx) {
      const r = await nginxTest(nginx, join(base, `nginx-${name}`), renderNginx({ namespace, instances }, options));
      t.equal(r.code, 0, `nginx -t accepts ${name}: ${r.output.trim()}`);
    }
    if (haproxy) {
      const r = await haproxyCheck(haproxy, join(base, `haproxy-${name}`), renderHaproxy({ namespace, instances }, options));
      t.equal(r.code, 0, `haproxy -c accepts ${name}: ${r.output.trim()}`);
    }
  }
});
