// The agent's probes: does CMD accept TCP connections, answer HTTP 2xx, or pass a shell command? Each
// answers a ProbeResult whose detail says why, for the agent's log and the instance's metadata.
import { spawn } from 'node:child_process';
import net from 'node:net';
import type { ProbeResult } from '../client/index.js';

export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: ProbeResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, detail: `no TCP connection to ${where} within ${timeoutMs} ms` }));
    socket.once('connect', () => done({ ok: true, detail: `${where} accepts connections` }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, detail: `TCP connect to ${where} failed (${err.code ?? err.message})` }));
  });
}

export async function httpProbe(url: string, timeoutMs: number): Promise<ProbeResult> {
  const path = new URL(url).pathname;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return { ok: res.status >= 200 && res.status < 300, detail: `HTTP ${res.status} from ${path}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    if (e.name === 'TimeoutError') return { ok: false, detail: `no answer from ${path} within ${timeoutMs} ms` };
    return { ok: false, detail: `GET ${path} failed (${e.cause?.code ?? e.message})` };
  }
}

/** `sh -c COMMAND`: exit code 0 is healthy. A command still running at the timeout is killed and fails. */
export function execProbe(command: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    // Its own process group, so a timeout kills whatever the shell started too.
    const child = spawn('sh', ['-c', command], { stdio: 'ignore', detached: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: `could not run sh (${err.message})` });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve({ ok: false, detail: `\`${command}\` did not finish within ${timeoutMs} ms` });
      else if (code === 0) resolve({ ok: true, detail: `\`${command}\` exited 0` });
      else resolve({ ok: false, detail: `\`${command}\` ${code === null ? `was killed by ${signal}` : `exited ${code}`}` });
    });
  });
}
