// `rollcall agent [flags] -- CMD [ARGS…]`: runs CMD and keeps it registered for exactly its lifetime.
//
//   start:    register as `starting` (one attempt; a 4xx refusal stops here, before CMD runs), then spawn CMD
//   ready:    `up` once its port accepts a TCP connection (or --ready-http PATH answers 2xx)
//   live:     heartbeats by the client library; a registry that is down or lost us is retried in the background;
//             the health check (--health-*, else the readiness check again) runs every --health-interval and
//             moves up → down after --health-fall failures, down → up after --health-rise successes
//   SIGTERM/SIGINT: `draining`, wait --drain-seconds, forward the signal, wait for CMD, deregister, exit with its code
//   CMD exits by itself: deregister, exit with its code
//   --env-services: before anything else, read the namespace's Services once and start CMD with
//                   <SVC>_SERVICE_HOST / _SERVICE_PORT / _SERVICE_PORT_<NAME> (as the kubelet does)
//
// CMD runs in its own process group (detached), so a Ctrl-C in a terminal reaches the agent only and CMD
// gets the signal after draining, as it does under an orchestrator that signals the agent alone. The price:
// if the agent itself is killed with -9, CMD is not signalled; every other exit of the agent takes CMD down.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import type { Command } from 'commander';
import { Option } from 'commander';
import {
  createClient,
  HEALTH_DEFAULTS,
  isRetryable,
  type ProbeResult,
  type RegisterOptions,
  type Registration,
  type RollcallClient,
} from '../client/index.js';
import { DEFAULT_REGISTRY_URL, addConnectionOptions, collect, defaultAddress } from './options.js';
import type { ClientTls } from '../client/tls.js';
import { hostPort } from './output.js';
import { execProbe, httpProbe, tcpProbe } from './probes.js';
import { fetchEnvServices, parseServiceSelection, selectServices, serviceEnv } from './service-env.js';

interface AgentFlags {
  registry: string;
  token?: string;
  tls?: ClientTls;
  namespace: string;
  service?: string;
  id?: string;
  address?: string;
  port?: string;
  ttl?: string;
  tag?: string[];
  meta?: string[];
  zone?: string;
  weight?: string;
  readyHttp?: string;
  drainSeconds: string;
  healthHttp?: string;
  healthTcp?: boolean;
  healthExec?: string;
  healthInterval: string;
  healthTimeout: string;
  healthRise: string;
  healthFall: string;
  envServices?: string;
}

/** What the agent probes after CMD is up: `ready` repeats the start-up readiness check. */
export type HealthProbeKind = { kind: 'ready' } | { kind: 'http'; path: string } | { kind: 'tcp' } | { kind: 'exec'; command: string };

