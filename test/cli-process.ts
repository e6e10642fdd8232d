// `rollcall …` as a real child process for CLI tests: exit code, stdout and stderr, never a throw.
import { execFile } from 'node:child_process';
import type { Test } from 'tap';
import { CHILD_ENV, CLI, PATIENCE_MS } from './helper.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...CHILD_ENV, ...env }, timeout: PATIENCE_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const rollcall = (args: string[], env: Record<string, string> = {}) => run(process.execPath, [CLI, ...args], env);

/** A CLI error is one line on stderr. */
export const oneLine = (t: Test, r: Run) => t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
