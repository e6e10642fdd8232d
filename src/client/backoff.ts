// Exponential backoff with jitter, so a fleet that lost the registry at the same moment
// does not come back at the same moment.
export interface RetryOptions {
  /** First delay in ms (default 250). */
  minMs?: number;
  /** Upper bound in ms (default 10000). */
  maxMs?: number;
}

export const DEFAULT_RETRY = { minMs: 250, maxMs: 10_000 } as const;

/** Delay before retry number `attempt` (0-based): uniformly random in [cap/2, cap], cap = min(max, min * 2^attempt). */
export function backoffDelay(attempt: number, options: RetryOptions = {}): number {
  const min = options.minMs ?? DEFAULT_RETRY.minMs;
  const max = Math.max(min, options.maxMs ?? DEFAULT_RETRY.maxMs);
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

/** `ms` spread by ±`fraction`, so periodic work of many processes does not line up. */
export function jitter(ms: number, fraction = 0.15): number {
  return Math.round(ms * (1 - fraction + Math.random() * 2 * fraction));
}
