// rollcall watch: one line per change, following the registry across reconnects and restarts, and across its
// replicas (--registry a,b,c): a lost connection resumes on the next replica with sinceRevision at once.
import { Option, type Command } from 'commander';
import WebSocket from 'ws';
import { backoffDelay } from '../client/backoff.js';
import { fail } from './fail.js';
import { addRegistryOptions, intParser, type RegistryFlags } from './options.js';

interface WatchFlags extends RegistryFlags {
  namespace?: string;
  service?: string;
  since?: number;
  resources?: string;
}

interface WireService {
  namespace: string;
  name: string;
  virtualIP: string;
  ports: { name: string | null; port: number; targetPort: number | null }[];
}

interface WireInstance {
  namespace: string;
  service: string;
  id: string;
  address: string;
  port: number;
  status: string;
  weight: number;
}

interface WireMessage {
  type: string;
  revision?: number;
  reason?: string;
  code?: string;
  message?: string;
  instance?: WireInstance;
  service?: WireService;
  items?: WireInstance[];
  services?: WireService[];
}

const describeService = (s: WireService) =>
  `service ${s.namespace}/${s.name} ${s.virtualIP} ports ${s.ports.map((p) => `${p.port}${p.targetPort === null ? '' : `:${p.targetPort}`}${p.name === null ? '' : `/${p.name}`}`).join(',')}`;

const describe = (i: WireInstance) => `${i.namespace}/${i.service}/${i.id} ${i.address.includes(':') ? `[${i.address}]` : i.address}:${i.port} ${i.status} w=${i.weight}`;

/** The human line for one message; undefined for messages people need not see (bookmarks). */
export function formatMessage(m: WireMessage): string[] {
  switch (m.type) {
    case 'SNAPSHOT':
      return [
        `${m.revision} SNAPSHOT ${m.items?.length ?? 0} instance(s)${m.services ? `, ${m.services.length} service(s)` : ''}`,
        ...(m.services ?? []).map((s) => `${m.revision} EXISTS ${describeService(s)}`),
        ...(m.items ?? []).map((i) => `${m.revision} EXISTS ${describe(i)}`),
      ];
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
      return [`${m.revision} ${m.type} ${m.service ? describeService(m.service) : describe(m.instance!)} (${m.reason})`];
    default:
      return [];
  }
}

export function addWatchCommand(program: Command) {
  const cmd = program
    .command('watch')
    .description('print one line per registry change (a snapshot first unless --since); reconnects and resumes by itself')
    .option('--namespace <namespace>', 'only this namespace (default: every namespace)')
    .option('--service <service>', 'only this service (needs --namespace)')
    .option('--resources <list>', 'what to follow: instances (default), services, or services,instances')
    .addOption(new Option('--since <revision>', 'resume after this revision instead of starting with a snapshot').argParser(intParser(0, Number.MAX_SAFE_INTEGER)));
  addRegistryOptions(cmd);
  cmd.action((flags: WatchFlags) => {
    if (flags.service !== undefined && flags.namespace === undefined) fail('--service needs --namespace', 1);
    follow(flags);
  });
}

function follow(flags: WatchFlags) {
  let since = flags.since;
  let attempt = 0;
  /** flags.registry[replica] is where the current connection goes; moves on whenever a connection ends badly. */
  let replica = 0;
  /** Replicas that failed in a row since the last message: until each was tried, the next is tried without delay. */
  let failovers = 0;
  let stopping = false;
  let socket: WebSocket | undefined;

  const stop = () => {
    stopping = true;
    socket?.close(1000);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const connect = () => {
    const url = new URL('/v1/watch', flags.registry[replica]!.replace(/^http/, 'ws'));
    if (flags.namespace) url.searchParams.set('namespace', flags.namespace);
    if (flags.service) url.searchParams.set('service', flags.service);
    if (flags.resources) url.searchParams.set('resources', flags.resources);
    if (since !== undefined) url.searchParams.set('sinceRevision', String(since));
    const ws = new WebSocket(url, { ...(flags.token ? { headers: { authorization: `Bearer ${flags.token}` } } : {}), ...flags.tls });
    socket = ws;
    let ended = false;
    // This connection is over: the next replica at once until each was tried in a row, then with backoff.
    const next = () => {
      if (stopping || ended) return;
      ended = true;
      const replicas = flags.registry.length;
      replica = (replica + 1) % replicas;
      if (replicas > 1 && failovers < replicas - 1) {
        failovers++;
        setImmediate(connect);
        return;
      }
      failovers = 0;
      setTimeout(connect, backoffDelay(attempt++, { minMs: 200, maxMs: 5000 }));
    };
    ws.on('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        // A replica that lost its store (503) or is broken: another may answer.
        if ((res.statusCode ?? 0) >= 500) {
          process.stderr.write(`rollcall: ${url.host} answered HTTP ${res.statusCode}; trying the next replica\n`);
          req.destroy();
          next();
          return;
        }
        let message = `the registry answered HTTP ${res.statusCode}`;
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? message;
        } catch {
          // not the registry's JSON: keep the status line
        }
        // A refused watch (bad filter, bad token) will be refused again: stop instead of retrying.
        fail(message, res.statusCode === 401 || res.statusCode === 403 ? 5 : 1);
      });
    });
    ws.on('open', () => (attempt = 0));
    ws.on('message', (data) => {
      failovers = 0;
      const text = data.toString();
      const m = JSON.parse(text) as WireMessage;
      if (m.type === 'ERROR') {
        // The history no longer reaches back (or the registry lost its data): start over from a snapshot.
        process.stderr.write(`rollcall: ${m.message ?? m.code}; starting over from a snapshot\n`);
        since = undefined;
        return;
      }
      if (m.revision !== undefined) since = m.revision;
      if (m.type === 'BOOKMARK' && !flags.json) return;
      if (flags.json) process.stdout.write(`${text}\n`);
      else for (const line of formatMessage(m)) process.stdout.write(`${line}\n`);
    });
    ws.on('error', (err) => {
      if (attempt === 0) process.stderr.write(`rollcall: watch connection failed (${err.message}); retrying\n`);
    });
    ws.on('close', next);
  };
  connect();
}
