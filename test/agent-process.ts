// `rollcall agent` as a real child process around the test service in fixtures/agent-child.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { CHILD_ENV, CLI } from './helper.js';

export const AGENT_CHILD = fileURLToPath(new URL('./fixtures/agent-child.js', import.meta.url));

export interface Agent {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `rollcall agent AGENT_ARGS -- CHILD_CMD`; killed (with its child) at teardown. */
export function startAgent(t: Test, agentArgs: string[], childCmd: string[]): Agent {
  const proc = spawn(process.execPath, [CLI, 'agent', ...agentArgs, '--', ...childCmd], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
  });
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** `node agent-child.js PORT ARGS…`: the command line of the test service. */
export const child = (port: number, ...args: string[]) => [process.execPath, AGENT_CHILD, String(port), ...args];
export const instanceUrl = (url: string, id: string, service = 'api') => `${url}/v1/namespaces/default/services/${service}/instances/${id}`;
