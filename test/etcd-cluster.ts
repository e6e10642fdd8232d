// A real 3-member etcd cluster on loopback for tests: Debian's etcd-server, each member a child process with its
// own data directory and ephemeral ports. Members can be killed, stopped (SIGSTOP) and started again.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort, waitFor } from './helper.js';

export interface EtcdMember {
  name: string;
  /** The client URL, e.g. http://127.0.0.1:23791 */
  clientUrl: string;
  running: boolean;
  /** Sends signal (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the member again on the same data directory and ports; resolves once it answers /health. */
  start(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client URL. */
  endpoints: string[];
  /** A key prefix of its own for one test, so tests sharing a cluster never see each other's keys. */
  prefix(name: string): string;
  close(): Promise<void>;
}

/** Whether the etcd binary is here. Tests skip loudly without it, and fail when CI=true. */
export function haveEtcd(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Skips (or, with CI=true, fails) a test that needs etcd when the binary is missing. Returns true when it can run. */
export function requireEtcd(t: Test): boolean {
  if (haveEtcd()) return true;
  const message = 'etcd is not installed; install the Debian package etcd-server to run this test';
  if (process.env.CI) t.fail(`CI must provide etcd: ${message}`);
  else {
    t.comment(`!!! SKIPPED: ${message}`);
    t.pass('etcd checks', { skip: message });
  }
  return false;
}

/**
 * Starts a 3-member cluster (or `size` members) and waits until it has a leader and answers writes. Killed at
 * teardown. Members use --unsafe-no-fsync where the test does not need durability across a power cut (it never
 * does here: a killed process still leaves its writes in the page cache).
 */
export async function startEtcdCluster(t: Test, options: { size?: number } = {}): Promise<EtcdCluster> {
  const size = options.size ?? 3;
  const dir = t.testdir();
  const specs: { name: string; clientPort: number; peerPort: number; dataDir: string }[] = [];
  for (let i = 0; i < size; i++) {
    specs.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(dir, `m${i}`) });
  }
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
  const token = `rollcall-test-${process.pid}-${Date.now()}`;

  const members: EtcdMember[] = specs.map((spec) => {
    let child: ChildProcess | undefined;
    let everStarted = false;
    const clientUrl = `http://127.0.0.1:${spec.clientPort}`;
    const member: EtcdMember = {
      name: spec.name,
      clientUrl,
      get running() {
        return child !== undefined && child.exitCode === null && child.signalCode === null;
      },
      async kill(signal: NodeJS.Signals = 'SIGKILL') {
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        const exited = once(c, 'exit');
        c.kill(signal);
        if (signal === 'SIGSTOP') return;
        await exited;
      },
      async start() {
        const args = [
          '--name', spec.name,
          '--data-dir', spec.dataDir,
          '--listen-client-urls', clientUrl,
          '--advertise-client-urls', clientUrl,
          '--listen-peer-urls', `http://127.0.0.1:${spec.peerPort}`,
          '--initial-advertise-peer-urls', `http://127.0.0.1:${spec.peerPort}`,
          '--initial-cluster', initialCluster,
          '--initial-cluster-token', token,
          '--initial-cluster-state', everStarted ? 'existing' : 'new',
          '--unsafe-no-fsync',
          // Fast elections for tests: a killed leader is replaced in about a second.
          '--heartbeat-interval', '100',
          '--election-timeout', '1000',
          '--logger', 'zap',
          '--log-level', 'error',
        ];
        everStarted = true;
        child = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-4000);
        });
        const c = child;
        c.on('exit', (code, signal) => {
          if (code !== 0 && code !== null && signal === null) t.comment(`etcd ${spec.name} exited ${code}: ${stderr}`);
        });
      },
    };
    return member;
  });

  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    prefix: (name) => `/rollcall-test/${name.replace(/[^a-zA-Z0-9_-]/g, '-')}-${Date.now().toString(36)}`,
    async close() {
      await Promise.all(members.map((m) => m.kill('SIGKILL')));
    },
  };
  t.teardown(() => cluster.close());

  // Members of a new cluster wait for each other: start them all, then wait until every one reports healthy.
  await Promise.all(members.map((m) => m.start()));
  await Promise.all(members.map((m) => waitForHealthy(m.clientUrl)));
  return cluster;
}

/** Resolves once the member answers /health with "true" (it has a leader and serves requests). */
export async function waitForHealthy(clientUrl: string, timeoutMs?: number): Promise<void> {
  await waitFor(
    async () => {
      try {
        const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        return body.health === 'true';
      } catch {
        return false;
      }
    },
    timeoutMs,
    `etcd ${clientUrl} healthy`,
  );
}

/** Restarts a member that was killed, and waits until it is healthy again. */
export async function restartMember(member: EtcdMember): Promise<void> {
  await member.start();
  await waitForHealthy(member.clientUrl);
}
