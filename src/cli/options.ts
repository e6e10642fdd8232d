// Flags shared by the people commands and the agent: where the registry is, and parsers that turn a bad
// value into one clear line before any request is made.
import os from 'node:os';
import { type Command, InvalidArgumentError, Option } from 'commander';

const EXIT_CODES_HELP = `
Exit codes: 0 ok, 1 bad input (bad flags or a 4xx refusal), 2 registry unreachable, 3 not found (404),
4 registry error (5xx or an answer that is not the API), 5 unauthorized (401/403).`;

export const DEFAULT_REGISTRY_URL = 'http://127.0.0.1:7400';

export interface RegistryFlags {
  registry: string;
  token?: string;
  json?: boolean;
}

/** --registry (or ROLLCALL_URL), --token (or ROLLCALL_TOKEN), and --json when `json` is set. */
export function addRegistryOptions(cmd: Command, { json = true } = {}): Command {
  cmd.addOption(
    new Option('--registry <url>', 'registry base URL').env('ROLLCALL_URL').default(DEFAULT_REGISTRY_URL).argParser(parseUrl),
  );
  cmd.addOption(new Option('--token <token>', 'bearer token for the registry').env('ROLLCALL_TOKEN'));
  if (json) cmd.option('--json', 'print the answer as JSON');
  cmd.addHelpText('after', EXIT_CODES_HELP);
  return cmd;
}

export function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('must be a URL such as http://127.0.0.1:7400');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('must be an http:// or https:// URL');
  if (url.search !== '' || url.hash !== '') throw new InvalidArgumentError('must be the registry base URL, without ?query or #fragment');
  // The base URL is where /v1/… is appended; people often paste the API's URL itself (…/v1 or …/v1/): accept it.
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

export function intParser(min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** --meta k=v, repeatable, into a record. */
export function collectMeta(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('must be key=value');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export const STATUSES = ['starting', 'up', 'draining', 'down'] as const;

/** The first non-internal IPv4 address of this host, else 127.0.0.1. */
export function defaultAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
