// GET /v1/watch: the same watch stream over WebSocket (upgrade) or Server-Sent Events (Accept: text/event-stream).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import '@fastify/websocket';
import { RollcallError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { errorResponses, parseResources, watchQuery } from '../schemas/api.js';
import type { WatchHub } from '../watch/hub.js';
import { PING_TIMEOUT_CLOSE, SLOW_CONSUMER_CLOSE, startWatchSession, type WatchSink } from '../watch/session.js';

export interface WatchRoutesOptions {
  registry: Registry;
  hub: WatchHub;
  metrics: Metrics;
  maxBufferedBytes: number;
  /** How often WebSocket peers are pinged; one missed pong closes the socket. */
  pingIntervalMs?: number;
  /** Open watchers (WebSocket + SSE) above this are refused with 503 too_many_watchers; 0 = no limit. */
  maxWatchers?: number;
}

/** Close codes of server-side closes that the watch route itself decides (ws sends 1002/1007/1009 itself). */
export const WATCH_CLOSE = {
  /** The client sent a message: the stream is one-way. */
  unsupportedData: 1003,
  /** Over maxWatchers (only when the check before the upgrade raced with other upgrades). */
  tryAgainLater: 1013,
} as const;

/**
 * WebSocket errors after the upgrade are the peer's doing (a frame over maxPayload, a broken frame, bad UTF-8):
 * ws has already queued a close frame with the matching code (1009, 1002, 1007). Log it as the client's
 * problem and give the close frame a moment to leave, instead of the default of logging an error and
 * cutting the socket at once (which the peer sees as 1006, no reason).
 */
export function onWebSocketError(this: FastifyInstance, error: Error, socket: WebSocket, request: FastifyRequest): void {
  // ws marks what the peer did wrong with WS_ERR_* codes; anything else is ours and logged as an error.
  const code = (error as Error & { code?: string }).code ?? '';
  if (code.startsWith('WS_ERR_')) request.log.info({ code, message: error.message }, 'WebSocket peer error; closing');
  else request.log.error({ err: error }, 'WebSocket handler failed');
  setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
}

/** A slow consumer's socket gets its close frame queued, then is cut after this grace so memory is freed. */
const CLOSE_GRACE_MS = 2000;

/** Every server-side close sends a code and reason (a bare cut shows the client only 1006), then frees the socket. */
export function closeWebSocket(socket: WebSocket, code: number, reason: string): void {
  socket.close(code, reason);
  setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
}

function webSocketSink(socket: WebSocket): WatchSink {
  return {
    sendEvent: (event) => socket.send(event.json, { binary: false }),
    sendMessage: (message) => socket.send(JSON.stringify(message)),
    buffered: () => socket.bufferedAmount,
    close: (code, reason) => closeWebSocket(socket, code, reason),
  };
}

function eventStreamSink(res: ServerResponse): WatchSink {
  return {
    sendEvent: (event) => res.write(event.sse),
    sendMessage(message, id) {
      const head = id === undefined ? '' : `id: ${id}\n`;
      res.write(`${head}event: ${String(message.type)}\ndata: ${JSON.stringify(message)}\n\n`);
    },
    buffered: () => res.writableLength,
    close(_code, _reason) {
      res.end();
      setTimeout(() => res.destroy(), CLOSE_GRACE_MS).unref();
    },
  };
}

export const watchRoutes: FastifyPluginAsyncZod<WatchRoutesOptions> = async (
  app,
  { registry, hub, metrics, maxBufferedBytes, pingIntervalMs = 30_000, maxWatchers = 0 },
) => {
  const streams = new Set<ServerResponse>();
  // Every open watcher holds a socket, a session and up to maxBufferedBytes of backlog: count them.
  let watching = 0;
  const full = () => maxWatchers > 0 && watching >= maxWatchers;
  const tooManyWatchers = () =>
    new RollcallError('too_many_watchers', `The registry serves ${maxWatchers} watchers, its limit; retry later, or use a blocking query.`);

  // A peer that vanished without closing (power loss, a dropped NAT entry) would hold its watcher forever:
  // ping every WebSocket each interval and cut those that did not answer the previous ping.
  const alive = new WeakMap<WebSocket, boolean>();
  const pinger = setInterval(() => {
    for (const socket of app.websocketServer.clients) {
      // Only watchers: other WebSocket routes (the lease stream) keep their own liveness.
      if (socket.readyState !== socket.OPEN || !alive.has(socket)) continue;
      if (alive.get(socket) === false) {
        // Unsent bytes mean it stopped reading: the slow-consumer close. Otherwise it did not answer in time.
        if (socket.bufferedAmount > 0) {
          metrics.slowConsumerCloses.inc();
          closeWebSocket(socket, SLOW_CONSUMER_CLOSE, 'slow_consumer: not reading; resume with sinceRevision');
        } else {
          closeWebSocket(socket, PING_TIMEOUT_CLOSE, 'ping_timeout: no pong within one ping interval; resume with sinceRevision');
        }
        continue;
      }
      alive.set(socket, false);
      socket.ping();
    }
  }, pingIntervalMs);
  pinger.unref();
  app.addHook('onClose', async () => clearInterval(pinger));

  // Server-Sent Event streams are hijacked responses: end them on shutdown or close() would wait forever.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  const common = (q: { namespace?: string | undefined; service?: string | undefined; resources?: string | undefined; bookmarkSeconds: number }) => ({
    registry,
    hub,
    maxBufferedBytes,
    bookmarkMs: q.bookmarkSeconds * 1000,
    filter: {
      ...(q.namespace === undefined ? {} : { namespace: q.namespace }),
      ...(q.service === undefined ? {} : { service: q.service }),
      resources: parseResources(q.resources),
    },
    onEventSent: () => metrics.watchEventsSent.inc(),
    onSlowConsumer: () => metrics.slowConsumerCloses.inc(),
  });

  app.route({
    method: 'GET',
    url: '/v1/watch',
    config: { access: { action: 'read', namespaceFrom: 'query' } },
    schema: {
      tags: ['watch'],
      summary: 'Watch changes (WebSocket upgrade, or Server-Sent Events with Accept: text/event-stream)',
      description: [
        'Messages (one JSON object per WebSocket message; SSE `event:` is the type, `id:` the revision):',
        '- `{"type":"SNAPSHOT","revision":R,"items":[…]}` first when sinceRevision is absent (with `resources` including `services`, also `"services":[…]`; `items` is then `[]` unless `instances` is asked too);',
        '- `{"type":"ADDED"|"MODIFIED"|"DELETED","revision":R,"reason":…,"instance":{…}}` for each instance change, in revision order;',
        '- `{"type":"ADDED"|"MODIFIED"|"DELETED","revision":R,"reason":"created"|"updated"|"deleted","service":{…}}` for each Service change when `resources` includes `services`;',
        '- `{"type":"BOOKMARK","revision":R}` after bookmarkSeconds without events;',
        '- `{"type":"ERROR","code":"revision_compacted"|"revision_ahead","message":…}`, then the stream closes: list again.',
        'A watcher that does not keep up is closed with WebSocket code 4008 (slow_consumer) and resumes with sinceRevision.',
        'The stream is one-way: a client message closes it with 1003; a frame over 64 KiB with 1009 (broken frames 1002, bad UTF-8 1007).',
        'Over --max-watchers the request is refused with HTTP 503 too_many_watchers before the upgrade (or, racing, closed with 1013).',
        'A WebSocket watcher that does not answer a ping within one ping interval is closed with code 4009 (ping_timeout).',
        'SSE resumes with the Last-Event-ID header like sinceRevision.',
      ].join('\n'),
      querystring: watchQuery,
      response: errorResponses(400, 401, 426, 503),
    },
    // Before the upgrade, so a refused WebSocket client gets an HTTP 503 it can read, not a dropped socket.
    preHandler: async (req) => {
      if (req.method !== 'HEAD' && full()) throw tooManyWatchers();
    },
    handler: async (req, reply) => {
      if (!(req.headers.accept ?? '').includes('text/event-stream')) {
        throw new RollcallError('upgrade_required', 'Watch needs a WebSocket upgrade, or Accept: text/event-stream for Server-Sent Events.');
      }
      let since = req.query.sinceRevision;
      const lastEventId = req.headers['last-event-id'];
      if (since === undefined && typeof lastEventId === 'string' && lastEventId !== '') {
        if (!/^\d{1,15}$/.test(lastEventId)) {
          throw new RollcallError('validation_failed', 'Last-Event-ID must be a revision number.', [
            { path: 'headers.last-event-id', message: 'must be a revision number' },
          ]);
        }
        since = Number(lastEventId);
      }
      if (req.method === 'HEAD') {
        // The automatic HEAD route shares this handler; a stream that never starts would never answer it.
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }).end();
        return;
      }
      reply.hijack();
      const res = reply.raw;
      // The stream lives as long as the watcher: bookmarks and the slow-consumer cut bound it, not the
      // server's idle cut for requests.
      if (typeof res.socket?.setTimeout === 'function') res.socket.setTimeout(0);
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      streams.add(res);
      watching++;
      metrics.watchers.inc({ kind: 'sse' });
      const session = startWatchSession({ ...common(req.query), sink: eventStreamSink(res), ...(since === undefined ? {} : { sinceRevision: since }) });
      res.on('close', () => {
        session.stop();
        streams.delete(res);
        watching--;
        metrics.watchers.dec({ kind: 'sse' });
      });
    },
    wsHandler: (socket, req) => {
      // Listeners attach before anything async, so no frame or close is missed.
      alive.set(socket, true);
      socket.on('pong', () => alive.set(socket, true));
      const query = watchQuery.parse(req.query);
      if (full()) {
        // Upgrades that passed the preHandler check together: refuse the extra ones with a close code.
        const sink = webSocketSink(socket);
        sink.close(WATCH_CLOSE.tryAgainLater, 'too_many_watchers: retry later');
        return;
      }
      watching++;
      // The stream is one-way; a client that talks is confused or hostile, and its frames are not read.
      socket.on('message', () => webSocketSink(socket).close(WATCH_CLOSE.unsupportedData, 'unsupported_data: watch streams take no messages'));
      metrics.watchers.inc({ kind: 'websocket' });
      const session = startWatchSession({
        ...common(query),
        sink: webSocketSink(socket),
        ...(query.sinceRevision === undefined ? {} : { sinceRevision: query.sinceRevision }),
      });
      socket.on('close', () => {
        session.stop();
        watching--;
        metrics.watchers.dec({ kind: 'websocket' });
      });
      socket.on('error', () => session.stop());
    },
  });
};
