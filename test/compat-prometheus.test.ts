// Prometheus 2.42 (Debian's package) discovers rollcall's instances through http_sd_configs and through
// eureka_sd_configs, scrapes real targets, relabels on metadata and drops deregistered targets.
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { api, freePort, startServer, waitFor } from './helper.js';
import { spawnOwned } from './render-proxies.js';

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p));

/** A scrape target: a tiny HTTP server with a /metrics page. */
async function target(t: Test, name: string): Promise<number> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`# TYPE demo_up gauge\ndemo_up{name="${name}"} 1\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

interface ActiveTarget {
  scrapePool: string;
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
  health: string;
}

t.test('Prometheus scrapes what rollcall lists: http_sd_configs and eureka_sd_configs', async (t) => {
  if (!PROMETHEUS) {
    const message = 'prometheus is not installed (apt-get install prometheus)';
    if (process.env.CI) t.fail(`CI must provide prometheus: ${message}`);
    else {
      t.comment(`!!! SKIPPED: ${message}`);
      t.pass('prometheus checks', { skip: message });
    }
    return;
  }
  const { url } = await startServer(t);
  const [web1, web2, webDev, legacy] = await Promise.all([target(t, 'web-1'), target(t, 'web-2'), target(t, 'web-dev'), target(t, 'legacy')]);
  const put = (service: string, id: string, body: unknown) => api(`${url}/v1/namespaces/default/services/${service}/instances/${id}`, 'PUT', body);
  t.equal((await put('web', 'web-1', { ttlSeconds: 600, address: '127.0.0.1', port: web1, tags: ['v2'], zone: 'z1', metadata: { env: 'prod', 'team.name': 'core' } })).status, 201);
  t.equal((await put('web', 'web-2', { ttlSeconds: 600, address: '127.0.0.1', port: web2, metadata: { env: 'prod' } })).status, 201);
  t.equal((await put('web', 'web-dev', { ttlSeconds: 600, address: '127.0.0.1', port: webDev, metadata: { env: 'dev' } })).status, 201);
  t.equal((await put('web', 'web-drain', { ttlSeconds: 600, address: '127.0.0.1', port: 1, status: 'draining' })).status, 201, 'not routable: left out by default');
  const eureka = await fetch(`${url}/eureka/apps/LEGACY`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instance: { instanceId: 'legacy-1', hostName: '127.0.0.1', ipAddr: '127.0.0.1', port: { $: legacy, '@enabled': 'true' }, metadata: { team: 'payments' }, leaseInfo: { durationInSecs: 600 } } }),
  });
  t.equal(eureka.status, 204);

  const dir = t.testdir();
  const promPort = await freePort();
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: rollcall
    http_sd_configs:
      - url: ${url}/v1/sd/prometheus?namespace=default
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_rollcall_metadata_env]
        regex: dev
        action: drop
      - source_labels: [__meta_rollcall_service]
        target_label: service
      - source_labels: [__meta_rollcall_metadata_team_name]
        target_label: team
  - job_name: rollcall-eureka
    eureka_sd_configs:
      - server: ${url}/eureka
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_eureka_app_name]
        regex: LEGACY
        action: keep
      - source_labels: [__meta_eureka_app_instance_metadata_team]
        target_label: team
`,
  );
  const prom = spawnOwned(t, [PROMETHEUS, `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`]);
  const targets = async (): Promise<ActiveTarget[]> => {
    try {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/targets?state=active`);
      return ((await res.json()) as { data: { activeTargets: ActiveTarget[] } }).data.activeTargets;
    } catch {
      return [];
    }
  };
  const upIn = (list: ActiveTarget[], pool: string) => list.filter((x) => x.scrapePool === pool && x.health === 'up').map((x) => x.labels.instance).sort();

  let last: ActiveTarget[] = [];
  const all = await waitFor(
    async () => {
      last = await targets();
      return upIn(last, 'rollcall').length === 3 && upIn(last, 'rollcall-eureka').length === 1 ? last : undefined;
    },
    90_000,
    'Prometheus to scrape 3 targets as up',
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; targets: ${JSON.stringify(last.map((x) => [x.scrapePool, x.labels.instance, x.health, x.discoveredLabels.__meta_rollcall_instance_id]))}; sd: ${JSON.stringify(await (await fetch(`${url}/v1/sd/prometheus?namespace=default`)).json())}; dropped: ${await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets?state=dropped`)).text()}; prometheus log: ${prom.logs().split("\n").filter((l) => /level=(warn|error)/.test(l)).join("\n").slice(-1500)}`);
  });
  t.same(
    upIn(all, 'rollcall'),
    [`127.0.0.1:${web1}`, `127.0.0.1:${web2}`, `127.0.0.1:${legacy}`].sort(),
    'routable prod targets up (the Eureka-registered one too); dev dropped by relabeling; draining left out',
  );
  const first = all.find((x) => x.labels.instance === `127.0.0.1:${web1}`)!;
  t.match(first.labels, { job: 'rollcall', service: 'web', team: 'core' }, 'relabeled from rollcall labels and a metadata label');
  t.match(first.discoveredLabels, {
    __meta_rollcall_namespace: 'default',
    __meta_rollcall_service: 'web',
    __meta_rollcall_instance_id: 'web-1',
    __meta_rollcall_zone: 'z1',
    __meta_rollcall_status: 'up',
    __meta_rollcall_weight: '1',
    __meta_rollcall_tags: ',v2,',
    __meta_rollcall_metadata_env: 'prod',
    __meta_rollcall_metadata_team_name: 'core',
  });
  const legacyTarget = all.find((x) => x.scrapePool === 'rollcall-eureka')!;
  t.match(legacyTarget.labels, { instance: 'legacy-1', team: 'payments' }, 'eureka_sd: instanceId as instance, metadata relabeled');
  t.match(legacyTarget.discoveredLabels, { __address__: `127.0.0.1:${legacy}`, __meta_eureka_app_name: 'LEGACY', __meta_eureka_app_instance_status: 'UP' });
  t.ok(
    all.some((x) => x.scrapePool === 'rollcall-eureka' && x.health === 'up'),
    'eureka_sd decoded rollcall\'s XML',
  );

  // Deregister one target (and drop the Eureka one): gone at the next refresh.
  t.equal((await api(`${url}/v1/namespaces/default/services/web/instances/web-2`, 'DELETE')).status, 204);
  t.equal((await fetch(`${url}/eureka/apps/LEGACY/legacy-1`, { method: 'DELETE' })).status, 200);
  await waitFor(
    async () => {
      const list = await targets();
      return list.length > 0 && upIn(list, 'rollcall').join() === `127.0.0.1:${web1}` && !list.some((x) => x.scrapePool === 'rollcall-eureka');
    },
    30_000,
    'the deregistered targets to disappear',
  );
  t.pass('deregistered targets left Prometheus');
});
