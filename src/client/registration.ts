// A registration that looks after itself: heartbeats about every ttl/3 (over the client's shared lease stream,
// else over HTTP), registers again when the registry forgot it (heartbeat 404 / instance_not_found), retries with backoff while the registry is unreachable, and
// re-applies the wanted state (status, weight, …) once it is back. Nothing here throws into the host
// from a timer: background failures become 'error' events.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Instance, InstanceStatus, PatchInput, RegisterInput } from '../schemas/instance.js';
import type { Api } from './api.js';
import { backoffDelay, jitter, type RetryOptions } from './backoff.js';
import { RollcallClientError, isNotFound, isRetryable, toError } from './errors.js';
import { startHealthCheck, type HealthCheckOptions, type HealthFlip, type HealthProbe } from './health.js';
import { StreamUnavailable, type LeaseStream } from './lease-stream.js';

export interface RegisterOptions {
  /** Default 'default'. */
  namespace?: string;
  service: string;
  /** Default: service-host-pid-random, unique per registration. */
  id?: string;
  address: string;
  port: number;
  /** Default 30 (the registry's default). */
  ttlSeconds?: number;
  status?: InstanceStatus;
  weight?: number;
  zone?: string | null;
  tags?: string[];
  metadata?: Record<string, string>;
}

export interface RegistrationConfig {
  api: Api;
  /** The client's shared lease stream; without it (or while it is unavailable) heartbeats go over HTTP. */
  leases?: LeaseStream;
  retry: RetryOptions;
  onStopped: (r: Registration) => void;
}

type RegistrationEvents = { registered: [Instance]; error: [Error]; deregistered: []; health: [HealthFlip] };

const DEFAULT_TTL_SECONDS = 30;

export function defaultInstanceId(service: string): string {
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 60) || 'host';
  const rand = Math.random().toString(36).slice(2, 8);
  return `${service}-${host}-${process.pid}-${rand}`;
}

export class Registration extends EventEmitter<RegistrationEvents> {
  readonly namespace: string;
  readonly service: string;
  readonly id: string;

  private readonly config: RegistrationConfig;
  /** What we want the registry to hold; a (re-)registration sends exactly this. */
  private desired: RegisterInput;
  /** The instance as the registry last answered it. */
  private last: Instance | undefined;
  private isRegistered = false;
  /** The registry may hold an older state than `desired` (a PATCH did not get through). */
  private dirty = false;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private healthChecks = new Set<{ stop(): void }>();
  /** Every call to the registry runs through this chain, so a heartbeat never races a PATCH or the DELETE. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: RegisterOptions, config: RegistrationConfig) {
    super();
    this.namespace = options.namespace ?? 'default';
    this.service = options.service;
    this.id = options.id ?? defaultInstanceId(options.service);
    this.config = config;
    const desired: RegisterInput = { address: options.address, port: options.port };
    if (options.ttlSeconds !== undefined) desired.ttlSeconds = options.ttlSeconds;
    if (options.status !== undefined) desired.status = options.status;
    if (options.weight !== undefined) desired.weight = options.weight;
    if (options.zone !== undefined) desired.zone = options.zone;
    if (options.tags !== undefined) desired.tags = [...options.tags];
    if (options.metadata !== undefined) desired.metadata = { ...options.metadata };
    this.desired = desired;
  }

  /** True while the registry is known to hold this instance (as of the last answer). */
  get registered(): boolean {
    return this.isRegistered;
  }

  /** The instance as the registry last answered it; undefined until the first success. */
  get instance(): Instance | undefined {
    return this.last;
  }

  /** First attempt, made by client.register(): rejects only when the registry refuses (4xx). */
  async start(): Promise<void> {
    await this.serial(async () => {
      try {
        await this.put();
      } catch (err) {
        if (!isRetryable(err)) {
          this.stop();
          throw err;
        }
        this.report(err);
        this.schedule(backoffDelay(this.attempt++, this.config.retry));
      }
    });
  }

  setStatus(status: InstanceStatus): Promise<void> {
    return this.update({ status });
  }

  /**
   * Changes status, weight, zone, tags, metadata or ttlSeconds. Rejects when the registry refuses the
   * change (4xx, the wanted state is then left as it was); when the registry is unreachable it resolves
   * and the change is applied in the background once it is back.
   */
  update(patch: PatchInput): Promise<void> {
    return this.serial(async () => {
      if (this.stopped) throw new RollcallClientError('closed', `Registration ${this.id} was deregistered or its client closed.`);
      const before = this.desired;
      this.desired = { ...before, ...patch };
      if (this.isRegistered && !this.dirty) {
        try {
          this.last = await this.config.api.patchInstance(this.namespace, this.service, this.id, patch);
          return;
        } catch (err) {
          if (isRetryable(err)) {
            // Retry soon, not at the next heartbeat: with a long TTL that could be minutes of a stale status.
            this.dirty = true;
            this.report(err);
            this.schedule(backoffDelay(this.attempt++, this.config.retry));
            return;
          }
          if (!isNotFound(err)) {
            this.desired = before;
            throw err;
          }
          this.isRegistered = false;
        }
      }
      // Not registered, forgotten (404), or behind on an earlier change: send the whole wanted state now
      // rather than at the end of a backoff.
      clearTimeout(this.timer);
      try {
        await this.put();
      } catch (err) {
        if (isRetryable(err)) {
          this.report(err);
          this.schedule(backoffDelay(this.attempt++, this.config.retry));
          return;
        }
        this.desired = before;
        this.schedule(backoffDelay(this.attempt++, this.config.retry));
        throw err;
      }
    });
  }

