import type { Registry } from './registry.js';

export interface LeaseKeeperOptions {
  /** How often due leases are swept. Expiry lands at most this long after a deadline. */
  sweepMs: number;
  /** How often heartbeat times are written to SQLite (they cost no fsync of their own). */
  heartbeatFlushMs: number;
  onError: (err: unknown) => void;
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
  const sweep = every(options.sweepMs, () => registry.expireDue());
  const flush = every(options.heartbeatFlushMs, () => registry.flushHeartbeats());
  return () => {
    clearInterval(sweep);
    clearInterval(flush);
    registry.flushHeartbeats();
    registry.flushNow();
  };
}
