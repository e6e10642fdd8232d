// Generator options, validated once at the edge (HTTP query or CLI flags) so the generators only see good values.
import { isIP } from 'node:net';
import { RollcallError } from '../errors.js';
import { DNS_LABEL } from '../schemas/instance.js';

/** Load-balancing algorithms that both nginx (open source) and HAProxy implement. */
export const BALANCE_VALUES = ['round_robin', 'least_conn', 'random'] as const;
export type Balance = (typeof BALANCE_VALUES)[number];

/** Where the proxy listens. host undefined = every address. */
export interface Listen {
  host?: string;
  port: number;
}

export interface GeneratorOptions {
  listen: Listen;
  /** Only these services; each one listed gets a route even when it has no instance (it answers 503). */
  services?: string[];
  balance: Balance;
}

/** What users type: `listen=8080`, `listen=127.0.0.1:8080`, `listen=[::1]:8080`, `listen=*:8080`. */
export interface RawGeneratorOptions {
  listen?: string;
  service?: string | string[];
  balance?: string;
}

export const DEFAULT_LISTEN = '80';
export const DEFAULT_BALANCE: Balance = 'round_robin';

// Loose on purpose only where the proxies are: a hostname to bind is allowed, but it must be a plain DNS name.
const BIND_HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function parsePort(text: string, raw: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw badListen(raw);
  const port = Number(text);
  if (port < 1 || port > 65535) throw badListen(raw);
  return port;
}

function badListen(raw: string): RollcallError {
  return new RollcallError(
    'bad_request',
    `listen ${JSON.stringify(raw)} is not valid: use a port (8080), address:port (127.0.0.1:8080) or [ipv6]:port ([::1]:8080)`,
    [{ path: 'listen', message: 'must be PORT, ADDRESS:PORT or [IPV6]:PORT' }],
  );
}

export function parseListen(raw: string): Listen {
  const text = raw.trim();
  if (/^[0-9]+$/.test(text)) return { port: parsePort(text, raw) };
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:([0-9]+)$/.exec(text);
  if (v6) {
    const host = v6[1] ?? '';
    if (isIP(host) !== 6) throw badListen(raw);
    return { host, port: parsePort(v6[2] ?? '', raw) };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) throw badListen(raw);
  const host = text.slice(0, colon);
  const port = parsePort(text.slice(colon + 1), raw);
  if (host === '*') return { port };
  if (isIP(host) === 4 || BIND_HOSTNAME.test(host)) return { host, port };
  throw badListen(raw);
}

export function parseBalance(raw: string): Balance {
  const found = BALANCE_VALUES.find((b) => b === raw);
  if (!found) {
    throw new RollcallError(
      'bad_request',
      `balance ${JSON.stringify(raw)} is not supported: use one of ${BALANCE_VALUES.join(', ')} (what both nginx and HAProxy implement)`,
      [{ path: 'balance', message: `must be one of ${BALANCE_VALUES.join(', ')}` }],
    );
  }
  return found;
}

/** `a,b` or repeated values; empty entries are ignored; duplicates collapse; the result is sorted. */
export function parseServices(raw: string | string[]): string[] {
  const names = (Array.isArray(raw) ? raw : [raw])
    .flatMap((part) => part.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const name of names) {
    if (!DNS_LABEL.test(name)) {
      throw new RollcallError('bad_request', `service ${JSON.stringify(name)} is not a DNS-1123 label`, [
        { path: 'service', message: 'must be a comma list of DNS-1123 labels' },
      ]);
    }
  }
  return [...new Set(names)].sort(compareCodePoints);
}

export function parseGeneratorOptions(raw: RawGeneratorOptions): GeneratorOptions {
  const options: GeneratorOptions = {
    listen: parseListen(raw.listen ?? DEFAULT_LISTEN),
    balance: parseBalance(raw.balance ?? DEFAULT_BALANCE),
  };
  if (raw.service !== undefined) {
    const services = parseServices(raw.service);
    if (services.length > 0) options.services = services;
  }
  return options;
}

/** Locale-independent order: the same input sorts the same on every machine, so output is byte-identical. */
export function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
