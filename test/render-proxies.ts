// Real nginx and HAProxy for the generator tests: find the binaries (a CI without them fails loudly, a developer
// machine skips loudly), validate configs with `nginx -t` / `haproxy -c`, and run them as foreground children.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { CHILD_ENV, PATIENCE_MS } from './helper.js';

const execFileAsync = promisify(execFile);

const LOCATIONS: Record<'nginx' | 'haproxy', string[]> = {
  nginx: ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx', '/usr/local/bin/nginx'],
  haproxy: ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/bin/haproxy'],
};

/**
 * The binary's path, or null after recording why: in CI (process.env.CI) a missing proxy is a failure, because
 * .ci/run installs nginx-light and haproxy and these tests are the proof of issue 4; elsewhere a loud skip.
 */
export function requireBinary(t: Test, name: 'nginx' | 'haproxy'): string | null {
  const found = LOCATIONS[name].find((p) => existsSync(p));
  if (found) return found;
  const message = `${name} is not installed (looked in ${LOCATIONS[name].join(', ')}); install ${name === 'nginx' ? 'nginx-light' : 'haproxy'} to run this test`;
  if (process.env.CI) t.fail(`CI must provide ${name}: ${message}`);
  else {
    t.comment(`!!! SKIPPED: ${message}`);
    t.pass(`${name} checks`, { skip: message });
  }
  return null;
}

/** A free loopback port (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** An nginx prefix in `dir`: main config including conf.d/*.conf, temp paths, pid and logs all inside it. */
export async function nginxPrefix(dir: string): Promise<{ main: string; confD: string; pid: string }> {
  const confD = join(dir, 'conf.d');
  await mkdir(confD, { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const main = join(dir, 'nginx.conf');
  const pid = join(dir, 'nginx.pid');
  await writeFile(
    main,
    [
      'daemon off;',
      'master_process on;',
      'worker_processes 1;',
      `pid ${pid};`,
      `error_log ${join(dir, 'error.log')} notice;`,
      'events { worker_connections 256; }',
      'http {',
      '    access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `    ${k}_temp_path ${join(dir, 'tmp', k)};`),
      `    include ${confD}/*.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  return { main, confD, pid };
}

export function nginxArgs(binary: string, dir: string, main: string): string[] {
  // -e: nginx opens its compiled-in error log before reading the config; point it somewhere writable.
  return [binary, '-p', dir, '-c', main, '-e', join(dir, 'startup.log')];
}

/** Runs a command line; resolves with exit code and output, never rejects on a non-zero exit. */
export async function runCheck(argv: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(argv[0] as string, argv.slice(1), { timeout: PATIENCE_MS });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** `nginx -t` on a generated conf.d file, inside a throwaway prefix. */
export async function nginxTest(binary: string, dir: string, config: string): Promise<{ code: number; output: string }> {
  const prefix = await nginxPrefix(dir);
  await writeFile(join(prefix.confD, 'rollcall.conf'), config);
  return runCheck([...nginxArgs(binary, dir, prefix.main), '-t']);
}

export async function haproxyCheck(binary: string, dir: string, config: string): Promise<{ code: number; output: string }> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  return runCheck([binary, '-c', '-f', file]);
}

/**
 * True once a proxy master runs only its current worker. A reload is asynchronous: for a moment old workers,
 * still on the previous config, accept new connections beside the new ones, so "no new traffic to X" is only
 * settled when they are gone.
 */
export function oldWorkersGone(proc: ChildProcess): boolean {
  if (proc.pid === undefined) return false;
  try {
    const children = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return children.length === 1;
  } catch {
    return false;
  }
}

/** Starts a long-running child, killed (SIGKILL on its process group) at teardown. */
export function spawnOwned(t: Test, argv: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess & { logs: () => string } {
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...CHILD_ENV, ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let logs = '';
  child.stdout?.on('data', (c: Buffer) => (logs += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (logs += c.toString()));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited;
  });
  return Object.assign(child, { logs: () => logs });
}

/** Polls until `fn` returns a truthy value; fails after `timeoutMs` with the last value in the message. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = PATIENCE_MS, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await fn();
      if (last) return last as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** An HTTP backend on 127.0.0.1:<ephemeral> answering its own id and counting its requests; closed at teardown. */
export async function idBackend(t: Test, id: string): Promise<{ id: string; port: number; hits: () => number }> {
  let hits = 0;
  const server = createHttpServer((_req, res) => {
    hits++;
    res.setHeader('connection', 'close');
    res.end(id);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { id, port: address.port, hits: () => hits };
}

/** One GET through a proxy with a chosen Host, on a fresh connection; errors become status -1. */
export function getVia(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 30_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', (err) => resolve({ status: -1, body: err.message }));
    req.end();
  });
}
