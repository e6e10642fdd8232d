// The --store etcd surface: flags, environment, defaults and the errors for bad values (no etcd needed).
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { CHILD_ENV, CLI, freePort } from './helper.js';

t.test('defaults: SQLite, and etcd settings ready for a local etcd', async (t) => {
  const c = loadConfig({});
  t.equal(c.store, 'sqlite');
  t.same(c.etcdEndpoints, ['http://127.0.0.1:2379']);
  t.equal(c.etcdPrefix, '/rollcall');
  t.equal(c.etcdTimeout, 5000);
  t.equal(c.etcdCompactInterval, 300_000);
});

t.test('environment, and flags over it', async (t) => {
  const env = {
    ROLLCALL_STORE: 'etcd',
    ROLLCALL_ETCD_ENDPOINTS: 'http://127.0.0.1:2379, http://127.0.0.1:22379',
    ROLLCALL_ETCD_PREFIX: '/team-a/rollcall',
    ROLLCALL_ETCD_USERNAME: 'rollcall',
    ROLLCALL_ETCD_PASSWORD: 'secret',
    ROLLCALL_ETCD_TIMEOUT: '2s',
  };
  const c = loadConfig({}, env);
  t.equal(c.store, 'etcd');
  t.same(c.etcdEndpoints, ['http://127.0.0.1:2379', 'http://127.0.0.1:22379'], 'comma-separated, spaces trimmed');
  t.equal(c.etcdPrefix, '/team-a/rollcall');
  t.equal(c.etcdUsername, 'rollcall');
  t.equal(c.etcdTimeout, 2000);
  t.equal(loadConfig({ etcdPrefix: '/other' }, env).etcdPrefix, '/other', 'a flag wins over the environment');
});

t.test('bad values are refused, each with the setting it is about', async (t) => {
  const refused = (flags: Record<string, unknown>, path: string) =>
    t.throws(() => loadConfig(flags), { code: 'bad_request', details: [{ path }] }, `${JSON.stringify(flags)} → ${path}`);
  refused({ store: 'redis' }, 'store');
  refused({ etcdEndpoints: 'localhost:2379' }, 'etcdEndpoints.0');
  refused({ etcdEndpoints: ' , ' }, 'etcdEndpoints');
  refused({ etcdPrefix: 'rollcall' }, 'etcdPrefix');
  refused({ etcdPrefix: '/rollcall/' }, 'etcdPrefix');
  refused({ etcdCert: 'c.pem' }, 'etcdKey');
  refused({ etcdUsername: 'u' }, 'etcdPassword');
  refused({ etcdTimeout: 'soon' }, 'etcdTimeout');
});

t.test('serve --store etcd with no etcd there exits with one line, not a hang or a stack', async (t) => {
  const port = await freePort();
  const res = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--store', 'etcd', '--etcd-endpoints', `http://127.0.0.1:${port}`, '--etcd-timeout', '1s'], {
    env: CHILD_ENV,
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.not(res.status, 0, 'non-zero exit');
  t.match(res.stderr, /^rollcall: cannot start: cannot reach etcd at http:\/\/127\.0\.0\.1:\d+/m);
  t.notMatch(res.stderr, /\n\s+at /, 'no stack trace');
});
