// No Docker engine runs here: parse docker-compose.yml and the Dockerfile and check that the pieces fit together,
// and that what issue 15 asked of them stays true: healthchecks gate start order, the registry is not open to the
// network by default, nginx's sidecar checks before it reloads, nothing stalls on stop, base images are pinned.
import { readFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Healthcheck {
  test?: string[];
  interval?: string;
  disable?: boolean;
}

interface Service {
  build?: string | { context?: string; target?: string };
  image?: string;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  volumes?: string[];
  pid?: string;
  network_mode?: string;
  init?: boolean;
  user?: string;
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: Healthcheck;
  stop_signal?: string;
  cap_add?: string[];
  profiles?: string[];
  hostname?: string;
}

function flag(command: string[], name: string): string | undefined {
  const i = command.indexOf(name);
  return i >= 0 ? command[i + 1] : undefined;
}

async function compose() {
  return parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
}

t.test('docker-compose.yml: the pieces fit together', async (t) => {
  const doc = await compose();
  const services = doc.services;
  const plain = Object.keys(services).filter((name) => services[name]!.profiles === undefined);
  t.same(plain.sort(), ['client', 'demo-1', 'demo-2', 'demo-service', 'haproxy', 'haproxy-render', 'nginx', 'nginx-render', 'node', 'registry']);
  t.same(Object.keys(doc.volumes).sort(), ['etcd-1-data', 'etcd-2-data', 'etcd-3-data', 'ha-haproxy-conf', 'haproxy-conf', 'nginx-conf', 'registry-data']);

  const registry = services.registry as Service;
  t.ok(registry.build, 'the registry is built from the Dockerfile');
  t.same(registry.command?.slice(0, 3), ['serve', '--host', '0.0.0.0']);
  const dataDir = flag(registry.command ?? [], '--data-dir');
  t.ok(registry.volumes?.includes(`registry-data:${dataDir}`), `data (${dataDir}) on a named volume`);
  const rollcallImage = registry.image;
  t.ok(rollcallImage, 'the built image is named so the other services reuse it');

  const nginx = services.nginx as Service;
  t.match(nginx.build, { target: 'nginx' }, 'nginx runs from the Dockerfile\'s nginx target');
  t.equal(services['nginx-render']?.image, nginx.image, 'and its sidecar from the same image, so --check runs the same nginx');
  t.same(nginx.entrypoint, ['nginx', '-g', 'daemon off;'], 'nginx in the foreground');
  t.equal(services['haproxy-render']?.image, rollcallImage, 'haproxy-render runs rollcall');

  for (const [proxy, reloadSignal, confDir] of [
    ['nginx', 'HUP', '/etc/nginx/conf.d'],
    ['haproxy', 'USR2', '/usr/local/etc/haproxy'],
  ] as const) {
    const server = services[proxy] as Service;
    const sidecar = services[`${proxy}-render`] as Service;
    const cmd = sidecar.command ?? [];
    t.same(cmd.slice(0, 2), ['render', proxy], `${proxy}-render renders ${proxy}`);
    t.ok(cmd.includes('--watch'), `${proxy}-render follows the registry`);
    t.equal(flag(cmd, '--registry'), 'http://registry:7400', 'talks to the registry service');
    const out = flag(cmd, '--out') ?? '';
    t.equal(posix.dirname(out), confDir, `${proxy}-render writes into ${confDir}`);
    const volume = `${proxy}-conf:${confDir}`;
    t.ok(sidecar.volumes?.includes(volume), `${proxy}-render mounts ${volume}`);
    t.ok(server.volumes?.includes(volume), `${proxy} mounts the same volume at the same path`);
    t.equal(sidecar.pid, `service:${proxy}`, `${proxy}-render shares ${proxy}'s PID namespace`);
    t.equal(server.init, true, `${proxy}: PID 1 is tini, which forwards the reload signal to the proxy`);
    t.equal(flag(cmd, '--reload'), `kill -${reloadSignal} 1`, `reload = ${reloadSignal} to PID 1`);
    const listen = flag(cmd, '--listen');
    t.ok(server.ports?.some((p) => p.endsWith(`:${listen}`)), `${proxy} publishes the port the config listens on (${listen})`);
    t.equal(sidecar.depends_on?.registry?.condition, 'service_healthy', `${proxy}-render starts once the registry is healthy`);
  }
  const haproxyStart = (services.haproxy?.command ?? []).join(' ');
  t.match(haproxyStart, /exec haproxy -W -db -f \/usr\/local\/etc\/haproxy\/haproxy\.cfg/, 'HAProxy runs master-worker in the foreground');
  t.match(haproxyStart, /while \[ ! -s \/usr\/local\/etc\/haproxy\/haproxy\.cfg \]/, 'and waits for the first config');

  for (const name of ['demo-1', 'demo-2']) {
    const demo = services[name] as Service;
    const cmd = demo.command ?? [];
    t.equal(demo.image, rollcallImage);
    t.equal(cmd[0], 'agent', `${name} registers through rollcall agent`);
    t.equal(flag(cmd, '--service'), 'demo');
    t.equal(flag(cmd, '--registry'), 'http://registry:7400');
    t.equal(flag(cmd, '--address'), name, 'peers reach it by its compose name');
    const port = flag(cmd, '--port');
    const app = cmd.slice(cmd.indexOf('--') + 1);
    t.ok(cmd.includes('--') && app.length > 0, 'the app command follows --');
    t.match(app.join(' '), new RegExp(`listen\\(${port}\\)`), 'the app listens on the registered port');
    t.match(demo.healthcheck?.test?.join(' '), new RegExp(`127\\.0\\.0\\.1:${port}/`), `${name} is healthy when its app answers`);
  }
});

t.test('docker-compose.yml: what issue 15 asked for', async (t) => {
  const { services } = await compose();
  const registry = services.registry as Service;

  // The registry has no token in the demo: it must not be reachable from the network.
  const registryToken = (registry as { environment?: Record<string, string> }).environment?.ROLLCALL_TOKEN;
  for (const [name, s] of Object.entries(services)) {
    for (const p of s.ports ?? []) {
      if (name === 'registry' && registryToken) continue;
      t.match(p, /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${p} on loopback only`);
    }
  }

  // Every service that others wait for has a healthcheck; every wait is on health where health can come first.
  // A one-shot job (it runs, then exits) has no health: others wait for it to complete successfully.
  const oneShot = (s: Service) => (s as { restart?: string }).restart === 'on-failure';
  for (const [name, s] of Object.entries(services)) {
    if (!oneShot(s)) t.ok(s.healthcheck?.test && s.healthcheck.test.length > 0 && !s.healthcheck.disable, `${name} has a healthcheck`);
    for (const [dep, how] of Object.entries(s.depends_on ?? {})) {
      t.ok(services[dep], `${name} depends on an existing service ${dep}`);
      // HAProxy cannot be healthy before its sidecar wrote the first config: that one edge waits for "started".
      const expected =
        (name === 'haproxy-render' && dep === 'haproxy') || (name === 'ha-haproxy-render' && dep === 'ha-haproxy') ? 'service_started' : oneShot(services[dep]!) ? 'service_completed_successfully' : 'service_healthy';
      t.equal(how.condition, expected, `${name} waits for ${dep}: ${expected}`);
    }
  }
  t.match(registry.healthcheck?.test?.join(' '), /fetch\('http:\/\/127\.0\.0\.1:7400\/readyz'\)/, 'the registry is healthy when /readyz answers');

  // Stops without the 10 s kill: PID 1 in each container is an init that forwards signals and reaps children.
  for (const [name, s] of Object.entries(services)) t.equal(s.init, true, `${name} runs under init`);

  // nginx's sidecar checks before reloading, and resolves names where nginx does.
  const ngx = services['nginx-render'] as Service;
  t.equal(flag(ngx.command ?? [], '--check'), 'nginx -t -q', 'nginx-render checks the file with nginx -t before reloading');
  t.notOk(ngx.command?.includes('--no-resolve'), 'unresolvable hostnames are left out, not passed to nginx');
  t.equal(ngx.network_mode, 'service:nginx', "nginx-render resolves names in nginx's network namespace");
  t.same(Object.keys(ngx.depends_on ?? {}).sort(), ['nginx', 'registry']);

  // Base images are pinned to a full version (not a moving major tag like `nginx:1.27` or `node:20-slim`).
  for (const [name, s] of Object.entries(services)) {
    if (s.build || !s.image || /:local$/.test(s.image)) continue;
    t.match(s.image, /:v?\d+\.\d+\.\d+(-[a-z]+)?(@sha256:[0-9a-f]{64})?$/, `${name}: ${s.image} is pinned to a full version`);
  }
  // Network-side discovery: a node running `rollcall proxy` in nftables mode, and a client in its network
  // namespace calling the Service by its virtual address.
  const serviceCidr = flag(registry.command ?? [], '--service-cidr') ?? '';
  t.match(serviceCidr, /^10\.96\.0\.0\/16$/, 'virtual IPs from a routable range (DNAT of loopback to other hosts would need route_localnet)');
  const node = services.node as Service;
  const nodeCmd = node.command ?? [];
  t.equal(node.image, (services.registry as Service).image);
  t.same(nodeCmd.slice(0, 3), ['proxy', '--mode', 'nftables'], 'the node runs rollcall proxy with the kernel data plane');
  t.equal(flag(nodeCmd, '--registry'), 'http://registry:7400');
  t.ok(node.cap_add?.includes('NET_ADMIN'), 'nft needs NET_ADMIN');
  const metricsPort = (flag(nodeCmd, '--metrics-listen') ?? '').split(':').at(-1);
  t.ok(node.ports?.some((p) => p.endsWith(`:${metricsPort}`)), `metrics published (${metricsPort})`);

  const demoService = (services['demo-service']?.command ?? []).join(' ');
  const vip = /virtualIP: '([\d.]+)'/.exec(demoService)?.[1] ?? '';
  t.match(demoService, /\/v1\/namespaces\/default\/services\/demo'/, 'demo-service creates the Service demo');
  t.match(demoService, /ports: \[\{port: 80, targetPort: 8000\}\]/, 'port 80 → the demo apps\' 8000');
  t.ok(vip.startsWith('10.96.'), `its virtual IP ${vip} is inside --service-cidr`);
  for (const name of ['demo-1', 'demo-2']) t.equal(flag(services[name]?.command ?? [], '--port'), '8000', `${name} serves on the targetPort`);

  const client = services.client as Service;
  t.equal(client.network_mode, 'service:node', "the client lives in the node's network namespace, where the rules are");
  t.match((client.command ?? []).join(' '), new RegExp(`fetch\\('http://${vip.replace(/\./g, '\\.')}/'\\)`), 'and calls the virtual address, port 80');
  t.equal(client.depends_on?.node?.condition, 'service_healthy', 'the client starts once the node has its rules');

});

t.test('docker-compose.yml: profile ha is 3 etcd members, 3 replicas on --store etcd, and clients of all three', async (t) => {
  const { services } = await compose();
  const ha = Object.keys(services).filter((name) => services[name]!.profiles?.includes('ha'));
  t.same(ha.sort(), ['etcd-1', 'etcd-2', 'etcd-3', 'ha-demo-1', 'ha-demo-2', 'ha-haproxy', 'ha-haproxy-render', 'replica-1', 'replica-2', 'replica-3']);
  const members = ['etcd-1', 'etcd-2', 'etcd-3'];
  const peers = members.map((m) => `${m}=http://${m}:2380`).join(',');
  const volumes = new Set<string>();
  for (const m of members) {
    const etcd = services[m] as Service;
    const cmd = etcd.command ?? [];
    const opt = (name: string) => cmd.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
    t.match(etcd.image, /^quay\.io\/coreos\/etcd:v3\.5\.\d+$/, `${m}: the etcd project's image, pinned`);
    t.equal(cmd[0], '/usr/local/bin/etcd');
    t.equal(opt('--name'), m, `${m} is named after its service`);
    t.equal(opt('--initial-cluster'), peers, `${m} knows all three peers`);
    t.equal(opt('--initial-advertise-peer-urls'), `http://${m}:2380`);
    t.equal(opt('--advertise-client-urls'), `http://${m}:2379`);
    t.equal(opt('--initial-cluster-state'), 'new');
    t.equal(opt('--initial-cluster-token'), 'rollcall-ha', 'one cluster token');
    const volume = (etcd.volumes ?? []).find((v) => v.endsWith(`:${opt('--data-dir')}`));
    t.ok(volume, `${m}: its data directory on a named volume`);
    volumes.add(volume!.split(':')[0]!);
    t.same(etcd.healthcheck?.test, ['CMD', '/usr/local/bin/etcdctl', '--endpoints=http://127.0.0.1:2379', 'endpoint', 'health'], `${m}: healthy when it serves with a leader`);
    t.equal(etcd.ports, undefined, 'etcd is not published: only the replicas talk to it');
  }
  t.equal(volumes.size, 3, 'one volume per member');

  const endpoints = members.map((m) => `http://${m}:2379`).join(',');
  const replicas = ['replica-1', 'replica-2', 'replica-3'];
  const published = new Set<string>();
  for (const r of replicas) {
    const replica = services[r] as Service;
    const cmd = replica.command ?? [];
    t.equal(replica.image, (services.registry as Service).image, `${r} runs the rollcall image`);
    t.same(cmd.slice(0, 3), ['serve', '--host', '0.0.0.0']);
    t.equal(flag(cmd, '--store'), 'etcd', `${r} stores in etcd`);
    t.equal(flag(cmd, '--etcd-endpoints'), endpoints, `${r} knows every member`);
    t.equal(flag(cmd, '--etcd-prefix'), '/rollcall', 'all replicas share one prefix: one registry');
    t.equal(flag(cmd, '--service-cidr'), flag((services.registry as Service).command ?? [], '--service-cidr'));
    t.same(Object.keys(replica.depends_on ?? {}).sort(), members, `${r} starts once the cluster is healthy`);
    t.equal(replica.ports?.length, 1);
    published.add(replica.ports![0]!.split(':')[1]!);
    t.match(replica.healthcheck?.test?.join(' '), /fetch\('http:\/\/127\.0\.0\.1:7400\/readyz'\)/, `${r} is healthy when /readyz answers (503 without etcd)`);
    t.equal((replica as { volumes?: unknown }).volumes, undefined, `${r} is stateless`);
  }
  t.equal(published.size, 3, 'each replica on its own host port');

  const all = replicas.map((r) => `http://${r}:7400`).join(',');
  for (const name of ['ha-demo-1', 'ha-demo-2', 'ha-haproxy-render']) {
    const cmd = services[name]?.command ?? [];
    t.equal(flag(cmd, '--registry'), all, `${name} talks to all three replicas`);
    for (const r of replicas) t.equal(services[name]?.depends_on?.[r]?.condition, 'service_healthy');
  }
  for (const name of ['ha-demo-1', 'ha-demo-2']) {
    const cmd = services[name]?.command ?? [];
    t.equal(cmd[0], 'agent');
    t.equal(flag(cmd, '--address'), name, 'peers reach it by its compose name');
    t.equal(services[name]?.hostname, name);
  }
  const render = services['ha-haproxy-render'] as Service;
  const renderCmd = render.command ?? [];
  t.same(renderCmd.slice(0, 2), ['render', 'haproxy']);
  t.ok(renderCmd.includes('--watch'));
  t.equal(render.pid, 'service:ha-haproxy', 'signals the HAProxy beside it');
  const listen = flag(renderCmd, '--listen');
  t.ok(services['ha-haproxy']?.ports?.some((p) => p.endsWith(`:${listen}`)), `ha-haproxy publishes ${listen}`);
  const conf = posix.dirname(flag(renderCmd, '--out') ?? '');
  t.ok(render.volumes?.includes(`ha-haproxy-conf:${conf}`) && services['ha-haproxy']?.volumes?.includes(`ha-haproxy-conf:${conf}`), 'one config volume, shared');
  const defaultPorts = Object.entries(services)
    .filter(([, s]) => s.profiles === undefined)
    .flatMap(([, s]) => (s.ports ?? []).map((p) => p.split(':')[1]));
  for (const name of ha) for (const p of services[name]!.ports ?? []) t.notOk(defaultPorts.includes(p.split(':')[1]), `${name}: ${p} does not collide with the default stack`);
});

t.test('Dockerfile', async (t) => {
  const text = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
  const base = /^ARG NODE_IMAGE=(node:(\d+)\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?)$/m.exec(text);
  t.ok(base, 'one base image, pinned to a full version tag (or a digest)');
  t.ok(Number(base?.[2]) >= 22 && Number(base?.[2]) % 2 === 0, `Node ${base?.[2]} is an LTS line (20 is end of life)`);
  t.match(text, /^FROM \$\{NODE_IMAGE\} AS build$/m);
  t.match(text, /^FROM \$\{NODE_IMAGE\} AS runtime$/m);
  t.notMatch(text, /^FROM node:/m, 'no second, unpinned copy of the base image');
  t.match(text, /^RUN npm ci\b/m);
  t.match(text, /^COPY packages\/client\/package\.json \.\/packages\/client\/$/m, 'npm ci finds every workspace manifest');
  t.match(text, /npm run build/);
  t.match(text, /^VOLUME \/data$/m);
  t.match(text, /^ENTRYPOINT \["rollcall"\]$/m);
  t.match(text, /^CMD \["serve", "--host", "0\.0\.0\.0", "--port", "7400", "--data-dir", "\/data"\]$/m);
  t.match(text, /^COPY migrations \.\/migrations$/m, 'migrations ship with the image');

  // The runtime stage (and the default target built from it) runs as an unprivileged user that owns /data.
  const runtime = text.slice(text.indexOf('AS runtime'), text.indexOf('AS nginx'));
  t.match(runtime, /^USER node$/m, 'runs as the unprivileged node user');
  t.match(runtime, /chown node:node \/data/, 'which owns the data directory');
  t.match(runtime, /^HEALTHCHECK .*\\\n\s+CMD \["node", "-e", "fetch\('http:\/\/127\.0\.0\.1:' \+ \(process\.env\.ROLLCALL_PORT \|\| 7400\) \+ '\/readyz'\)/m, 'healthcheck on /readyz with node (no curl in slim)');
  const last = text.trimEnd().split('\n').filter((l) => /^FROM /.test(l)).pop();
  t.equal(last, 'FROM runtime', 'the default target is the registry image');
  t.match(text, /^FROM runtime AS nginx$/m, 'an nginx target for the compose demo');

  t.match(runtime, /apt-get install[^\n]*nftables/, 'the runtime image has nft (rollcall proxy --mode nftables)');
  const ignore = await readFile(join(ROOT, '.dockerignore'), 'utf8');
  for (const entry of ['node_modules', 'dist', '.git']) t.ok(ignore.split('\n').includes(entry), `.dockerignore leaves out ${entry}`);

});
