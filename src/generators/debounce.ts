// Coalesces bursts of registry changes into few renders: fire after `quietMs` without a new trigger, but never
// later than `maxDelayMs` after the first trigger of a burst, so a constant stream of changes still renders.

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface Debouncer {
  trigger(): void;
  /** Drops a pending fire. */
  cancel(): void;
  readonly pending: boolean;
}

export function createDebouncer(fire: () => void, options: { quietMs: number; maxDelayMs: number }, timers: Timers = realTimers): Debouncer {
  let handle: unknown;
  let burstStart: number | null = null;
  const cancel = () => {
    if (handle !== undefined) timers.clearTimeout(handle);
    handle = undefined;
    burstStart = null;
  };
  return {
    trigger() {
      const now = timers.now();
      if (burstStart === null) burstStart = now;
      const due = Math.min(now + options.quietMs, burstStart + Math.max(options.maxDelayMs, options.quietMs));
      if (handle !== undefined) timers.clearTimeout(handle);
      handle = timers.setTimeout(() => {
        handle = undefined;
        burstStart = null;
        fire();
      }, Math.max(0, due - now));
    },
    cancel,
    get pending() {
      return handle !== undefined;
    },
  };
}
