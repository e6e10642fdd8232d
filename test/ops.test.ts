// Health, readiness, metrics and configuration.
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { RollcallError } from '../src/errors.js';
import { buildTestApp } from './helper.js';

t.test('healthz, readyz, and readyz failing when a migration is not applied', async (t) => {
  const { app, dataDir } = await buildTestApp(t);
  t.same((await app.inject({ url: '/healthz' })).json(), { status: 'ok' });
  t.same((await app.inject({ url: '/readyz' })).json(), {
    status: 'ready',
    revision: 0,
    compactedRevision: 0,
    watchers: 0,
    protection: { active: false, since: null, lapsed: 0 },
  });
  const other = new Database(join(dataDir, 'rollcall.db'));
  other.prepare('DELETE FROM schema_migrations').run();
  other.close();
  const notReady = await app.inject({ url: '/readyz' });
  t.equal(notReady.statusCode, 503);
  t.equal(notReady.json().error, 'not_ready');
  t.match(notReady.json().message, /Migrations not applied: 1/);
});

t.test('metrics: instances by status, registrations, heartbeats, expiries, HTTP latency', async (t) => {
  const { app } = await buildTestApp(t);
  const base = '/v1/namespaces/default/services/web/instances';
  await app.inject({ method: 'PUT', url: `${base}/a`, payload: { address: '10.0.0.1', port: 80 } });
  await app.inject({ method: 'PUT', url: `${base}/b`, payload: { address: '10.0.0.1', port: 80, status: 'draining' } });
  await app.inject({ method: 'PUT', url: `${base}/a/heartbeat` });
  await app.inject({ method: 'PUT', url: `${base}/zz/heartbeat` });
  const res = await app.inject({ url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  const text = res.body;
  t.match(text, /rollcall_instances\{namespace="default",service="web",status="up"\} 1/);
  t.match(text, /rollcall_instances\{namespace="default",service="web",status="draining"\} 1/);
  t.match(text, /rollcall_registrations_total\{result="created"\} 2/);
  t.match(text, /rollcall_heartbeats_total\{result="ok"\} 1/);
  t.match(text, /rollcall_heartbeats_total\{result="not_found"\} 1/);
  t.match(text, /rollcall_expiries_total 0/);
  t.match(text, /rollcall_revision 2/);
  t.match(text, /rollcall_http_request_duration_seconds_bucket\{le="[^"]+",method="PUT",route="\/v1\/namespaces\/:namespace\/services\/:service\/instances\/:id",status="201"\}/);
  t.match(text, /rollcall_watchers/);
  t.match(text, /rollcall_long_polls_waiting 0/);
});

t.test('configuration: defaults, env, flags over env, clear errors', async (t) => {
  const d = loadConfig({});
  t.match(d, { host: '127.0.0.1', port: 7400, dataDir: './data', historySize: 100_000 });
  const env = loadConfig({}, { ROLLCALL_HOST: '::1', ROLLCALL_PORT: '8000', ROLLCALL_DATA_DIR: '/tmp/x' });
  t.match(env, { host: '::1', port: 8000, dataDir: '/tmp/x' });
  t.equal(loadConfig({ port: '9000' }, { ROLLCALL_PORT: '8000' }).port, 9000);
  t.throws(() => loadConfig({ port: '70000' }), RollcallError);
  try {
    loadConfig({ port: 'abc', historySize: '1' });
  } catch (err) {
    t.match((err as Error).message, /port: .*historySize: /);
  }
});
