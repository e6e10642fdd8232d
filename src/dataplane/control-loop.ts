// The one control loop of `rollcall proxy`: a watch view of Services and instances feeds computeDesiredState on
// every (debounced) change, and the result goes to one data plane. The view is the client library's: it resumes,
// relists and backs off on its own, and keeps its last contents while the registry is away, so the data plane
// keeps serving the last state it was given; nothing on the data path ever asks the registry.
import type { Instance } from '../schemas/instance.js';
import { followSource, type Follower } from '../generators/follow.js';
import type { Timers } from '../generators/debounce.js';
import { computeDesiredState, type DesiredState, type ServiceRecord } from './desired-state.js';
import type { DataPlane, Log } from './data-plane.js';
import type { ProxyMetrics } from './metrics.js';

/** A live catalog: the client's watch view with resources services + instances fits this shape. */
export interface CatalogSource {
  services(): ServiceRecord[];
  instances(): Instance[];
  readonly revision: number;
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

export interface ControlLoopOptions {
  source: CatalogSource;
  dataPlane: DataPlane;
  /** Keep only these namespaces (undefined = all the view holds). */
  namespace?: string | undefined;
  zone?: string | undefined;
  debounceMs: number;
  maxDelayMs: number;
  metrics: ProxyMetrics;
  log: Log;
  timers?: Timers;
  /** Called after each pass with the state handed to the data plane (tests, the benchmark). */
  onPass?: (state: DesiredState, outcome: 'applied' | 'unchanged' | 'refused' | 'failed', revision: number) => void;
}

export interface ControlLoop {
  /** Resolves when no pass is running or scheduled. */
  idle(): Promise<void>;
  /** Stops following changes; the data plane keeps its state until its own close(). */
  stop(): Promise<void>;
}

export function startControlLoop(options: ControlLoopOptions): ControlLoop {
  const { source, dataPlane, metrics, log } = options;
  const follower: Follower = followSource<{ state: DesiredState; revision: number }>({
    source,
    render: () => {
      const inNamespace = <T extends { namespace: string }>(items: T[]) =>
        options.namespace === undefined ? items : items.filter((i) => i.namespace === options.namespace);
      return {
        state: computeDesiredState(inNamespace(source.services()), inNamespace(source.instances()), { zone: options.zone }),
        revision: source.revision,
      };
    },
    apply: async ({ state, revision }) => {
      const started = performance.now();
      let outcome: 'applied' | 'unchanged' | 'refused' | 'failed';
      try {
        outcome = await dataPlane.apply(state);
      } catch (err) {
        outcome = 'failed';
        log(`data plane update at revision ${revision} failed: ${err instanceof Error ? err.message : String(err)}; the previous state stays in force`);
      }
      metrics.ruleApplies.inc({ result: outcome });
      if (outcome === 'applied') {
        metrics.ruleApplyDuration.observe((performance.now() - started) / 1000);
        metrics.setBackends(state);
        metrics.viewRevision.set(revision);
      }
      if (outcome === 'unchanged') metrics.viewRevision.set(revision);
      options.onPass?.(state, outcome, revision);
    },
    debounceMs: options.debounceMs,
    maxDelayMs: options.maxDelayMs,
    onError: (err) => log(`control loop: ${err instanceof Error ? err.message : String(err)}`),
    ...(options.timers ? { timers: options.timers } : {}),
  });
  return { idle: () => follower.idle(), stop: () => follower.stop() };
}
