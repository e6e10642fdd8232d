// DNS test helpers: a registry with its DNS listener on an ephemeral loopback port, and Debian's dig, parsed.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import type { ConfigInput } from '../src/config.js';
import type { Clock } from '../src/registry/clock.js';
import { api, startServer, type StartedServer } from './helper.js';

const execFileAsync = promisify(execFile);
const DIG = ['/usr/bin/dig', '/usr/local/bin/dig'];

/** dig's path, or null after a loud skip; in CI a missing dig fails (.ci/run installs dnsutils). */
export function requireDig(t: Test): string | null {
  const found = DIG.find((p) => existsSync(p));
  if (found) return found;
  const message = `dig is not installed (looked in ${DIG.join(', ')}); install dnsutils to run this test`;
  if (process.env.CI) t.fail(`CI must provide dig: ${message}`);
  else {
    t.comment(`!!! SKIPPED: ${message}`);
    t.pass('dig checks', { skip: message });
  }
  return null;
}

export interface DnsServer extends StartedServer {
  dnsPort: number;
  /** PUT an instance (long TTL unless given). */
  register(namespace: string, service: string, id: string, body: Record<string, unknown>): Promise<void>;
}

export async function startDnsServer(t: Test, options: { config?: Partial<ConfigInput>; clock?: Clock } = {}): Promise<DnsServer> {
  const server = await startServer(t, { config: { dnsListen: '127.0.0.1:0', ...options.config }, ...(options.clock ? { clock: options.clock } : {}) });
  const dnsPort = server.app.dns!.address().port;
  return {
    ...server,
    dnsPort,
    async register(namespace, service, id, body) {
      const res = await api(`${server.url}/v1/namespaces/${namespace}/services/${service}/instances/${id}`, 'PUT', { ttlSeconds: 3600, ...body });
      if (res.status >= 300) throw new Error(`register ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    },
  };
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: string[][];
  authority: string[][];
  additional: string[][];
  raw: string;
}

/** `dig @127.0.0.1 -p port <args>`, one try, parsed into status, header flags and record fields per section. */
export async function dig(binary: string, port: number, ...args: string[]): Promise<DigResult> {
  const { stdout } = await execFileAsync(
    binary,
    ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=5', '+nocookie', '+noall', '+comments', '+answer', '+authority', '+additional', ...args],
    { timeout: 20_000 },
  );
  const result: DigResult = { status: '', flags: [], answer: [], authority: [], additional: [], raw: stdout };
  let section: 'answer' | 'authority' | 'additional' | null = null;
  for (const line of stdout.split('\n')) {
    const status = /status: (\w+)/.exec(line);
    if (status) result.status = status[1]!;
    const flags = /^;; flags: ([^;]*);/.exec(line);
    if (flags) result.flags = flags[1]!.trim().split(/\s+/);
    const header = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (header) section = header[1]!.toLowerCase() as 'answer' | 'authority' | 'additional';
    else if (line.trim() === '' || line.startsWith(';')) {
      if (line.trim() === '') section = null;
    } else if (section) result[section].push(line.trim().split(/\s+/));
  }
  return result;
}

/** The data fields (after name, TTL, class, type) of the records of one type in a section, joined by spaces. */
export function rdata(records: string[][], type: string): string[] {
  return records.filter((r) => r[3] === type).map((r) => r.slice(4).join(' '));
}
