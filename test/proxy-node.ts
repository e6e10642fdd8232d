// Starts test/fixtures/proxy-node.ts (a registry, backends and `rollcall proxy` on one "node") and talks to it.
// netns: true runs it under `unshare -n` with loopback up, so nftables rules and sockets stay in a namespace the
// test created and that disappears with it.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { CHILD_ENV } from './helper.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/proxy-node.js', import.meta.url));

export interface ProxyNode {
  registry: string;
  call(op: string, args?: Record<string, unknown>): Promise<any>;
}

/** Why nftables mode cannot be tested here, or undefined when it can (unshare, ip and nft all work in a netns). */
export function netnsUnavailable(): string | undefined {
  const res = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && nft list tables'], { encoding: 'utf8' });
  if (res.error) return `unshare not found (${res.error.message})`;
  if (res.status !== 0) return `cannot create a network namespace with loopback and nft: ${(res.stderr || '').trim() || `exit ${res.status}`}`;
  return undefined;
}

export async function startProxyNode(t: Test, options: { netns: boolean }): Promise<ProxyNode> {
  const node = [process.execPath, FIXTURE];
  const child = options.netns
    ? spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', ...node], { stdio: ['pipe', 'pipe', 'pipe'], env: CHILD_ENV })
    : spawn(node[0]!, node.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: CHILD_ENV });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(() => {
    child.stdin!.end();
    child.kill('SIGTERM');
  });
  const waiting = new Map<number, (m: any) => void>();
  let readyResolve!: (m: any) => void;
  const ready = new Promise<any>((resolve, reject) => {
    readyResolve = resolve;
    child.once('exit', (code) => reject(new Error(`proxy node exited with ${code}: ${stderr}`)));
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line);
    if (m.ready) readyResolve(m);
    else waiting.get(m.id)?.(m);
  });
  const { registry } = await ready;
  let nextId = 1;
  return {
    registry,
    call(op, args = {}) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, (m) => {
          waiting.delete(id);
          if (m.error) reject(new Error(`${op}: ${m.error}`));
          else resolve(m);
        });
        child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
      });
    },
  };
}