export interface HealthPlan {
  probe: HealthProbeKind;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

export interface AgentPlan {
  /** One base URL, or the replicas of one registry to fail over across (--registry a,b,c). */
  registry: string[];
  token?: string;
  tls?: ClientTls;
  registration: RegisterOptions & { namespace: string; id: string };
  readyHttp?: string;
  drainMs: number;
  health: HealthPlan;
  /** Services whose variables CMD starts with: all of the namespace's, or these. */
  envServices?: 'all' | string[];
  command: string;
  args: string[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// Same rule as the server (src/schemas/instance.ts), "." and ".." included: the CLI does not import server code.
const INSTANCE_ID = /^(?!\.\.?$)[A-Za-z0-9._:-]{1,128}$/;
const FORWARDED_AS_IS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;

class FlagError extends Error {}

const DURATION = /^(\d{1,9}(?:\.\d{1,3})?)(ms|s|m)$/;

/** `200ms`, `5s`, `1.5s`, `1m` → milliseconds, at least 1 ms and at most a day. */
function duration(flag: string, value: string): number {
  const m = DURATION.exec(value.trim());
  const ms = m ? Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000)) : NaN;
  if (!(ms >= 1 && ms <= 86_400_000)) throw new FlagError(`${flag} must be a positive duration such as 200ms, 5s or 1m, got "${value}"`);
  return ms;
}

function planHealth(flags: AgentFlags): HealthPlan {
  const kinds = [flags.healthHttp !== undefined && '--health-http', flags.healthTcp === true && '--health-tcp', flags.healthExec !== undefined && '--health-exec'].filter(Boolean);
  if (kinds.length > 1) throw new FlagError(`give one health check at most, got ${kinds.join(' and ')}`);
  let probe: HealthProbeKind = { kind: 'ready' };
  if (flags.healthHttp !== undefined) {
    if (!flags.healthHttp.startsWith('/')) throw new FlagError(`--health-http must be a path starting with "/", got "${flags.healthHttp}"`);
    probe = { kind: 'http', path: flags.healthHttp };
  } else if (flags.healthTcp === true) probe = { kind: 'tcp' };
  else if (flags.healthExec !== undefined) {
    if (flags.healthExec.trim() === '') throw new FlagError('--health-exec needs a command line');
    probe = { kind: 'exec', command: flags.healthExec };
  }
  return {
    probe,
    intervalMs: duration('--health-interval', flags.healthInterval),
    timeoutMs: duration('--health-timeout', flags.healthTimeout),
    rise: int('--health-rise', flags.healthRise, 1, 1000),
    fall: int('--health-fall', flags.healthFall, 1, 1000),
  };
}

function int(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
    throw new FlagError(`${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

/** Flags → what to do. Pure: every mistake is a FlagError with one line, raised before anything starts. */
export function planAgent(argv: string[], flags: AgentFlags, pid = process.pid): AgentPlan {
  const [command, ...args] = argv;
  if (command === undefined || command === '') throw new FlagError('no command given: rollcall agent [flags] -- CMD [ARGS...]');
  const registry = flags.registry.split(',').map((u) => u.trim()).filter(Boolean);
  if (registry.length === 0) throw new FlagError(`--registry must be a URL such as ${DEFAULT_REGISTRY_URL}, or a comma list of them`);
  for (const u of registry) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new FlagError(`--registry must be a URL such as ${DEFAULT_REGISTRY_URL} (or a comma list of them), got "${u}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FlagError('--registry must be an http:// or https:// URL');
  }
  if (!DNS_LABEL.test(flags.namespace)) throw new FlagError(`--namespace must be a DNS-1123 label (a-z, 0-9, "-"), got "${flags.namespace}"`);
  if (flags.service === undefined) throw new FlagError('--service is required');
  if (!DNS_LABEL.test(flags.service)) throw new FlagError(`--service must be a DNS-1123 label (a-z, 0-9, "-"), got "${flags.service}"`);
  if (flags.port === undefined) throw new FlagError('--port is required (the port CMD listens on)');
  const port = int('--port', flags.port, 1, 65535);
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 60) || 'host';
  const id = flags.id ?? `${flags.service}-${host}-${pid}`;
  if (!INSTANCE_ID.test(id)) throw new FlagError(`--id must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":", "-" (not "." or ".."), got "${id}"`);
  const registration: AgentPlan['registration'] = {
    namespace: flags.namespace,
    service: flags.service,
    id,
    address: flags.address ?? defaultAddress(),
    port,
    status: 'starting',
  };
  if (flags.ttl !== undefined) registration.ttlSeconds = int('--ttl', flags.ttl, 1, 86400);
  if (flags.weight !== undefined) registration.weight = int('--weight', flags.weight, 0, 256);
  if (flags.zone !== undefined) registration.zone = flags.zone;
  if (flags.tag !== undefined) registration.tags = flags.tag;
  if (flags.meta !== undefined) {
    const metadata: Record<string, string> = {};
    for (const kv of flags.meta) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new FlagError(`--meta must be key=value, got "${kv}"`);
      metadata[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    registration.metadata = metadata;
  }
  const drain = Number(flags.drainSeconds);
  if (!/^\d+(\.\d+)?$/.test(flags.drainSeconds.trim()) || !Number.isFinite(drain) || drain > 86400) {
    throw new FlagError(`--drain-seconds must be a number of seconds from 0 to 86400, got "${flags.drainSeconds}"`);
  }
  const health = planHealth(flags);
  const plan: AgentPlan = { registry, registration, drainMs: Math.round(drain * 1000), health, command, args };
  if (flags.token !== undefined) plan.token = flags.token;
  if (flags.envServices !== undefined) {
    const selection = parseServiceSelection(flags.envServices);
    if (typeof selection === 'string') throw new FlagError(`--env-services ${selection}`);
    plan.envServices = selection;
  }
  if (flags.tls !== undefined) plan.tls = flags.tls;
  if (flags.readyHttp !== undefined) {
    if (!flags.readyHttp.startsWith('/')) throw new FlagError(`--ready-http must be a path starting with "/", got "${flags.readyHttp}"`);
    plan.readyHttp = flags.readyHttp;
  }
  return plan;
}

function log(line: string): void {
  process.stderr.write(`rollcall agent: ${line}\n`);
}

/**
 * Where to probe readiness: the registered address when it is one of this host's own (then "accepts
 * connections" means peers can connect too), else loopback: a hostname or a NAT'd address may not route
 * back to this host from inside it.
 */
function probeAddress(address: string): string {
  const own = Object.values(os.networkInterfaces()).some((list) => (list ?? []).some((a) => a.address === address));
  return own || address === 'localhost' ? address : '127.0.0.1';
}

function signalNumber(signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 0;
}

/** Sends `signal` to CMD's process group (CMD may have started children of its own), or to CMD alone if that fails. */
function signalChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** How long the agent waits for an unreachable registry to give it the Services' variables. */
const ENV_WAIT_MS = 30_000;

/**
 * The Services' variables, read once. A registry that is down is retried for ENV_WAIT_MS (CMD without the
 * addresses it was promised would fail later and less clearly); a missing named Service fails at once.
 */
async function readServiceEnv(client: RollcallClient, namespace: string, selection: 'all' | string[]): Promise<Record<string, string> | string> {
  const deadline = Date.now() + ENV_WAIT_MS;
  let delay = 250;
  for (;;) {
    try {
      const chosen = selectServices(await fetchEnvServices(client, namespace), selection, namespace);
      if (typeof chosen === 'string') return chosen;
      for (const name of chosen.skipped) log(`--env-services: skipped "${name}": a name starting with a digit cannot be a variable`);
      return Object.fromEntries(serviceEnv(chosen.services));
    } catch (err) {
      if (!isRetryable(err) || Date.now() + delay > deadline) return `cannot read the Services of namespace "${namespace}": ${(err as Error).message}`;
      log(`registry not reachable for --env-services (${(err as Error).message}); retrying`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

export async function runAgent(plan: AgentPlan): Promise<void> {
  const client = createClient({
    url: plan.registry,
    timeoutMs: 3000,
    retry: { minMs: 250, maxMs: 5000 },
    ...(plan.token === undefined ? {} : { token: plan.token }),
    ...(plan.tls === undefined ? {} : { tls: plan.tls }),
  });
  const { namespace, service, id } = plan.registration;
  const who = `${namespace}/${service}/${id}`;

  let serviceVars: Record<string, string> = {};
  if (plan.envServices !== undefined) {
    const vars = await readServiceEnv(client, namespace, plan.envServices);
    if (typeof vars === 'string') {
      log(`${vars}; ${plan.command} is not started`);
      client.close();
      process.exitCode = 1;
      return;
    }
    serviceVars = vars;
    log(`--env-services: ${Object.keys(vars).length} variables for ${plan.command}`);
  }

  let reg: Registration;
  try {
    reg = await client.register(plan.registration);
  } catch (err) {
    // The registry refused the registration (4xx): the flags are wrong, CMD is not started.
    log(`the registry refused ${who}: ${(err as Error).message}`);
    client.close();
    process.exitCode = 1;
    return;
  }
  reg.on('registered', (i) => log(`registered ${who} at ${hostPort(i.address, i.port)} as ${i.status}`));
  reg.on('error', (err) => log(`registry: ${err.message}`));
  if (reg.registered) log(`registered ${who} at ${hostPort(plan.registration.address, plan.registration.port)} as starting`);
  else log(`registry not reachable yet; ${plan.command} starts anyway and ${who} registers once it answers`);

  // The registry's variables win over inherited ones of the same name: they were asked for by flag.
  const child = spawn(plan.command, plan.args, { stdio: 'inherit', detached: true, env: { ...process.env, ...serviceVars } });
  let childDone = false;
  let shuttingDown = false;
  let wakeDrain: (() => void) | undefined;

  // Whatever ends the agent (even an uncaught error) must not leave CMD running unsupervised.
  process.on('exit', () => signalChild(child, 'SIGTERM'));

  const finish = async (code: number, what: string): Promise<void> => {
    if (childDone) return;
    childDone = true;
    wakeDrain?.();
    log(`${plan.command} ${what}; deregistering ${who}`);
    try {
      await reg.deregister();
      log(`deregistered ${who}`);
    } catch (err) {
      log(`could not deregister ${who} (${(err as Error).message}); its lease runs out by itself`);
    }
    client.close();
    process.exit(code);
  };

  child.once('error', (err) => {
    // spawn failed (ENOENT, EACCES): 127 as a shell would answer for a command it cannot run.
    void finish(127, `could not start (${(err as NodeJS.ErrnoException).code ?? err.message})`);
  });
  child.once('exit', (code, signal) => {
    if (code !== null) void finish(code, `exited with code ${code}`);
    else void finish(128 + signalNumber(signal ?? 'SIGTERM'), `was killed by ${signal}`);
  });

  const onStopSignal = (signal: NodeJS.Signals): void => {
    // CMD already exited: the agent is deregistering and about to exit with CMD's code.
    if (childDone) return;
    if (shuttingDown) {
      // A second signal means "now": skip the rest of the drain.
      log(`${signal} again: forwarding to ${plan.command} now`);
      wakeDrain?.();
      signalChild(child, signal);
      return;
    }
    shuttingDown = true;
    void (async () => {
      log(`${signal}: ${who} is draining${plan.drainMs > 0 ? ` for ${plan.drainMs / 1000}s` : ''}`);
      try {
        await reg.setStatus('draining');
      } catch (err) {
        log(`could not mark ${who} draining: ${(err as Error).message}`);
      }
      if (plan.drainMs > 0 && !childDone) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, plan.drainMs);
          wakeDrain = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      if (!childDone) {
        log(`forwarding ${signal} to ${plan.command} (pid ${child.pid})`);
        signalChild(child, signal);
      }
    })();
  };
  process.on('SIGTERM', onStopSignal);
  process.on('SIGINT', onStopSignal);
  for (const s of FORWARDED_AS_IS) process.on(s, () => signalChild(child, s));

  // Readiness: poll until CMD's port answers, with a gentle growing interval, for as long as CMD lives.
  const { port } = plan.registration;
  const probeHost = probeAddress(plan.registration.address);
  const readyUrl = plan.readyHttp === undefined ? undefined : `http://${hostPort(probeHost, port)}${plan.readyHttp}`;
  const readyProbe = (timeoutMs: number) => (readyUrl === undefined ? tcpProbe(probeHost, port, timeoutMs) : httpProbe(readyUrl, timeoutMs));
  let hintAt = Date.now() + 10_000;
  let delay = 50;
  let ready = false;
  while (!childDone && !shuttingDown) {
    const { ok } = await readyProbe(1000);
    if (childDone || shuttingDown) break;
    if (!ok && Date.now() > hintAt) {
      log(`still waiting for ${readyUrl ?? hostPort(probeHost, port)} to ${readyUrl ? 'answer 2xx' : 'accept connections'}; ${who} stays starting`);
      hintAt = Infinity;
    }
    if (ok) {
      try {
        await reg.setStatus('up');
        log(`${plan.command} is ready: ${who} is up`);
        ready = true;
      } catch (err) {
        log(`could not mark ${who} up: ${(err as Error).message}`);
      }
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(1000, Math.round(delay * 1.5));
  }
  if (!ready || childDone || shuttingDown) return;

  // From here on the check runs for CMD's whole life; the registration stops it on deregister.
  const { health } = plan;
  const probe = (): Promise<ProbeResult> => {
    switch (health.probe.kind) {
      case 'ready':
        return readyProbe(health.timeoutMs);
      case 'tcp':
        return tcpProbe(probeHost, port, health.timeoutMs);
      case 'http':
        return httpProbe(`http://${hostPort(probeHost, port)}${health.probe.path}`, health.timeoutMs);
      case 'exec':
        return execProbe(health.probe.command, health.timeoutMs);
    }
  };
  reg.on('health', (flip) => {
    if (flip.applied !== undefined) log(`${flip.reason}: ${who} is ${flip.applied}`);
    else log(`${flip.reason}; ${who} keeps the status it has (not set by the health check)`);
  });
  // The probe bounds itself by the timeout; the checker's own timeout is a backstop a little later.
  reg.healthCheck(probe, { intervalMs: health.intervalMs, timeoutMs: health.timeoutMs + 1000, rise: health.rise, fall: health.fall });
}

export function addAgentCommand(program: Command): void {
  const cmd = program
    .command('agent')
    .description('run CMD and keep it registered for its lifetime: starting → up → draining → gone')
    .usage('[flags] -- CMD [ARGS...]')
    .argument('[command...]', 'the command to run and its arguments, after --')
    .addOption(new Option('--registry <urls>', 'registry base URL, or a comma list of replicas to fail over across').env('ROLLCALL_URL').default(DEFAULT_REGISTRY_URL));
  addConnectionOptions(cmd)
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('--service <service>', 'service name (required)')
    .option('--id <id>', 'instance id (default: service-host-pid)')
    .option('--address <address>', 'address peers connect to (default: first non-loopback IPv4, else 127.0.0.1)')
    .option('--port <port>', 'port CMD listens on (required)')
    .option('--ttl <seconds>', 'lease length in seconds')
    .option('--tag <tag>', 'a tag (repeatable)', collect)
    .option('--meta <key=value>', 'a metadata entry (repeatable)', collect)
    .option('--zone <zone>', 'zone the instance runs in')
    .option('--weight <weight>', 'relative weight, 0 = no new traffic')
    .option('--ready-http <path>', 'ready when GET PATH answers 2xx (default: when the port accepts a TCP connection)')
    .option('--drain-seconds <seconds>', 'time between "draining" and forwarding the stop signal', '0')
    .option('--health-http <path>', 'keep checking: healthy while GET PATH answers 2xx (without a --health-* flag the readiness check is repeated)')
    .option('--health-tcp', 'keep checking: healthy while the port accepts TCP connections')
    .option('--health-exec <command>', 'keep checking: healthy while `sh -c COMMAND` exits 0')
    .option('--health-interval <duration>', 'time between health probes', `${HEALTH_DEFAULTS.intervalMs / 1000}s`)
    .option('--health-timeout <duration>', 'a probe slower than this fails', `${HEALTH_DEFAULTS.timeoutMs / 1000}s`)
    .option('--health-rise <n>', 'consecutive passes that bring a sick instance back up', String(HEALTH_DEFAULTS.rise))
    .option('--health-fall <n>', 'consecutive failures that take an up instance down', String(HEALTH_DEFAULTS.fall))
    .option('--env-services <all|a,b>', 'start CMD with <SVC>_SERVICE_HOST/_PORT variables of these Services of the namespace, read once')
    .action(async (argv: string[], flags: AgentFlags) => {
      let plan: AgentPlan;
      try {
        plan = planAgent(argv, flags);
      } catch (err) {
        if (!(err instanceof FlagError)) throw err;
        log(err.message);
        process.exitCode = 1;
        return;
      }
      await runAgent(plan);
    });
}
