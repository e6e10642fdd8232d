// Test helpers: the real app on a real SQLite file, listening on an ephemeral loopback port, or as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { buildApp, type App } from '../src/app.js';
import { loadConfig, type ConfigInput } from '../src/config.js';
import type { Clock } from '../src/registry/clock.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The built CLI entry point (tests run from dist/test). */
export const CLI = join(here, '../src/cli/index.js');

// tap's NODE_OPTIONS loads its process-info hook into every child, which costs most of a second per start.
const { NODE_OPTIONS: _tapHooks, ...childEnv } = process.env;
/** The environment for child processes the tests start (CLI, agent, servers): ours, without tap's hooks. */
export const CHILD_ENV: NodeJS.ProcessEnv = childEnv;

export interface StartedServer {
  app: App;
  url: string;
  port: number;
  dataDir: string;
  registry: App['registry'];
  close(): Promise<void>;
}

/** Builds the app (no listen) on a fresh SQLite file in a tap temp dir; closed at teardown. For inject(). */
export async function buildTestApp(t: Test, options: { config?: Partial<ConfigInput>; clock?: Clock; dataDir?: string } = {}) {
  const dataDir = options.dataDir ?? t.testdir();
  const app = await buildApp({
    config: loadConfig({ dataDir, ...options.config } as Record<string, unknown>),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  t.teardown(() => app.close());
  await app.ready();
  return { app, dataDir };
}

/** A real server on 127.0.0.1:<ephemeral> with a real SQLite file; closed at teardown. */
export async function startServer(t: Test, options: { config?: Partial<ConfigInput>; clock?: Clock; dataDir?: string } = {}): Promise<StartedServer> {
  const dataDir = options.dataDir ?? t.testdir();
  const app = await buildApp({
    config: loadConfig({ dataDir, ...options.config } as Record<string, unknown>),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
  };
  t.teardown(close);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  return { app, url: `http://127.0.0.1:${address.port}`, port: address.port, dataDir, registry: app.registry, close };
}

export interface ServerProcess {
  url: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** Sends signal (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * `rollcall serve` as a real child process. Resolves once it listens. Pass the same dataDir (and port) to
 * restart "the same" registry; killed at teardown.
 */
export async function startServerProcess(
  t: Test,
  options: { dataDir?: string; port?: number; args?: string[]; env?: NodeJS.ProcessEnv; startTimeoutMs?: number } = {},
): Promise<ServerProcess> {
  const dataDir = options.dataDir ?? t.testdir();
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--host', '127.0.0.1', '--port', String(options.port ?? 0), '--data-dir', dataDir, ...(options.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...CHILD_ENV, ...options.env } },
  );
  const exited = once(child, 'exit');
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  t.teardown(() => kill());
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let scheme = 'http';
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const limit = Math.max(options.startTimeoutMs ?? 0, PATIENCE_MS);
    const timer = setTimeout(() => reject(new Error(`rollcall serve did not start within ${limit} ms: ${stderr}`)), limit);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Server listening at (https?):\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        scheme = m[1]!;
        resolve(Number(m[2]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`rollcall serve exited with ${code}: ${stderr}`));
    });
  });
  child.stdout!.resume();
  return { url: `${scheme}://127.0.0.1:${port}`, port, dataDir, child, kill };
}

/**
 * How long a test waits for something that must happen. It is only a bound, so that a broken build fails instead of
 * hanging: CI runs on 2 cores shared with other jobs, and a test whose outcome depends on how fast the machine is
 * fails there. Wait on conditions with this bound; never pass a small one; assert durations in bench/, not here.
 */
export const PATIENCE_MS = 60_000;

/** Polls condition until it returns truthy or timeoutMs passes (then throws). No fixed sleeps in tests. */
export async function waitFor<T>(condition: () => T | Promise<T>, timeoutMs = PATIENCE_MS, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** JSON over fetch, returning status, headers and parsed body. */
export async function api(
  url: string,
  method = 'GET',
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** A loopback port nobody listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
