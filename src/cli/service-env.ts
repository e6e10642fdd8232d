// Kubernetes-style service environment variables, pure: Services → `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT`
// and `<SVC>_SERVICE_PORT_<PORTNAME>`, named exactly as the kubelet names them (upper case, "-" → "_"), and
// the three ways to print them.
import type { RollcallClient, Service } from '../client/index.js';

/** What the variables are made of. */
export type EnvService = Pick<Service, 'name' | 'virtualIP' | 'ports'>;

/** The namespace's Services (names with a virtual address), from the catalog in one request. */
export async function fetchEnvServices(client: RollcallClient, namespace: string): Promise<EnvService[]> {
  const list = await client.services.list(namespace);
  return list.items.flatMap((i) => (i.virtualIP === undefined || i.ports === undefined ? [] : [{ name: i.name, virtualIP: i.virtualIP, ports: i.ports }]));
}

export type EnvFormat = 'sh' | 'dotenv' | 'json';
export const ENV_FORMATS: readonly EnvFormat[] = ['sh', 'dotenv', 'json'];

/** The kubelet's makeEnvVariableName: upper case, dashes to underscores. */
export function envVariableName(name: string): string {
  return name.toUpperCase().replace(/-/g, '_');
}

/**
 * A service name usable as the start of an environment variable: a DNS label may start with a digit, a
 * shell variable may not (Kubernetes avoids it by requiring DNS-1035 Service names).
 */
export function hasEnvName(name: string): boolean {
  return /^[a-z]/.test(name);
}

/** The variables for these Services, in order: for each, HOST, PORT (its first port), then one per named port. */
export function serviceEnv(services: EnvService[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const s of services) {
    const prefix = envVariableName(s.name);
    const first = s.ports[0];
    out.push([`${prefix}_SERVICE_HOST`, s.virtualIP]);
    if (first) out.push([`${prefix}_SERVICE_PORT`, String(first.port)]);
    for (const p of s.ports) if (p.name !== null) out.push([`${prefix}_SERVICE_PORT_${envVariableName(p.name)}`, String(p.port)]);
  }
  return out;
}

/** POSIX single quotes: safe for any value, `'` written as '\''. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

export function formatEnv(vars: Array<[string, string]>, format: EnvFormat): string {
  if (format === 'json') return `${JSON.stringify(Object.fromEntries(vars), null, 2)}\n`;
  if (vars.length === 0) return '';
  // dotenv values are addresses and port numbers only, which systemd and compose take unquoted.
  const line = format === 'sh' ? ([k, v]: [string, string]) => `export ${k}=${shellQuote(v)}` : ([k, v]: [string, string]) => `${k}=${v}`;
  return `${vars.map(line).join('\n')}\n`;
}

/** `all`, or a comma-separated list of service names (DNS labels); a sentence when it is neither. */
export function parseServiceSelection(value: string): 'all' | string[] | string {
  if (value === 'all') return 'all';
  const names = value.split(',').map((n) => n.trim());
  const bad = names.find((n) => !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n));
  if (bad !== undefined) return `must be "all" or a comma-separated list of service names, got "${bad}" in "${value}"`;
  return [...new Set(names)];
}

/**
 * Picks the Services a selection names. Returns the Services, or a sentence naming those missing (a named
 * Service that does not exist is an error: a program started without the address it expects fails later
 * and less clearly). With `all`, names that cannot be variables are skipped and reported in `skipped`.
 */
export function selectServices(
  all: EnvService[],
  selection: 'all' | string[],
  namespace: string,
): { services: EnvService[]; skipped: string[] } | string {
  if (selection === 'all') {
    const sorted = [...all].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { services: sorted.filter((s) => hasEnvName(s.name)), skipped: sorted.filter((s) => !hasEnvName(s.name)).map((s) => s.name) };
  }
  const byName = new Map(all.map((s) => [s.name, s]));
  const missing = selection.filter((n) => !byName.has(n));
  if (missing.length > 0) {
    return `no Service ${missing.map((n) => `"${n}"`).join(', ')} in namespace "${namespace}" (create it with: rollcall service create NAME --port PORT)`;
  }
  const unnamable = selection.filter((n) => !hasEnvName(n));
  if (unnamable.length > 0) return `service ${unnamable.map((n) => `"${n}"`).join(', ')} starts with a digit and cannot name an environment variable`;
  return { services: selection.map((n) => byName.get(n)!), skipped: [] };
}
