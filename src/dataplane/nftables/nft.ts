// Runs the `nft` binary with a script on stdin. The one place the nftables data plane touches the system, so
// tests and the benchmark can count or replace it.
import { spawn } from 'node:child_process';

export interface NftResult {
  /** Exit code; null when nft could not be started (ENOENT) or was killed. */
  code: number | null;
  /** stderr (capped): what nft says about a refused ruleset. */
  stderr: string;
  stdout: string;
  /** Set when nft could not be started at all. */
  spawnError?: NodeJS.ErrnoException;
}

export type NftRunner = (args: string[], input?: string) => Promise<NftResult>;

const CAP = 64 * 1024;

export function createNftRunner(binary = 'nft'): NftRunner {
  return (args, input) =>
    new Promise((resolve) => {
      const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => {
        if (stdout.length < CAP * 64) stdout += c.toString('utf8');
      });
      child.stderr.on('data', (c: Buffer) => {
        if (stderr.length < CAP) stderr += c.toString('utf8');
      });
      child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: null, stderr: err.message, stdout, spawnError: err }));
      child.on('close', (code) => resolve({ code, stderr: stderr.trim(), stdout }));
      // nft may exit before reading a refused script; a broken pipe here is not our error to report.
      child.stdin.on('error', () => {});
      child.stdin.end(input ?? '');
    });
}
