// A live, local copy of one service (or a whole namespace, or every namespace), kept current over the watch
// WebSocket of issue 3: its instances, and with `resources` its explicit Services (virtual IPs) too.
//
// Protocol as the client uses it:
// - connect without sinceRevision → SNAPSHOT replaces the view (this is the "list"), then events;
// - every event and BOOKMARK advances `revision`, so a reconnect resumes with sinceRevision=revision
//   and misses nothing (slow-consumer close 4008, network drop, registry restart);
// - ERROR revision_compacted / revision_ahead → drop the resume point and connect again for a fresh
//   SNAPSHOT. The old contents stay visible until it arrives: a stale view beats an empty one;
// - anything else → reconnect with backoff, forever, until close().
// With several replicas (url: [a, b, c]) a connection that fails or closes moves the view to the next replica at
// once, resuming there with sinceRevision: over etcd every replica numbers revisions alike, so the resumed stream
// continues exactly where the lost one stopped. Backoff starts only when every replica failed in a row. A replica
// that has not reached the resume point yet (revision_ahead) is asked again a few times before the view lists again.
import { EventEmitter } from 'node:events';
import WebSocket, { type RawData } from 'ws';
import type { Instance, InstanceStatus, RegistryEvent } from '../schemas/instance.js';
import type { Service, ServiceEvent, WatchResource } from '../schemas/service.js';
import { backoffDelay, type RetryOptions } from './backoff.js';
import type { Endpoints } from './endpoints.js';
import { RollcallClientError, isRetryable } from './errors.js';
import { answerError, authHeaders } from './http.js';
import { compareInstances, createPicker, instanceKey } from './routing.js';
import type { ClientTls } from './tls.js';

export interface WatchOptions {
  /** Default 'default'. */
  namespace?: string;
  /** Every namespace (then `namespace` and `service` must be left out). */
  allNamespaces?: boolean;
  /** Omitted = every service of the namespace. */
  service?: string;
  /** What to follow: ['instances'] by default; ['services', 'instances'] for Services too, ['services'] for them only. */
  resources?: readonly WatchResource[];
  /** How often the registry sends a BOOKMARK on an idle stream (1-300, default 15). */
  bookmarkSeconds?: number;
}

export interface ViewFilter {
  status?: InstanceStatus;
  zone?: string;
  tag?: string;
}

export interface ViewChange {
  /** The view's revision after the change(s). */
  revision: number;
  /** Whether instances changed (or were listed again) since the previous 'change'. */
  instances: boolean;
  /** Whether Services changed (or were listed again) since the previous 'change'. */
  services: boolean;
}

export interface WatchViewConfig {
  endpoints: Endpoints;
  token?: string;
  tls?: ClientTls;
  timeoutMs: number;
  retry: RetryOptions;
  onClosed: (view: WatchView) => void;
}

type WatchMessage =
  | { type: 'SNAPSHOT'; revision: number; items: Instance[]; services?: Service[] }
  | ({ type: RegistryEvent['type'] } & Omit<RegistryEvent, 'type'>)
  | ({ type: ServiceEvent['type'] } & Omit<ServiceEvent, 'type'>)
  | { type: 'BOOKMARK'; revision: number }
  | { type: 'ERROR'; code: string; message: string };

/**
 * 'change': coalesced, at most once per turn of the event loop. 'event': every ADDED/MODIFIED/DELETED the view
 * applies, one by one, in revision order (each revision once, also across reconnects and replicas); a relist
 * (SNAPSHOT) is not an event, only a 'change'.
 */
type ViewEvents = { change: [ViewChange]; event: [RegistryEvent | ServiceEvent]; error: [Error] };

/** Close code the registry uses for a watcher that fell too far behind (issue 3). */
export const SLOW_CONSUMER_CLOSE = 4008;
const MAX_ERROR_BODY = 64 * 1024;
/** How many times a lagging replica may refuse our resume point before the view lists again instead. */
const MAX_AHEAD_REFUSALS = 5;

export class WatchView extends EventEmitter<ViewEvents> {
  /** undefined = every namespace. */
  readonly namespace: string | undefined;
  /** The one service this view follows; undefined = every service. (Named so, to leave `service()` for Services.) */
  readonly serviceName: string | undefined;
  readonly resources: readonly WatchResource[];
  /** Resolves at the first snapshot; rejects when the registry refuses the watch (4xx) or the view is closed first. */
  readonly ready: Promise<void>;

