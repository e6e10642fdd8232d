// The --watch loop: every change of the source schedules a render through the debouncer; renders never overlap,
// and changes that arrive while one is being applied cause exactly one more.
import { createDebouncer, realTimers, type Timers } from './debounce.js';

export interface FollowSource {
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

/** Several sources as one: a change of any of them is a change. */
export function mergeSources(...sources: FollowSource[]): FollowSource {
  return {
    on(event, listener) {
      for (const s of sources) s.on(event, listener);
      return this;
    },
    off(event, listener) {
      for (const s of sources) s.off(event, listener);
      return this;
    },
  };
}

/** T is what a render produces: config text for the generators, a desired state for `rollcall proxy`. */
export interface FollowOptions<T = string> {
  source: FollowSource;
  /** Renders the current state of the source (may wait, e.g. for name lookups). */
  render: () => T | Promise<T>;
  /** Puts a rendered config in place (file + check + reload, or stdout). */
  apply: (rendered: T) => Promise<void>;
  debounceMs: number;
  maxDelayMs: number;
  /** A render or apply that threw; following continues with the next change. */
  onError: (err: unknown) => void;
  timers?: Timers;
}

export interface Follower {
  /** Resolves when no render is running and none is scheduled. */
  idle(): Promise<void>;
  /** Stops following; resolves after a render in progress has finished, so a file is never left half-handled. */
  stop(): Promise<void>;
}

export function followSource<T = string>(options: FollowOptions<T>): Follower {
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const idleWaiters: (() => void)[] = [];

  const settleIdle = () => {
    if (running || debouncer.pending) return;
    for (const resolve of idleWaiters.splice(0)) resolve();
  };

  const renderNow = (): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        await options.apply(await options.render());
      } catch (err) {
        options.onError(err);
      }
    })().finally(() => {
      running = null;
      if (again && !stopped) {
        again = false;
        renderNow();
      } else settleIdle();
    });
  };

  const debouncer = createDebouncer(renderNow, { quietMs: options.debounceMs, maxDelayMs: options.maxDelayMs }, options.timers ?? realTimers);
  const onChange = () => {
    if (!stopped) debouncer.trigger();
  };
  options.source.on('change', onChange);
  // The first render happens at once: the file should reflect the registry as soon as the watcher starts.
  renderNow();

  return {
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        settleIdle();
      });
    },
    async stop() {
      stopped = true;
      options.source.off('change', onChange);
      debouncer.cancel();
      while (running) await running;
      for (const resolve of idleWaiters.splice(0)) resolve();
    },
  };
}
