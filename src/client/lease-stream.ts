// One lease stream (GET /v1/leases, issue 14) per client, shared by all its registrations: renewals due in the same
// turn of the event loop go out as one RENEW message, and each waits for its own result in the RENEWED answer.
//
// When the stream cannot carry a renewal (the registry refused the upgrade: an older registry answers 404, a proxy
// 426; the socket failed, closed, or an answer did not come in time) the renewal rejects with StreamUnavailable
// and the registration renews over HTTP instead (PUT …/heartbeat). The stream is tried again on a later renewal,
// after a backoff that grows while it keeps failing, so an older registry costs one refused upgrade per backoff.
import WebSocket, { type RawData } from 'ws';
import { backoffDelay, type RetryOptions } from './backoff.js';
import { RollcallClientError } from './errors.js';
import { authHeaders } from './http.js';
import type { ClientTls } from './tls.js';

export interface LeaseStreamConfig {
  baseUrl: string;
  token?: string;
  tls?: ClientTls;
  /** Bound on the upgrade and on each answer. */
  timeoutMs: number;
  retry: RetryOptions;
}

/** What the registry answers for a renewed instance. */
export interface Renewal {
  ttlSeconds: number;
  expiresAt: string;
}

/** The stream could not carry this renewal: renew over HTTP. Never surfaces to the host. */
export class StreamUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamUnavailable';
  }
}

// The wire format, as the registry documents it (schema LeaseStreamMessage in openapi.yaml).
type RenewalResult = { instance: string; ttlSeconds: number; expiresAt: string } | { instance: string; error: string; status: number; message: string };
type ServerMessage =
  | { type: 'RENEWED'; seq?: number; results: RenewalResult[] }
  | { type: 'ERROR'; seq?: number; code: string; message: string };

interface Waiter {
  resolve: (renewal: Renewal) => void;
  reject: (err: Error) => void;
}

/** The registry's limits per RENEW message: 1000 instances, and a 64 KiB frame (keys can be 256 characters). */
const MAX_PER_MESSAGE = 1000;
const MAX_MESSAGE_BYTES = 60 * 1024;

export class LeaseStream {
  private readonly config: LeaseStreamConfig;
  private socket: WebSocket | undefined;
  private open = false;
  private closed = false;
  /** No upgrade is tried before this time (ms since epoch); renewals go over HTTP meanwhile. */
  private retryAt = 0;
  private attempt = 0;
  private seq = 0;
  /** Renewals waiting for the next flush: key → waiters (a key asked twice in a turn is sent once). */
  private queued = new Map<string, Waiter[]>();
  private flushScheduled = false;
  /** Messages sent and not answered yet, by seq. */
  private inflight = new Map<number, { keys: string[]; waiters: Waiter[][]; timer: NodeJS.Timeout }>();

  constructor(config: LeaseStreamConfig) {
    this.config = config;
  }

  /** Renews one instance over the stream; rejects with StreamUnavailable when it cannot, else with the registry's answer. */
  renew(namespace: string, service: string, id: string): Promise<Renewal> {
    if (this.closed) return Promise.reject(new StreamUnavailable('The lease stream is closed.'));
    if (!this.open && this.socket === undefined && Date.now() < this.retryAt) {
      return Promise.reject(new StreamUnavailable('The lease stream is backing off after a failure.'));
    }
    return new Promise<Renewal>((resolve, reject) => {
      const key = `${namespace}/${service}/${id}`;
      const waiters = this.queued.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.queued.set(key, [{ resolve, reject }]);
      if (this.open) this.scheduleFlush();
      else if (this.socket === undefined) this.connect();
    });
  }

  /** Closes the socket for good; waiting renewals fall back to HTTP. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropSocket('The lease stream was closed.');
  }

  /** Closes the socket while no registration needs it; the next renewal opens it again. */
  idle(): void {
    if (this.queued.size === 0 && this.inflight.size === 0) this.dropSocket('The lease stream went idle.');
  }

  private connect(): void {
    const url = `${this.config.baseUrl.replace(/^http/, 'ws')}/v1/leases`;
    const ws = new WebSocket(url, { headers: authHeaders(this.config.token), handshakeTimeout: this.config.timeoutMs, ...this.config.tls });
    this.socket = ws;
    ws.on('upgrade', (res) => {
      // A registration's timers do not keep its host alive; neither does the socket they share.
      res.socket.unref();
    });
    ws.on('open', () => {
      if (this.socket !== ws) return;
      this.open = true;
      this.scheduleFlush();
    });
    ws.on('message', (data, isBinary) => this.onMessage(ws, data, isBinary));
    ws.on('unexpected-response', (req, res) => {
      // Refused (404 from a registry without the stream, 426 from a proxy that does not pass upgrades, 401/403):
      // renew over HTTP, which gives the caller the registry's own answer, and try the stream again later.
      res.resume();
      req.destroy();
      this.failed(ws, `The registry refused the lease stream (HTTP ${res.statusCode}).`);
    });
    ws.on('error', (err) => this.failed(ws, `Lease stream failed: ${(err as NodeJS.ErrnoException).code ?? err.message}.`));
    ws.on('close', (code, reason) => this.failed(ws, `Lease stream closed by the registry (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}).`));
  }

