// How the people commands talk back: a table or JSON on stdout, one line on stderr for a failure,
// and an exit code per kind of failure, so scripts can tell "not found" from "registry down".
import { RollcallClientError, createClient, type RollcallClient } from '../client/index.js';
import { clientOptions, type RegistryFlags } from './options.js';

/** Exit codes of the people commands (documented in README and `rollcall --help`). */
export const EXIT = {
  ok: 0,
  /** Bad flags, or the registry refused the input (400, 413, 415, …). */
  badInput: 1,
  /** The registry did not answer (connection refused, DNS failure, timeout). */
  unreachable: 2,
  /** 404: the instance is not registered (unknown or its lease expired). */
  notFound: 3,
  /** The registry answered 5xx or something that is not its API. */
  registryError: 4,
  /** 401/403: missing or wrong --token. */
  unauthorized: 5,
} as const;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof RollcallClientError)) return EXIT.registryError;
  if (err.status === undefined) return err.code === 'bad_response' ? EXIT.registryError : EXIT.unreachable;
  if (err.status === 404) return EXIT.notFound;
  if (err.status === 401 || err.status === 403) return EXIT.unauthorized;
  if (err.status >= 400 && err.status < 500) return EXIT.badInput;
  return EXIT.registryError;
}

/** One line: the registry's sentence, then the offending fields when it named them. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let line = err.message;
  if (err instanceof RollcallClientError && Array.isArray(err.details)) {
    const details = err.details as Array<{ path?: unknown; message?: unknown }>;
    // Name the offending fields unless the registry's sentence already does.
    const unnamed = details.filter((d) => !(typeof d.path === 'string' && line.includes(d.path)));
    if (unnamed.length > 0) line += ` (${unnamed.map((d) => (d.path ? `${String(d.path)}: ${String(d.message)}` : String(d.message))).join('; ')})`;
  }
  return line.replace(/\s*\n\s*/g, ' ');
}

/** Runs one command, maps any failure to its line and exit code. Never throws. */
export async function runCommand(json: boolean | undefined, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const code = exitCodeFor(err);
    if (json) {
      const body: Record<string, unknown> = {
        error: err instanceof RollcallClientError ? err.code : 'internal_error',
        message: describeError(err),
      };
      if (err instanceof RollcallClientError && err.status !== undefined) body.status = err.status;
      if (err instanceof RollcallClientError && err.details !== undefined) body.details = err.details;
      process.stderr.write(`${JSON.stringify(body)}\n`);
    } else {
      process.stderr.write(`rollcall: ${describeError(err)}\n`);
    }
    process.exitCode = code;
  }
}

/** runCommand with a client for the registry the flags name, closed when the command is done. */
export async function withRegistryClient(flags: RegistryFlags, fn: (client: RollcallClient) => Promise<void>): Promise<void> {
  await runCommand(flags.json, async () => {
    const client = createClient(clientOptions(flags));
    try {
      await fn(client);
    } finally {
      client.close();
    }
  });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain left-aligned table; numbers are right-aligned. */
export function printTable(headers: string[], rows: Array<Array<string | number>>): void {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, col) => Math.max(h.length, ...cells.map((r) => (r[col] ?? '').length)));
  const numeric = headers.map((_, col) => rows.length > 0 && rows.every((r) => typeof r[col] === 'number'));
  const line = (r: string[]) =>
    r
      .map((c, col) => (numeric[col] ? c.padStart(widths[col] ?? 0) : c.padEnd(widths[col] ?? 0)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${[line(headers), ...cells.map(line)].join('\n')}\n`);
}

export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
