// Runs --check and --reload command lines the way consul-template and confd do: `sh -c CMD`.
import { spawn } from 'node:child_process';

export interface CommandResult {
  /** Exit code; null when killed by a signal or the timeout. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** stdout and stderr interleaved, capped, for the failure message. */
  output: string;
}

export type CommandRunner = (command: string) => Promise<CommandResult>;

const OUTPUT_CAP = 16 * 1024;

export function createShellRunner(options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): CommandRunner {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return (command) =>
    new Promise((resolve) => {
      // detached: the command gets its own process group, so a timeout kills what it started too.
      const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, detached: true });
      let output = '';
      let timedOut = false;
      const collect = (chunk: Buffer) => {
        if (output.length < OUTPUT_CAP) output += chunk.toString('utf8');
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ code: null, signal: null, timedOut, output: err.message });
      });
      // 'exit', not 'close': a reload that starts a daemon leaves our pipes open in the daemon. Give the pipes a
      // moment to drain what the command itself wrote, then stop listening.
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const finish = () => {
          child.stdout.destroy();
          child.stderr.destroy();
          resolve({ code, signal, timedOut, output: output.slice(0, OUTPUT_CAP) });
        };
        if (child.stdout.readableEnded && child.stderr.readableEnded) finish();
        else {
          const grace = setTimeout(finish, 100);
          child.on('close', () => {
            clearTimeout(grace);
            finish();
          });
        }
      });
    });
}

/** One line saying why a command failed, for logs and for a one-shot's exit message. */
export function describeFailure(command: string, result: CommandResult): string {
  const how = result.timedOut
    ? 'timed out'
    : result.code !== null
      ? `exited with ${result.code}`
      : `was killed by ${result.signal ?? 'a signal'}`;
  const lines = result.output.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  // The last lines of a failing check are the verdict (e.g. nginx's "test failed"); the first usually say why.
  const detail = lines.find((l) => /emerg|alert|error|fail|invalid|unknown/i.test(l)) ?? lines[lines.length - 1];
  return `${JSON.stringify(command)} ${how}${detail ? `: ${detail.slice(0, 300)}` : ''}`;
}