  /** The socket is gone or unusable: everything waiting falls back to HTTP; the next upgrade waits for the backoff. */
  private failed(ws: WebSocket, why: string): void {
    if (this.socket !== ws) return;
    // A stream that worked and then closed (a registry restart) is tried again after the shortest backoff; one that
    // keeps failing, less and less often (renewals go over HTTP meanwhile).
    if (this.open) this.attempt = 0;
    this.retryAt = Date.now() + backoffDelay(this.attempt++, this.config.retry);
    this.dropSocket(why);
  }

  private dropSocket(why: string): void {
    const ws = this.socket;
    this.socket = undefined;
    this.open = false;
    if (ws) {
      ws.removeAllListeners('close');
      ws.on('error', () => {});
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000, 'done');
        setTimeout(() => ws.terminate(), 1000).unref();
      } else {
        ws.terminate();
      }
    }
    const err = new StreamUnavailable(why);
    for (const waiters of this.queued.values()) for (const w of waiters) w.reject(err);
    this.queued.clear();
    for (const { waiters, timer } of this.inflight.values()) {
      clearTimeout(timer);
      for (const list of waiters) for (const w of list) w.reject(err);
    }
    this.inflight.clear();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Renewals of many registrations due in the same turn go out together.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const ws = this.socket;
    if (!ws || !this.open || this.queued.size === 0) return;
    const entries = [...this.queued];
    this.queued.clear();
    for (let i = 0; i < entries.length; ) {
      // Keys are ASCII (the registry's id and label rules): their length is their size in the frame.
      let end = i;
      for (let bytes = 64; end < entries.length && end - i < MAX_PER_MESSAGE; end++) {
        bytes += entries[end]![0].length + 3;
        if (bytes > MAX_MESSAGE_BYTES && end > i) break;
      }
      const chunk = entries.slice(i, end);
      i = end;
      const seq = ++this.seq;
      const keys = chunk.map(([key]) => key);
      const timer = setTimeout(() => this.failed(ws, `No answer on the lease stream within ${this.config.timeoutMs} ms.`), this.config.timeoutMs);
      timer.unref();
      this.inflight.set(seq, { keys, waiters: chunk.map(([, waiters]) => waiters), timer });
      ws.send(JSON.stringify({ type: 'RENEW', seq, instances: keys }));
    }
  }

  private onMessage(ws: WebSocket, data: RawData, isBinary: boolean): void {
    if (this.socket !== ws) return;
    let msg: ServerMessage;
    try {
      if (isBinary) throw new Error('binary');
      msg = JSON.parse(data.toString()) as ServerMessage;
    } catch {
      return this.failed(ws, 'The registry sent a lease stream message that is not JSON.');
    }
    const pending = msg.seq === undefined ? undefined : this.inflight.get(msg.seq);
    // Unknown types and answers to nothing we asked are ignored, so a newer registry can add messages.
    if (!pending || (msg.type !== 'RENEWED' && msg.type !== 'ERROR')) return;
    this.inflight.delete(msg.seq!);
    clearTimeout(pending.timer);
    if (msg.type === 'ERROR') {
      // The registry could not read what we sent (a client bug): HTTP gives each renewal a proper answer.
      const err = new StreamUnavailable(`The registry refused a lease stream message: ${msg.code}: ${msg.message}`);
      for (const list of pending.waiters) for (const w of list) w.reject(err);
      return;
    }
    pending.keys.forEach((key, i) => {
      const result = msg.results[i];
      const waiters = pending.waiters[i]!;
      if (result === undefined || result.instance !== key) {
        const err = new StreamUnavailable('The registry answered a lease renewal out of order.');
        for (const w of waiters) w.reject(err);
      } else if ('error' in result) {
        const err = new RollcallClientError(result.error, result.message, { status: result.status });
        for (const w of waiters) w.reject(err);
      } else {
        for (const w of waiters) w.resolve({ ttlSeconds: result.ttlSeconds, expiresAt: result.expiresAt });
      }
    });
  }
}
