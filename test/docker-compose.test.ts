// No Docker engine runs here: parse docker-compose.yml and the Dockerfile and check that the pieces fit together.
import { readFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  volumes?: string[];
  pid?: string;
  depends_on?: string[];
  cap_add?: string[];
  network_mode?: string;
}

function flag(command: string[], name: string): string | undefined {
  const i = command.indexOf(name);
  return i >= 0 ? command[i + 1] : undefined;
}

t.test('docker-compose.yml', async (t) => {
  const doc = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
  const services = doc.services;
  t.same(Object.keys(services).sort(), ['client', 'demo-1', 'demo-2', 'demo-service', 'haproxy', 'haproxy-render', 'nginx', 'nginx-render', 'node', 'registry']);
  t.same(Object.keys(doc.volumes).sort(), ['haproxy-conf', 'nginx-conf', 'registry-data']);

  const registry = services.registry as Service;
  t.ok(registry.build, 'the registry is built from the Dockerfile');
  t.same(registry.command?.slice(0, 3), ['serve', '--host', '0.0.0.0']);
  const dataDir = flag(registry.command ?? [], '--data-dir');
  t.ok(registry.volumes?.includes(`registry-data:${dataDir}`), `data (${dataDir}) on a named volume`);
  const rollcallImage = registry.image;
  t.ok(rollcallImage, 'the built image is named so the other services reuse it');

  for (const [proxy, reloadSignal, confDir] of [
    ['nginx', 'HUP', '/etc/nginx/conf.d'],
    ['haproxy', 'USR2', '/usr/local/etc/haproxy'],
  ] as const) {
    const server = services[proxy] as Service;
    const sidecar = services[`${proxy}-render`] as Service;
    const cmd = sidecar.command ?? [];
    t.equal(sidecar.image, rollcallImage, `${proxy}-render runs rollcall`);
    t.same(cmd.slice(0, 2), ['render', proxy], `${proxy}-render renders ${proxy}`);
    t.ok(cmd.includes('--watch'), `${proxy}-render follows the registry`);
    t.equal(flag(cmd, '--registry'), 'http://registry:7400', 'talks to the registry service');
    const out = flag(cmd, '--out') ?? '';
    t.equal(posix.dirname(out), confDir, `${proxy}-render writes into ${confDir}`);
    const volume = `${proxy}-conf:${confDir}`;
    t.ok(sidecar.volumes?.includes(volume), `${proxy}-render mounts ${volume}`);
    t.ok(server.volumes?.includes(volume), `${proxy} mounts the same volume at the same path`);
    t.equal(sidecar.pid, `service:${proxy}`, `${proxy}-render shares ${proxy}'s PID namespace, so PID 1 is the master`);
    t.equal(flag(cmd, '--reload'), `kill -${reloadSignal} 1`, `reload = ${reloadSignal} to the ${proxy} master`);
    const listen = flag(cmd, '--listen');
    t.ok(server.ports?.some((p) => p.endsWith(`:${listen}`)), `${proxy} publishes the port the config listens on (${listen})`);
    t.ok(sidecar.depends_on?.includes('registry'));
  }
  const haproxyStart = (services.haproxy?.command ?? []).join(' ');
  t.match(haproxyStart, /exec haproxy -W -db -f \/usr\/local\/etc\/haproxy\/haproxy\.cfg/, 'HAProxy runs master-worker in the foreground as PID 1');
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
  }
  // Network-side discovery: a node running `rollcall proxy` in nftables mode, and a client in its network
  // namespace calling the Service by its virtual address.
  const serviceCidr = flag(registry.command ?? [], '--service-cidr') ?? '';
  t.match(serviceCidr, /^10\.96\.0\.0\/16$/, 'virtual IPs from a routable range (DNAT of loopback to other hosts would need route_localnet)');
  const node = services.node as Service;
  const nodeCmd = node.command ?? [];
  t.equal(node.image, rollcallImage);
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
  t.ok(client.depends_on?.includes('node'));

});

t.test('Dockerfile', async (t) => {
  const text = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
  t.match(text, /^FROM node:20-slim AS build$/m);
  t.match(text, /^RUN npm ci\b/m);
  t.match(text, /npm run build/);
  t.match(text, /^VOLUME \/data$/m);
  t.match(text, /^ENTRYPOINT \["rollcall"\]$/m);
  t.match(text, /^CMD \["serve", "--host", "0\.0\.0\.0", "--port", "7400", "--data-dir", "\/data"\]$/m);
  t.match(text, /^COPY migrations \.\/migrations$/m, 'migrations ship with the image');
  t.match(text.slice(text.lastIndexOf('FROM ')), /apt-get install[^\n]*nftables/, 'the runtime image has nft (rollcall proxy --mode nftables)');
  const ignore = await readFile(join(ROOT, '.dockerignore'), 'utf8');
  for (const entry of ['node_modules', 'dist', '.git']) t.ok(ignore.split('\n').includes(entry), `.dockerignore leaves out ${entry}`);

});
