import type { Clock } from './clock.js';
import type { Registry } from './registry.js';

export interface LeaseKeeperOptions {
  /**
   * Measures how late a sweep runs: monotonic (performance.now) by default, so a wall-clock step is never
   * mistaken for a stall, and tests that move the registry's clock by hand never look like one.
   */
  monotonic?: Clock;
  /** How often due leases are swept. Expiry lands at most this long after a deadline. */
  sweepMs: number;
  /** How often heartbeat times are written to SQLite (they cost no fsync of their own). */
  heartbeatFlushMs: number;
  /** A sweep running more than this after it was due means the process stalled (default 1000 ms). */
  stallToleranceMs?: number;
  /** The process did not run for ms; leases were extended by as much. */
  onStall?: (ms: number) => void;
  onError: (err: unknown) => void;
}

export const DEFAULT_STALL_TOLERANCE_MS = 1000;

const monotonicClock: Clock = { now: () => performance.now() };

export interface SweepResult {
  /** How long the sweep ran late beyond its due time, when that counted as a stall (else 0). */
  stalledMs: number;
  expired: number;
}

/**
 * One sweep tick, knowing when it was due. A tick that runs late by more than the tolerance means the
 * process did not run (GC, CPU starvation, SIGSTOP): nobody could renew in that time, so it is discounted
 * from every lease (registry.pauseLeases), and this tick expires nothing. Timers run before the poll phase
 * of the event loop, so at this point the heartbeats that waited in the sockets during the stall are not
 * read yet; the next tick comes after they were.
 */
export function createSweeper(
  registry: Pick<Registry, 'expireDue' | 'pauseLeases'>,
  clock: Clock,
  options: { sweepMs: number; stallToleranceMs?: number },
) {
  const tolerance = options.stallToleranceMs ?? DEFAULT_STALL_TOLERANCE_MS;
  let due = clock.now() + options.sweepMs;
  return (): SweepResult => {
    const now = clock.now();
    const late = now - due;
    due = now + options.sweepMs;
    if (late > tolerance) {
      registry.pauseLeases(late);
      return { stalledMs: late, expired: 0 };
    }
    return { stalledMs: 0, expired: registry.expireDue() };
  };
}

/** Runs the registry's timed duties: expiring leases and saving heartbeats lazily. */
export function startLeaseKeeper(registry: Registry, options: LeaseKeeperOptions): () => void {
  const every = (ms: number, duty: () => unknown) => {
    const timer = setInterval(() => {
      try {
        duty();
      } catch (err) {
        options.onError(err);
      }
    }, ms);
    timer.unref();
    return timer;
  };
  const sweepOnce = createSweeper(registry, options.monotonic ?? monotonicClock, options);
  const sweep = every(options.sweepMs, () => {
    const { stalledMs } = sweepOnce();
    if (stalledMs > 0) options.onStall?.(stalledMs);
  });
  const flush = every(options.heartbeatFlushMs, () => registry.flushHeartbeats());
  return () => {
    clearInterval(sweep);
    clearInterval(flush);
  };
}
