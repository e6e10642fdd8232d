// Flags shared by the people commands and the agent: where the registry is, and parsers that turn a bad
// value into one clear line before any request is made.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { ClientOptions } from '../client/index.js';
import type { ClientTls } from '../client/tls.js';
import { fail } from './fail.js';

const EXIT_CODES_HELP = `
Exit codes: 0 ok, 1 bad input (bad flags or a 4xx refusal), 2 registry unreachable, 3 not found (404),
4 registry error (5xx or an answer that is not the API), 5 unauthorized (401/403).`;

export const DEFAULT_REGISTRY_URL = 'http://127.0.0.1:7400';

export interface RegistryFlags {
  /** One base URL, or the replicas of one registry (--registry a,b,c) to fail over across. */
  registry: string[];
  /** From --token, ROLLCALL_TOKEN or (read before the action runs) --token-file. */
  token?: string;
  /** From --ca-file, --cert and --key (read before the action runs). */
  tls?: ClientTls;
  json?: boolean;
}

/** The client options the flags name. */
export function clientOptions(flags: Pick<RegistryFlags, 'registry' | 'token' | 'tls'>): ClientOptions {
  return {
    url: flags.registry,
    ...(flags.token === undefined ? {} : { token: flags.token }),
    ...(flags.tls === undefined ? {} : { tls: flags.tls }),
  };
}

function readFlagFile(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    return fail(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 1);
  }
}

/**
 * --token / --token-file (a token need not appear in `ps`) and --ca-file / --cert / --key (an https:// registry,
 * mutual TLS). The files are read before the action runs, into the `token` and `tls` option values.
 */
export function addConnectionOptions(cmd: Command): Command {
  cmd.addOption(new Option('--token <token>', 'bearer token for the registry (visible in ps: prefer --token-file)').env('ROLLCALL_TOKEN'));
  cmd.addOption(new Option('--token-file <file>', 'read the bearer token from this file').env('ROLLCALL_TOKEN_FILE'));
  cmd.addOption(new Option('--ca-file <file>', 'PEM CA that signed the registry certificate (https://)').env('ROLLCALL_CA_FILE'));
  cmd.addOption(new Option('--cert <file>', 'PEM client certificate (mutual TLS)').env('ROLLCALL_CERT'));
  cmd.addOption(new Option('--key <file>', 'PEM private key of --cert').env('ROLLCALL_KEY'));
  cmd.hook('preAction', (_self, action) => {
    const opts = action.opts<{ token?: string; tokenFile?: string; caFile?: string; cert?: string; key?: string }>();
    if (opts.tokenFile !== undefined) {
      if (opts.token !== undefined && action.getOptionValueSource('token') === 'cli') fail('give --token or --token-file, not both', 1);
      const token = readFlagFile('--token-file', opts.tokenFile).trim();
      if (token === '' || /\s/.test(token)) fail(`--token-file ${opts.tokenFile}: must hold one token on one line`, 1);
      action.setOptionValue('token', token);
    }
    if ((opts.cert === undefined) !== (opts.key === undefined)) fail('--cert and --key go together', 1);
    const tls: ClientTls = {};
    if (opts.caFile !== undefined) tls.ca = readFlagFile('--ca-file', opts.caFile);
    if (opts.cert !== undefined) tls.cert = readFlagFile('--cert', opts.cert);
    if (opts.key !== undefined) tls.key = readFlagFile('--key', opts.key);
    if (Object.keys(tls).length > 0) action.setOptionValue('tls', tls);
  });
  return cmd;
}

/** --registry (or ROLLCALL_URL), the connection options, and --json when `json` is set. */
export function addRegistryOptions(cmd: Command, { json = true } = {}): Command {
  cmd.addOption(
    new Option('--registry <urls>', 'registry base URL, or a comma list of replicas to fail over across')
      .env('ROLLCALL_URL')
      .default([DEFAULT_REGISTRY_URL], DEFAULT_REGISTRY_URL)
      .argParser(parseRegistries),
  );
  addConnectionOptions(cmd);
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

/** --registry URL or URL,URL,…: the replicas of one registry, each checked like parseUrl. */
export function parseRegistries(value: string): string[] {
  const urls = value.split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length === 0) throw new InvalidArgumentError('must be one URL or a comma list of URLs');
  return [...new Set(urls.map(parseUrl))];
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