  private readonly config: WatchViewConfig;
  private readonly bookmarkSeconds: number;
  private readonly picker = createPicker();
  /** One picker per service for pick({ service }), so each service's round-robin keeps its own state. */
  private readonly servicePickers = new Map<string, ReturnType<typeof createPicker>>();
  private items = new Map<string, Instance>();
  private serviceItems = new Map<string, Service>();
  private rev = 0;
  /** True once a snapshot was applied: only then is `rev` a point to resume from. */
  private synced = false;
  private isReady = false;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private socket: WebSocket | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** The replica the open (or opening) socket goes to. */
  private replica = '';
  /** The replica `rev` was learnt from; another replica whose cache lags may briefly not have reached it. */
  private revFrom = '';
  /** Replicas that failed in a row since the last message: below their number, the next is tried without delay. */
  private failovers = 0;
  /** Resumes refused as revision_ahead by a replica other than revFrom, in a row. */
  private aheadRefusals = 0;
  private relistNow = false;
  private resumeLater = false;
  private closed = false;
  private changePending = false;
  private pendingKinds = { instances: false, services: false };

  constructor(options: WatchOptions, config: WatchViewConfig) {
    super();
    if (options.allNamespaces && (options.namespace !== undefined || options.service !== undefined)) {
      throw new TypeError('allNamespaces watches every namespace: leave namespace and service out.');
    }
    const resources: WatchResource[] = [...new Set(options.resources ?? (['instances'] as const))];
    if (resources.length === 0 || resources.some((r) => r !== 'instances' && r !== 'services')) {
      throw new TypeError(`resources must list 'instances' and/or 'services', got ${JSON.stringify(options.resources)}.`);
    }
    this.resources = resources;
    this.namespace = options.allNamespaces ? undefined : (options.namespace ?? 'default');
    this.serviceName = options.service;
    this.bookmarkSeconds = options.bookmarkSeconds ?? 15;
    this.config = config;
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // A host that never awaits `ready` must not die of an unhandled rejection when it closes the view early.
    this.ready.catch(() => {});
    this.connect();
  }

  /** The registry revision the view is consistent at (0 before the first snapshot). */
  get revision(): number {
    return this.rev;
  }

  /** The instances in view, sorted by service then id. */
  instances(filter: ViewFilter = {}): Instance[] {
    const out: Instance[] = [];
    for (const i of this.items.values()) {
      if (filter.status !== undefined && i.status !== filter.status) continue;
      if (filter.zone !== undefined && i.zone !== filter.zone) continue;
      if (filter.tag !== undefined && !i.tags.includes(filter.tag)) continue;
      out.push(i);
    }
    return out.sort(compareInstances);
  }

