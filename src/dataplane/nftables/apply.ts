// Puts a rendered ruleset in force, always as one `nft -f -` transaction: the first time it (re)creates rollcall's
// table whole, afterwards it sends only what changed. The kernel applies a transaction all or nothing, so a
// refused ruleset leaves the previous one in force, and packets never see a half-built table. Nothing is sent when
// the ruleset equals the last one applied.
import { renderDelta, TABLE_FAMILY, TABLE_NAME, type NftModel, type RenderResult } from './render.js';
import type { NftRunner } from './nft.js';

export type ApplyOutcome =
  | { status: 'unchanged' }
  | { status: 'applied'; ms: number; kind: 'full' | 'delta'; deltaRefused?: string }
  | { status: 'refused'; ms: number; reason: string };

/** `add` first so that `delete` never fails on a missing table (first start, or after a cleanup). */
export function transaction(ruleset: string): string {
  return `add table ${TABLE_FAMILY} ${TABLE_NAME}\ndelete table ${TABLE_FAMILY} ${TABLE_NAME}\n${ruleset}`;
}

export interface NftApplier {
  apply(rendered: Pick<RenderResult, 'ruleset' | 'model'>): Promise<ApplyOutcome>;
  /** Deletes the table (SIGTERM): traffic to virtual IPs stops being translated. Idempotent. */
  remove(): Promise<void>;
  /** The ruleset the kernel accepted last, if any. */
  readonly current: string | undefined;
}

/**
 * The first apply re-creates the table whole; later ones send only the delta (renderDelta). A refused delta (the
 * table was changed or removed behind our back, say) falls back to a whole re-create in the same call; only when
 * that is refused too does the previous ruleset stay in force.
 */
export function createNftApplier(run: NftRunner): NftApplier {
  let current: { ruleset: string; model: NftModel } | undefined;
  const full = async (ruleset: string) => run(['-f', '-'], transaction(ruleset));
  return {
    get current() {
      return current?.ruleset;
    },
    async apply({ ruleset, model }) {
      if (ruleset === current?.ruleset) return { status: 'unchanged' };
      const started = performance.now();
      let deltaRefused: string | undefined;
      if (current) {
        const delta = renderDelta(current.model, model);
        if (delta !== '') {
          const result = await run(['-f', '-'], delta);
          if (result.code === 0) {
            current = { ruleset, model };
            return { status: 'applied', ms: performance.now() - started, kind: 'delta' };
          }
          deltaRefused = firstLines(result.stderr) || `nft exited with ${result.code}`;
        }
      }
      const result = await full(ruleset);
      const ms = performance.now() - started;
      if (result.code !== 0) return { status: 'refused', ms, reason: firstLines(result.stderr) || `nft exited with ${result.code}` };
      current = { ruleset, model };
      return deltaRefused === undefined ? { status: 'applied', ms, kind: 'full' } : { status: 'applied', ms, kind: 'full', deltaRefused };
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
