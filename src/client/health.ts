// Continuous health checking on the node: probe every interval, flip up → down after `fall` consecutive
// failures and down → up after `rise` consecutive successes (HAProxy's rise/fall, Consul's
// FailuresBeforeCritical / SuccessBeforePassing). One flip is one PATCH, so one event, never one per probe.
//
// The checker only ever moves a state it owns: it takes an instance from `up` to `down`, and brings back to
// `up` only an instance that it itself took down. `starting`, `draining`, and a `down` that a person set,
// stay as they are.
import type { Instance, InstanceStatus, PatchInput } from '../schemas/instance.js';

export interface HealthCheckOptions {
  /** Time between the end of one probe and the start of the next (default 5000). */
  intervalMs?: number;
  /** A probe that has not settled by then counts as a failure (default 1000). */
  timeoutMs?: number;
  /** Consecutive successes that bring a sick instance back (default 2). */
  rise?: number;
  /** Consecutive failures that take a healthy instance out (default 3). */
  fall?: number;
}

/** What one probe found. `detail` says why, for logs and the instance's metadata. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** A probe: truthy (or {ok: true}) is healthy; falsy, {ok: false} or a throw is not. */
export type HealthProbe = () => unknown;

export interface HealthFlip {
  healthy: boolean;
  /** A sentence for a person: `health check failed 3 times: HTTP 500 from /health`. */
  reason: string;
  /** The status the instance was moved to, or undefined when the checker left it alone (not its state). */
  applied?: InstanceStatus;
}

/** Metadata keys the checker writes on each flip, so `rollcall get` and dashboards show why. */
export const HEALTH_METADATA = { result: 'rollcall.health', at: 'rollcall.health-at' } as const;

export const HEALTH_DEFAULTS = { intervalMs: 5000, timeoutMs: 1000, rise: 2, fall: 3 } as const;

/** Counts consecutive results and says when the healthy/sick verdict changes. Pure. */
export function createFlipCounter(rise: number, fall: number, initiallyHealthy = true) {
  let healthy = initiallyHealthy;
  let streak = 0;
  return {
    get healthy() {
      return healthy;
    },
    /** Records one probe; returns the new verdict when this result flips it, else undefined. */
    record(ok: boolean): boolean | undefined {
      if (ok === healthy) {
        streak = 0;
        return undefined;
      }
      streak += 1;
      if (streak < (healthy ? fall : rise)) return undefined;
      healthy = ok;
      streak = 0;
      return healthy;
    },
  };
}

/** What the checker needs of a registration: its current state and a way to change it. */
export interface HealthTarget {
  /** The instance as the registry holds it now (fresh when reachable, else the last known). */
  current(): Promise<Instance | undefined>;
  update(patch: PatchInput): Promise<void>;
  /** The metadata the owner wants, so a flip adds its keys without dropping the owner's. */
  wantedMetadata(): Record<string, string>;
}

function validate(options: HealthCheckOptions) {
  const o = { ...HEALTH_DEFAULTS, ...options };
  for (const key of ['intervalMs', 'timeoutMs'] as const) {
    if (!Number.isFinite(o[key]) || o[key] <= 0) throw new RangeError(`healthCheck: ${key} must be a positive number of milliseconds`);
  }
  for (const key of ['rise', 'fall'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`healthCheck: ${key} must be an integer of at least 1`);
  }
  return o;
}

async function runProbe(probe: HealthProbe, timeoutMs: number): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    const attempt = (async (): Promise<ProbeResult> => {
      const value = await probe();
      if (value !== null && typeof value === 'object' && 'ok' in value) {
        const r = value as { ok: unknown; detail?: unknown };
        return { ok: Boolean(r.ok), detail: typeof r.detail === 'string' ? r.detail : r.ok ? 'passing' : 'failing' };
      }
      return { ok: Boolean(value), detail: value ? 'passing' : 'the check returned false' };
    })();
    return await Promise.race([attempt, timeout]);
  } catch (err) {
    return { ok: false, detail: `the check threw: ${(err as Error)?.message ?? String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Probes until stopped. `onFlip` hears every verdict change with what was done about it; a failed PATCH
 * (registry unreachable) is left to the registration, which applies its wanted state when the registry is
 * back.
 */
export function startHealthCheck(
  target: HealthTarget,
  probe: HealthProbe,
  options: HealthCheckOptions,
  onFlip: (flip: HealthFlip) => void,
  now: () => number = Date.now,
): { stop(): void } {
  const o = validate(options);
  const counter = createFlipCounter(o.rise, o.fall);
  // True while the instance is down because this checker put it there.
  let ownsDown = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  async function flip(healthy: boolean, last: ProbeResult): Promise<HealthFlip> {
    const reason = healthy
      ? `health check passed ${o.rise} time${o.rise === 1 ? '' : 's'}: ${last.detail}`
      : `health check failed ${o.fall} time${o.fall === 1 ? '' : 's'}: ${last.detail}`;
    const instance = await target.current();
    const status = instance?.status;
    const wanted: InstanceStatus | undefined = healthy ? (ownsDown && status === 'down' ? 'up' : undefined) : status === 'up' ? 'down' : undefined;
    if (healthy) ownsDown = false;
    if (wanted === undefined) return { healthy, reason };
    if (!healthy) ownsDown = true;
    const metadata = {
      ...target.wantedMetadata(),
      [HEALTH_METADATA.result]: `${healthy ? 'passing' : 'failing'}: ${last.detail}`.slice(0, 1024),
      [HEALTH_METADATA.at]: new Date(now()).toISOString(),
    };
    await target.update({ status: wanted, metadata });
    return { healthy, reason, applied: wanted };
  }

  async function loop(): Promise<void> {
    if (stopped) return;
    const result = await runProbe(probe, o.timeoutMs);
    if (stopped) return;
    const verdict = counter.record(result.ok);
    if (verdict !== undefined) {
      try {
        onFlip(await flip(verdict, result));
      } catch (err) {
        // The registry refused the change (4xx): say so, keep probing; the next flip tries again.
        onFlip({ healthy: verdict, reason: `could not apply the health verdict: ${(err as Error).message}` });
      }
    }
    if (stopped) return;
    timer = setTimeout(() => void loop(), o.intervalMs);
    timer.unref();
  }

  timer = setTimeout(() => void loop(), o.intervalMs);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
