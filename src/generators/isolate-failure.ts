// A proxy's check refused a rendered config. Left alone, every later render fails the same way and no change of any
// service reaches the proxy until someone removes the cause. So find the instances that break the check and try
// the config without them: first the ones the check's message names (nginx: `host not found in upstream
// "host:port"`), then, when the message names none, one service at a time. Each try is a real check run.
import { hostPort } from './sanitize.js';
import { compareCodePoints } from './options.js';
import { instanceKey } from './snapshot.js';

export interface Suspect {
  service: string;
  id: string;
  address: string;
  port: number;
}

export interface IsolateRequest {
  /** The instances that were rendered (already without those in leaveOut). */
  instances: readonly Suspect[];
  /** What the failed render already left out (e.g. names that do not resolve); kept left out. */
  leaveOut: ReadonlyMap<string, string>;
  /** The failed check's output. */
  output: string;
  /** Left out by the previous isolation: tried first, since the same cause usually persists. */
  hint?: ReadonlyMap<string, string>;
  /** Renders without these and runs the check; passed = the config is in place and accepted. */
  attempt: (leaveOut: ReadonlyMap<string, string>) => Promise<{ passed: boolean; output: string }>;
  /** Bound on rounds of "leave out what the message names" (each can reveal the next bad name). */
  maxNamedRounds?: number;
}

export interface Isolated {
  /** Everything left out in the accepted config (including the request's leaveOut). */
  leaveOut: Map<string, string>;
  /** Keys of the instances this isolation left out, sorted. */
  culprits: string[];
  /** How many checks the search ran. */
  attempts: number;
}

// nginx: `[emerg] host not found in upstream "demo-9:8000" in /etc/nginx/conf.d/rollcall.conf:7`.
const NGINX_HOST_NOT_FOUND = /host not found in upstream "([^"\s]+)"/gi;

/** The instances a check's output names as the cause; matched on host:port, or on the host alone. */
export function namedInOutput(output: string, instances: readonly Suspect[]): Suspect[] {
  const named = new Set<string>();
  for (const m of output.matchAll(NGINX_HOST_NOT_FOUND)) named.add((m[1] as string).toLowerCase());
  if (named.size === 0) return [];
  return instances.filter((i) => named.has(hostPort(i.address, i.port).toLowerCase()) || named.has(i.address.toLowerCase()));
}

export async function isolateFailure(req: IsolateRequest): Promise<Isolated | null> {
  let attempts = 0;
  const tryWith = async (leaveOut: Map<string, string>) => {
    attempts++;
    return req.attempt(leaveOut);
  };
  const remaining = (leaveOut: ReadonlyMap<string, string>) => req.instances.filter((i) => !leaveOut.has(instanceKey(i)));
  const done = (leaveOut: Map<string, string>): Isolated => ({
    leaveOut,
    culprits: [...leaveOut.keys()].filter((k) => !req.leaveOut.has(k)).sort(compareCodePoints),
    attempts,
  });

  let output = req.output;
  if (req.hint && req.hint.size > 0) {
    const present = new Set(req.instances.map(instanceKey));
    const hinted = new Map(req.leaveOut);
    for (const [key, reason] of req.hint) if (present.has(key) && !hinted.has(key)) hinted.set(key, reason);
    if (hinted.size > req.leaveOut.size) {
      const r = await tryWith(hinted);
      if (r.passed) return done(hinted);
    }
  }

  const leaveOut = new Map(req.leaveOut);
  for (let round = 0; round < (req.maxNamedRounds ?? 8); round++) {
    const named = namedInOutput(output, remaining(leaveOut));
    if (named.length === 0) break;
    for (const i of named) leaveOut.set(instanceKey(i), `the check failed on host ${hostPort(i.address, i.port)}`);
    const r = await tryWith(leaveOut);
    if (r.passed) return done(leaveOut);
    output = r.output;
  }

  // The message named nothing we rendered: bisect by service, leaving out one service's instances at a time.
  const byService = new Map<string, Suspect[]>();
  for (const i of remaining(leaveOut)) byService.set(i.service, [...(byService.get(i.service) ?? []), i]);
  for (const service of [...byService.keys()].sort(compareCodePoints)) {
    const trial = new Map(leaveOut);
    for (const i of byService.get(service) ?? []) trial.set(instanceKey(i), `the check failed with service ${service} in the config`);
    const r = await tryWith(trial);
    if (r.passed) return done(trial);
  }
  // Nothing passed (the cause is not one service, or not in the registry at all): the caller keeps the previous file.
  return null;
}