  /**
   * The Services in view (when the view follows `services`), of one namespace or all, sorted by namespace
   * then name.
   */
  services(namespace?: string): Service[] {
    const out: Service[] = [];
    for (const s of this.serviceItems.values()) if (namespace === undefined || s.namespace === namespace) out.push(s);
    return out.sort((a, b) => (a.namespace !== b.namespace ? (a.namespace < b.namespace ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** One Service, or undefined when the view holds none of that name. */
  service(namespace: string, name: string): Service | undefined {
    return this.serviceItems.get(serviceKey(namespace, name));
  }

  /**
   * One routable instance (status up, weight > 0) by smooth weighted round-robin, from `zone` when it
   * has any, otherwise from every zone. undefined when nothing is routable. In a view of many services, say
   * which with `service` (and `namespace` in an all-namespaces view; default: the view's namespace).
   */
  pick(options: { zone?: string; service?: string; namespace?: string } = {}): Instance | undefined {
    if (options.service === undefined) return this.picker.pick(this.items.values(), options.zone);
    const namespace = options.namespace ?? this.namespace;
    const key = serviceKey(namespace ?? '', options.service);
    let picker = this.servicePickers.get(key);
    if (!picker) this.servicePickers.set(key, (picker = createPicker()));
    const pool: Instance[] = [];
    for (const i of this.items.values()) if (i.service === options.service && (namespace === undefined || i.namespace === namespace)) pool.push(i);
    return picker.pick(pool, options.zone);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.idleTimer);
    const ws = this.socket;
    this.socket = undefined;
    if (ws) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000, 'client closed');
        // A registry that never answers the close frame must not keep the host alive.
        setTimeout(() => ws.terminate(), 1000).unref();
      } else {
        ws.terminate();
      }
    }
    if (!this.isReady) this.rejectReady(new RollcallClientError('closed', 'The watch view was closed before its first snapshot.'));
    this.config.onClosed(this);
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    if (this.closed) return;
    const q = new URLSearchParams();
    if (this.namespace !== undefined) q.set('namespace', this.namespace);
    if (this.serviceName !== undefined) q.set('service', this.serviceName);
    // Only sent when it differs from the registry's default, so instance views speak to older registries too.
    if (this.resources.length !== 1 || this.resources[0] !== 'instances') q.set('resources', this.resources.join(','));
    if (this.synced) q.set('sinceRevision', String(this.rev));
    q.set('bookmarkSeconds', String(this.bookmarkSeconds));
    this.replica = this.config.endpoints.current();
    const url = `${this.replica.replace(/^http/, 'ws')}/v1/watch?${q.toString()}`;
    const ws = new WebSocket(url, { headers: authHeaders(this.config.token), handshakeTimeout: this.config.timeoutMs, ...this.config.tls });
    this.socket = ws;
    let lastError: Error | undefined;
    ws.on('open', () => this.armIdle(ws));
    ws.on('message', (data) => this.onMessage(ws, data));
    ws.on('error', (err) => {
      lastError = err;
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString(), lastError));
    ws.on('unexpected-response', (req, res) => {
      // The registry refused the upgrade (400 bad query, 401, 5xx…): read its JSON error, then give up on this socket.
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_ERROR_BODY) chunks.push(c);
      });
      const done = () => {
        req.destroy();
        if (this.socket !== ws) return;
        this.socket = undefined;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        const err = answerError(res.statusCode ?? 0, body, 'GET /v1/watch');
        if (isRetryable(err)) {
          this.report(err);
          this.failOver();
        } else if (this.synced) {
          // Refused while resuming: maybe our resume point is what the registry objects to. List once more
          // without it before giving up; a second refusal then fails the view.
          this.report(err);
          this.synced = false;
          this.scheduleReconnect(0);
        } else {
          this.fail(err);
        }
      };
      res.on('end', done);
      res.on('error', done);
    });
  }

  private onMessage(ws: WebSocket, data: RawData): void {
    if (this.socket !== ws || this.closed) return;
    this.armIdle(ws);
    if (this.failovers > 0 || this.config.endpoints.current() !== this.replica) this.config.endpoints.succeeded(this.replica);
    this.failovers = 0;
    let msg: WatchMessage;
    try {
      msg = JSON.parse(data.toString()) as WatchMessage;
    } catch {
      this.report(new RollcallClientError('bad_response', 'The registry sent a watch message that is not JSON; reconnecting.'));
      ws.terminate();
      return;
    }
    switch (msg.type) {
      case 'SNAPSHOT': {
        this.items = new Map(msg.items.map((i) => [instanceKey(i), i]));
        if (this.resources.includes('services')) this.serviceItems = new Map((msg.services ?? []).map((s) => [serviceKey(s.namespace, s.name), s]));
        this.pendingKinds = { instances: this.resources.includes('instances'), services: this.resources.includes('services') };
        this.rev = msg.revision;
        this.revFrom = this.replica;
        this.synced = true;
        this.attempt = 0;
        this.aheadRefusals = 0;
        if (!this.isReady) {
          this.isReady = true;
          this.resolveReady();
        }
        this.changed();
        return;
      }
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        this.attempt = 0;
        // Events at or below our revision are already applied (overlap on resume): exactly once, never twice.
        if (!this.synced || msg.revision <= this.rev) return;
        if ('service' in msg) {
          const key = serviceKey(msg.service.namespace, msg.service.name);
          if (msg.type === 'DELETED') this.serviceItems.delete(key);
          else this.serviceItems.set(key, msg.service);
          this.pendingKinds.services = true;
        } else {
          const key = instanceKey(msg.instance);
          if (msg.type === 'DELETED') this.items.delete(key);
          else this.items.set(key, msg.instance);
          this.pendingKinds.instances = true;
        }
        this.rev = msg.revision;
        this.revFrom = this.replica;
        this.aheadRefusals = 0;
        if (this.listenerCount('event') > 0) this.emit('event', msg as RegistryEvent | ServiceEvent);
        this.changed();
        return;
      }
      case 'BOOKMARK': {
        this.attempt = 0;
        if (this.synced && msg.revision > this.rev) {
          this.rev = msg.revision;
          this.revFrom = this.replica;
        }
        this.aheadRefusals = 0;
        return;
      }
      case 'ERROR': {
        if (msg.code === 'revision_ahead' && this.replica !== this.revFrom && this.aheadRefusals < MAX_AHEAD_REFUSALS) {
          // Resuming on another replica whose cache has not caught up with the one we left yet: try the same
          // resume point again shortly (the backoff) rather than throwing the view's history away.
          this.aheadRefusals++;
          this.resumeLater = true;
        } else if (msg.code === 'revision_compacted' || msg.code === 'revision_ahead') {
          // Our resume point is useless (history trimmed, or the registry lost its data): list again.
          this.synced = false;
          this.relistNow = true;
        } else {
          this.report(new RollcallClientError(msg.code, msg.message));
        }
        ws.close();
        return;
      }
      default:
        // Unknown message types are ignored, so a newer registry can add some.
        return;
    }
  }

  private onClose(ws: WebSocket, code: number, reason: string, lastError: Error | undefined): void {
    if (this.socket !== ws) return;
    this.socket = undefined;
    clearTimeout(this.idleTimer);
    if (this.closed) return;
    if (this.relistNow) {
      this.relistNow = false;
      this.scheduleReconnect(0);
      return;
    }
    if (this.resumeLater) {
      this.resumeLater = false;
      this.scheduleReconnect();
      return;
    }
    if (code === SLOW_CONSUMER_CLOSE && this.attempt === 0) {
      // We fell behind; resume from our revision right away.
      this.attempt++;
      this.scheduleReconnect(0);
      return;
    }
    const err = lastError
      ? new RollcallClientError('unreachable', `Watch connection to ${this.replica} failed (${describe(lastError)}); reconnecting.`, {
          cause: lastError,
        })
      : new RollcallClientError('disconnected', `Watch connection closed by the registry at ${this.replica} (${code}${reason ? ` ${reason}` : ''}); reconnecting.`);
    this.report(err);
    this.failOver();
  }

  /** The replica failed us: the next one right away while some replica has not been tried in this round, else backoff. */
  private failOver(): void {
    const { endpoints } = this.config;
    endpoints.failed(this.replica);
    if (endpoints.urls.length > 1 && this.failovers < endpoints.urls.length - 1) {
      this.failovers++;
      this.scheduleReconnect(0);
      return;
    }
    this.failovers = 0;
    this.scheduleReconnect();
  }

  private scheduleReconnect(delay = backoffDelay(this.attempt++, this.config.retry)): void {
    if (this.closed) return;
    clearTimeout(this.reconnectTimer);
    // Not unref'd: a live view is a reason to stay alive until close().
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Bookmarks arrive every bookmarkSeconds on an idle stream; silence far beyond that means a dead connection. */
  private armIdle(ws: WebSocket): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => ws.terminate(), (this.bookmarkSeconds * 2 + 5) * 1000);
    this.idleTimer.unref();
  }

  /** Coalesces a burst of events (a resume replay, say) into one 'change' per turn of the event loop. */
  private changed(): void {
    if (this.changePending) return;
    this.changePending = true;
    setImmediate(() => {
      this.changePending = false;
      const kinds = this.pendingKinds;
      this.pendingKinds = { instances: false, services: false };
      if (!this.closed) this.emit('change', { revision: this.rev, ...kinds });
    });
  }

  private report(err: Error): void {
    // EventEmitter throws an 'error' nobody listens to; the background must never throw into the host.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private fail(err: RollcallClientError): void {
    this.report(err);
    if (!this.isReady) this.rejectReady(err);
    this.isReady = true;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.idleTimer);
    this.config.onClosed(this);
  }
}

function serviceKey(namespace: string, name: string): string {
  return `${namespace}\u0000${name}`;
}

function describe(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}
