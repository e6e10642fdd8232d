// `rollcall proxy`: network-side discovery on a node. Follows Services and their instances over one watch and
// makes every virtualIP:port reach a routable instance, through nftables (kernel DNAT) or a userspace TCP relay.
// The data path never touches the registry: with the registry down, the last state stays in force.
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { createClient, type RollcallClient } from '../client/index.js';
import { openCatalog, type Catalog } from '../dataplane/catalog.js';
import { startControlLoop } from '../dataplane/control-loop.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import { createProxyMetrics, type ProxyMetrics } from '../dataplane/metrics.js';
import { nftUnavailable } from '../dataplane/nftables/apply.js';
import { createNftablesDataPlane } from '../dataplane/nftables/dataplane.js';
import { createNftRunner } from '../dataplane/nftables/nft.js';
import { createUserspaceProxy } from '../dataplane/userspace/proxy.js';
import { DNS_LABEL } from '../schemas/instance.js';
import { intParser, parseRegistries } from './options.js';

const MODES = ['nftables', 'userspace'] as const;
type Mode = (typeof MODES)[number];

interface ProxyFlags {
  registry: string[];
  token?: string;
  namespace?: string;
  allNamespaces?: boolean;
  zone?: string;
  mode: Mode;
  metricsListen?: { host: string; port: number };
  bind?: string;
  debounce: number;
  maxDelay: number;
  connectTimeout: number;
  maxTries: number;
  drainGrace: number;
}

function parseNamespace(value: string): string {
  if (!DNS_LABEL.test(value)) throw new InvalidArgumentError('must be a DNS-1123 label (a-z, 0-9, "-")');
  return value;
}

/** ADDRESS:PORT, [IPV6]:PORT or PORT (then 127.0.0.1). */
function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  const host = m ? (m[1] ?? m[2] ?? '127.0.0.1') : '';
  if (!m || port < 1 || port > 65535 || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    throw new InvalidArgumentError('must be PORT, ADDRESS:PORT or [IPV6]:PORT, e.g. 127.0.0.1:7401');
  }
  return { host, port };
}

function parseHost(value: string): string {
  if (isIP(value) === 0) throw new InvalidArgumentError('must be an IP address, e.g. 127.0.0.1 or 0.0.0.0');
  return value;
}

class UsageError extends Error {}

/** What /healthz reports; filled in as the proxy starts. */
interface ProxyStatus {
  mode: Mode;
  applied: boolean;
  lastOutcome: string;
  catalog?: Catalog;
}

