// Puts a rendered ruleset in force: one `nft -f -` transaction that (re)creates rollcall's table whole. The kernel
// applies a transaction all or nothing, so a refused ruleset leaves the previous one in force, and readers never
// see a half-built table. Nothing is sent when the ruleset equals the last one applied.
import { TABLE_FAMILY, TABLE_NAME } from './render.js';
import type { NftRunner } from './nft.js';

export type ApplyOutcome = { status: 'unchanged' } | { status: 'applied'; ms: number } | { status: 'refused'; ms: number; reason: string };

/** `add` first so that `delete` never fails on a missing table (first start, or after a cleanup). */
export function transaction(ruleset: string): string {
  return `add table ${TABLE_FAMILY} ${TABLE_NAME}\ndelete table ${TABLE_FAMILY} ${TABLE_NAME}\n${ruleset}`;
}

export interface NftApplier {
  apply(ruleset: string): Promise<ApplyOutcome>;
  /** Deletes the table (SIGTERM): traffic to virtual IPs stops being translated. Idempotent. */
  remove(): Promise<void>;
  /** The ruleset the kernel accepted last, if any. */
  readonly current: string | undefined;
}

export function createNftApplier(run: NftRunner): NftApplier {
  let current: string | undefined;
  return {
    get current() {
      return current;
    },
    async apply(ruleset) {
      if (ruleset === current) return { status: 'unchanged' };
      const started = performance.now();
      const result = await run(['-f', '-'], transaction(ruleset));
      const ms = performance.now() - started;
      if (result.code !== 0) return { status: 'refused', ms, reason: firstLines(result.stderr) || `nft exited with ${result.code}` };
      current = ruleset;
      return { status: 'applied', ms };
    },
    async remove() {
      // The same add-then-delete pair: removing a table that is not there is not an error.
      const result = await run(['-f', '-'], `add table ${TABLE_FAMILY} ${TABLE_NAME}\ndelete table ${TABLE_FAMILY} ${TABLE_NAME}\n`);
      if (result.code !== 0) throw new Error(`could not remove table ${TABLE_FAMILY} ${TABLE_NAME}: ${firstLines(result.stderr)}`);
      current = undefined;
    },
  };
}

/**
 * Why --mode nftables cannot run here, in one line, or undefined when it can: nft missing, or no privilege
 * (not root and no CAP_NET_ADMIN: netlink answers "Operation not permitted").
 */
export async function nftUnavailable(run: NftRunner): Promise<string | undefined> {
  const result = await run(['list', 'tables']);
  if (result.spawnError?.code === 'ENOENT') return '--mode nftables needs the nft command (Debian/Ubuntu: apt-get install nftables); or use --mode userspace';
  if (result.spawnError) return `--mode nftables could not run nft: ${result.spawnError.message}`;
  if (result.code !== 0) {
    if (/not permitted|permission denied/i.test(result.stderr)) {
      return '--mode nftables needs root or CAP_NET_ADMIN (nft: Operation not permitted); run it privileged or use --mode userspace';
    }
    return `--mode nftables: nft list tables failed: ${firstLines(result.stderr)}`;
  }
  return undefined;
}

function firstLines(text: string, max = 3): string {
  return text.split('\n').filter(Boolean).slice(0, max).join(' | ');
}