  /**
   * Keeps probing `probe` every intervalMs: after `fall` consecutive failures (a falsy result, a throw or a
   * probe slower than timeoutMs) an `up` instance goes `down`; after `rise` consecutive successes an
   * instance that this check took down goes back `up`. States it did not set (starting, draining, a
   * person's down) are left alone. Each flip is one PATCH and one 'health' event. Stops with the
   * registration (deregister, stop, client.close) or with the returned stop().
   */
  healthCheck(probe: HealthProbe, options: HealthCheckOptions = {}): { stop(): void } {
    if (this.stopped) throw new RollcallClientError('closed', `Registration ${this.id} was deregistered or its client closed.`);
    const target = {
      current: async () => {
        try {
          return await this.config.api.getInstance(this.namespace, this.service, this.id);
        } catch {
          // Unreachable or forgotten: decide on the last known state; the wanted state is re-sent later.
          return this.last;
        }
      },
      update: (patch: PatchInput) => this.update(patch),
      wantedMetadata: () => ({ ...this.desired.metadata }),
    };
    const check = startHealthCheck(target, probe, options, (flip) => {
      if (this.listenerCount('health') > 0) this.emit('health', flip);
    });
    const handle = {
      stop: () => {
        check.stop();
        this.healthChecks.delete(handle);
      },
    };
    this.healthChecks.add(handle);
    return handle;
  }

  /** Stops heartbeats and removes the instance. An instance the registry no longer knows counts as removed. */
  async deregister(): Promise<void> {
    this.stop();
    await this.chain.catch(() => {});
    try {
      await this.config.api.deleteInstance(this.namespace, this.service, this.id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.isRegistered = false;
    this.emit('deregistered');
  }

  /** Stops every timer without telling the registry (the lease then runs out). Used by client.close(). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const check of [...this.healthChecks]) check.stop();
    this.config.onStopped(this);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private async put(): Promise<void> {
    const { instance } = await this.config.api.putInstance(this.namespace, this.service, this.id, this.desired);
    this.last = instance;
    this.isRegistered = true;
    this.dirty = false;
    this.attempt = 0;
    this.schedule(this.heartbeatInterval());
    this.emit('registered', instance);
  }

  /** One background step: register (again) when needed, else heartbeat. Never throws. */
  private async tick(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      if (!this.isRegistered || this.dirty) {
        await this.put();
        return;
      }
      try {
        this.last = await this.renewLease();
        this.attempt = 0;
        this.schedule(this.heartbeatInterval());
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // The registry lost or expired us (restart with an empty data dir, a long partition): register again at once.
        this.isRegistered = false;
        await this.put();
      }
    } catch (err) {
      if (this.stopped) return;
      this.report(err);
      // Keep retrying, but never less often than the heartbeat cadence while we still hold a lease.
      const delay = backoffDelay(this.attempt++, this.config.retry);
      this.schedule(this.isRegistered ? Math.min(delay, this.heartbeatInterval()) : delay);
    }
  }

  /** One heartbeat: over the shared lease stream, or over HTTP when the stream cannot carry it. */
  private async renewLease(): Promise<Instance> {
    const leases = this.config.leases;
    if (leases !== undefined && this.last !== undefined) {
      try {
        const { ttlSeconds, expiresAt } = await leases.renew(this.namespace, this.service, this.id);
        // The stream acknowledges the lease only; the rest of the registration is as last answered.
        return { ...this.last, ttlSeconds, expiresAt };
      } catch (err) {
        // An answer from the registry (instance_not_found above all) is the caller's to handle, as over HTTP.
        if (!(err instanceof StreamUnavailable)) throw err;
      }
    }
    return this.config.api.heartbeat(this.namespace, this.service, this.id);
  }

  private heartbeatInterval(): number {
    const ttl = this.desired.ttlSeconds ?? this.last?.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    return Math.max(50, jitter((ttl * 1000) / 3));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.serial(() => this.tick());
    }, ms);
    // The host's own work (a server, a child process) keeps it alive; a registration alone should not.
    this.timer.unref();
  }

  private report(err: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', toError(err));
  }
}