export function addProxyCommand(program: Command): void {
  program
    .command('proxy')
    .description('make every Service virtualIP:port reach a routable instance on this node (nftables DNAT or a userspace TCP proxy)')
    .addOption(
      new Option('--registry <urls>', 'registry base URL, or a comma list to fail over across').env('ROLLCALL_URL').default(['http://127.0.0.1:7400'], 'http://127.0.0.1:7400').argParser(parseRegistries),
    )
    .addOption(new Option('--token <token>', 'bearer token for the registry').env('ROLLCALL_TOKEN'))
    .option('-n, --namespace <namespace>', 'serve the Services of this namespace (default "default")', parseNamespace)
    .option('--all-namespaces', 'serve the Services of every namespace')
    .option('--zone <zone>', 'prefer instances in this zone; all zones when it has no routable instance')
    .addOption(new Option('--mode <mode>', 'data plane: nftables (kernel DNAT; root or CAP_NET_ADMIN) or userspace (a Node TCP proxy, no privilege)').choices(MODES).default('userspace'))
    .option('--metrics-listen <address>', 'serve /metrics (Prometheus) and /healthz here: PORT, ADDRESS:PORT or [IPV6]:PORT', parseListen)
    .option('--bind <host>', 'userspace: listen on this address instead of each virtual IP', parseHost)
    .option('--debounce <ms>', 'quiet period before applying a burst of changes', intParser(0, 60_000), 100)
    .option('--max-delay <ms>', 'apply at the latest this long after the first change of a burst', intParser(0, 60_000), 400)
    .option('--connect-timeout <ms>', 'userspace: connect timeout per instance before the next is tried', intParser(1, 600_000), 2000)
    .option('--max-tries <n>', 'userspace: instances tried per connection', intParser(1, 100), 3)
    .option('--drain-grace <ms>', 'userspace: on SIGTERM, how long open connections may finish', intParser(0, 3_600_000), 10_000)
    .addHelpText('after', '\nExit codes: 0 stopped by SIGTERM/SIGINT, 1 bad flags or a mode this host cannot run.')
    .action(async (flags: ProxyFlags) => {
      try {
        await runProxy(flags);
      } catch (err) {
        process.stderr.write(`rollcall: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}

function log(line: string): void {
  process.stderr.write(`rollcall proxy: ${line}\n`);
}

async function runProxy(flags: ProxyFlags): Promise<void> {
  if (flags.namespace !== undefined && flags.allNamespaces) throw new UsageError('--namespace and --all-namespaces exclude each other');
  if (flags.bind !== undefined && flags.mode !== 'userspace') throw new UsageError('--bind only goes with --mode userspace (nftables matches the virtual IPs themselves)');
  if (flags.maxDelay < flags.debounce) throw new UsageError(`--max-delay (${flags.maxDelay}) must be at least --debounce (${flags.debounce})`);
  const namespace = flags.allNamespaces ? undefined : (flags.namespace ?? 'default');
  const metrics = createProxyMetrics({ collectDefaults: true });

  let dataPlane: DataPlane;
  if (flags.mode === 'nftables') {
    const run = createNftRunner();
    const why = await nftUnavailable(run);
    if (why) throw new UsageError(why);
    dataPlane = createNftablesDataPlane({ run, log });
  } else {
    dataPlane = createUserspaceProxy({
      bindHost: flags.bind,
      connectTimeoutMs: flags.connectTimeout,
      maxTries: flags.maxTries,
      closeGraceMs: flags.drainGrace,
      metrics,
      log,
    });
  }

  const status: ProxyStatus = { mode: flags.mode, applied: false, lastOutcome: '' };
  const health = flags.metricsListen ? await serveMetrics(flags.metricsListen, metrics, status) : undefined;
  if (health) log(`metrics and /healthz on http://${hostPort(flags.metricsListen!.host, flags.metricsListen!.port)}`);

  const clients: RollcallClient[] = [];
  const catalog = (status.catalog = openCatalog({
    urls: flags.registry,
    failoverAfter: 3,
    log,
    open: (url) => {
      const client = createClient(flags.token === undefined ? { url } : { url, token: flags.token });
      clients.push(client);
      return client.watch({ ...(namespace !== undefined ? { namespace } : { allNamespaces: true }), resources: ['services', 'instances'] });
    },
  }));

  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log(`${flags.mode} mode, ${namespace === undefined ? 'all namespaces' : `namespace ${namespace}`}${flags.zone !== undefined ? `, zone ${flags.zone}` : ''}, registry ${flags.registry.join(',')}`);
  let first: 'ready' | NodeJS.Signals;
  try {
    first = await Promise.race([catalog.ready.then(() => 'ready' as const), stopSignal]);
  } catch (err) {
    catalog.close();
    for (const c of clients) c.close();
    health?.close();
    throw new Error(`the registry refused the watch: ${err instanceof Error ? err.message : String(err)}`);
  }
  let loop: ReturnType<typeof startControlLoop> | undefined;
  if (first === 'ready') {
    loop = startControlLoop({
      source: catalog,
      dataPlane,
      namespace,
      zone: flags.zone,
      debounceMs: flags.debounce,
      maxDelayMs: flags.maxDelay,
      metrics,
      log,
      onPass: (state, outcome, revision) => {
        if (outcome === 'applied') {
          status.applied = true;
          const backends = state.ports.reduce((n, p) => n + p.backends.length, 0);
          log(`in force at revision ${revision}: ${state.ports.length} service port(s), ${backends} backend(s)`);
        }
        status.lastOutcome = outcome;
      },
    });
  }
  const signal = first === 'ready' ? await stopSignal : first;
  log(`${signal}: stopping`);
  await loop?.stop();
  catalog.close();
  for (const c of clients) c.close();
  try {
    await dataPlane.close();
    if (flags.mode === 'nftables') log('table ip rollcall removed');
  } catch (err) {
    log(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  }
  health?.close();
  log('stopped');
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function serveMetrics(
  listen: { host: string; port: number },
  metrics: ProxyMetrics,
  status: ProxyStatus,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'internal', message: 'metrics could not be collected' }));
        },
      );
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      const s = status;
      // Healthy once a state is in force; a registry outage does not make the node unhealthy, the data plane still
      // serves the last state (it is reported, so an operator sees it).
      const body = {
        status: s.applied ? 'ok' : 'starting',
        mode: s.mode,
        revision: s.catalog?.revision ?? 0,
        registry: s.catalog?.url ?? null,
        registryConnected: s.catalog?.connected ?? false,
        lastApply: s.lastOutcome || null,
      };
      res.writeHead(s.applied ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not_found', message: 'try /metrics or /healthz' }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new UsageError(`--metrics-listen ${hostPort(listen.host, listen.port)}: ${err.code ?? err.message}`)));
    server.listen(listen.port, listen.host, () => resolve(server));
  });
}
