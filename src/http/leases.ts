// Lease renewals without an HTTP request each (issue 14):
// - GET /v1/leases: a WebSocket on which a client renews any of its instances (etcd's LeaseKeepAlive stream);
// - POST /v1/leases/renew: one request renews a list, for tools that cannot keep a socket.
// Both answer per instance exactly what PUT …/heartbeat would (see lease-renewals.ts); a renewal is no change.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import '@fastify/websocket';
import type { Principal } from '../auth/rules.js';
import { RollcallError, type ErrorDetail } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { errorResponses } from '../schemas/api.js';
import { leaseStreamMessage, MAX_RENEWALS, renewBody, renewMessage, renewResponse } from '../schemas/leases.js';
import { PING_TIMEOUT_CLOSE, SLOW_CONSUMER_CLOSE } from '../watch/session.js';
import { createLeaseRenewer } from './lease-renewals.js';
import { closeWebSocket } from './watch.js';

export interface LeaseRoutesOptions {
  registry: Registry;
  metrics: Metrics;
  /** A stream whose unread answers pass this many bytes is closed as a slow consumer (4008). */
  maxBufferedBytes: number;
  /** How often streams are pinged; one missed pong closes the socket (4009). */
  pingIntervalMs?: number;
}

/** Close codes the lease stream decides itself (ws closes frames over 64 KiB with 1009 on its own). */
export const LEASE_CLOSE = {
  /** Too many messages that could not be read (a confused or hostile client), or a credential revoked by a reload. */
  policyViolation: 1008,
} as const;

/**
 * Unreadable messages a stream may send: a burst of this many, then one per second. A client with a bug
 * sees ERROR answers and can log them; one that only sends garbage is cut instead of costing parses forever.
 */
const GARBAGE_BURST = 10;
const GARBAGE_PER_SECOND = 1;

/** A token bucket with no timer: refilled from the clock when a bad message arrives. */
function garbageAllowance() {
  let tokens = GARBAGE_BURST;
  let at = Date.now();
  return {
    /** False once the client sent garbage faster than the allowance. */
    take(): boolean {
      const now = Date.now();
      tokens = Math.min(GARBAGE_BURST, tokens + ((now - at) / 1000) * GARBAGE_PER_SECOND);
      at = now;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}

function issueDetails(issues: readonly { path: readonly PropertyKey[]; message: string }[]): ErrorDetail[] {
  return issues.slice(0, 20).map((i) => ({ path: ['message', ...i.path.map(String)].join('.'), message: i.message }));
}

export const leaseRoutes: FastifyPluginAsyncZod<LeaseRoutesOptions> = async (app, { registry, metrics, maxBufferedBytes, pingIntervalMs = 30_000 }) => {
  const renewAll = createLeaseRenewer(registry, metrics);

  app.post(
    '/v1/leases/renew',
    {
      config: { access: { action: 'write', namespaceFrom: 'each', audit: 'debug' } },
      schema: {
        tags: ['instances'],
        summary: 'Renew the leases of many instances in one request',
        description: [
          `For tools that cannot keep the lease stream open: up to ${MAX_RENEWALS} instances, named \`namespace/service/id\`, each renewed exactly as PUT …/heartbeat would renew it.`,
          'The answer is 200 with one result per instance, in order: `{instance, ttlSeconds, expiresAt}`, or `{instance, error, status, message}` where `error` is instance_not_found (register it again), forbidden (the credential lacks write on its namespace) or storage_full.',
          'A body that is not that list (a malformed key, none, more than the limit) is refused whole with 400.',
        ].join('\n'),
        body: renewBody,
        response: { 200: renewResponse, ...errorResponses(400, 401, 413, 415) },
      },
    },
    async (req) => ({ results: await renewAll(req.principal, req.body.instances, 'batch') }),
  );

  // Dead peers hold a socket and a principal forever unless cut: ping each stream every interval and close those
  // that did not answer the previous ping (the watch route does the same for its own sockets).
  const streams = new Map<WebSocket, { alive: boolean }>();
  const pinger = setInterval(() => {
    for (const [socket, state] of streams) {
      if (socket.readyState !== socket.OPEN) continue;
      if (!state.alive) {
        metrics.leaseStreamCloses.inc({ reason: 'ping_timeout' });
        closeWebSocket(socket, PING_TIMEOUT_CLOSE, 'ping_timeout: no pong within one ping interval');
        continue;
      }
      state.alive = false;
      socket.ping();
    }
  }, pingIntervalMs);
  pinger.unref();
  app.addHook('onClose', async () => clearInterval(pinger));

  app.route({
    method: 'GET',
    url: '/v1/leases',
    config: { access: { action: 'write', namespaceFrom: 'each', audit: 'debug' } },
    schema: {
      tags: ['instances'],
      summary: 'Lease stream: renew any number of instances over one WebSocket',
      description: [
        'A WebSocket upgrade (like etcd\'s LeaseKeepAlive stream). One JSON object per text message, told apart by `type` (schema LeaseStreamMessage):',
        `- client → server \`{"type":"RENEW","seq":7,"instances":["default/web/web-1",…]}\`: 1-${MAX_RENEWALS} instances as \`namespace/service/id\`; \`seq\` is optional and echoed;`,
        '- server → client `{"type":"RENEWED","seq":7,"results":[…]}`: one result per instance, in order, as POST /v1/leases/renew answers them: `{instance, ttlSeconds, expiresAt}`, or `{instance, error, status, message}` where `error` instance_not_found means "unknown: register it again";',
        '- server → client `{"type":"ERROR","seq":7,"code":"invalid_json"|"validation_failed"|"bad_request","message":…}` for a message that could not be read (or `internal_error`: the server failed, and logged why); the stream stays open.',
        'Each instance is checked against the credential\'s write scope on its namespace, as PUT …/heartbeat is. A renewal is no change: no revision, no event.',
        `Bounds: a frame over 64 KiB closes the stream with 1009; more than ${GARBAGE_BURST} unreadable messages in a burst (then ${GARBAGE_PER_SECOND}/s) with 1008, as does a message after a reload of the auth file revoked the stream's credential (a reload's new scopes apply to the next message); answers left unread past the watch buffer (--watch-buffer-bytes) with 4008 slow_consumer; no pong within one ping interval (30 s, as for watchers) with 4009 ping_timeout.`,
        'Without an upgrade the route answers 426.',
      ].join('\n'),
      response: {
        101: leaseStreamMessage,
        ...errorResponses(401, 403, 426),
      },
    },
    handler: async () => {
      throw new RollcallError('upgrade_required', 'The lease stream needs a WebSocket upgrade; without one, renew with POST /v1/leases/renew or PUT …/heartbeat.');
    },
    wsHandler: (socket, req) => {
      // Listeners attach before anything async, so no frame or close is missed.
      const state = { alive: true };
      streams.set(socket, state);
      metrics.leaseStreams.inc();
      socket.on('pong', () => (state.alive = true));
      socket.on('close', () => {
        streams.delete(socket);
        metrics.leaseStreams.dec();
      });
      const garbage = garbageAllowance();

      // Answers of one turn of the event loop leave in one write: ws writes each frame with its own system call,
      // which a client pipelining one renewal per message would otherwise pay per answer.
      const tcp = (socket as unknown as { _socket: Socket })._socket;
      let corked = false;
      const uncork = () => {
        corked = false;
        tcp.uncork();
        // A client that sends renewals but never reads the answers would grow our buffer without bound.
        if (socket.bufferedAmount > maxBufferedBytes && socket.readyState === socket.OPEN) {
          metrics.leaseStreamCloses.inc({ reason: 'slow_consumer' });
          closeWebSocket(socket, SLOW_CONSUMER_CLOSE, 'slow_consumer: read the answers');
        }
      };
      const send = (message: Record<string, unknown>) => {
        if (socket.readyState !== socket.OPEN) return;
        if (!corked) {
          corked = true;
          tcp.cork();
          setImmediate(uncork);
        }
        socket.send(JSON.stringify(message));
      };
      const refuse = (code: string, message: string, extra: { seq?: number; details?: ErrorDetail[] } = {}) => {
        if (!garbage.take()) {
          metrics.leaseStreamCloses.inc({ reason: 'too_many_bad_messages' });
          closeWebSocket(socket, LEASE_CLOSE.policyViolation, 'too_many_bad_messages');
          return;
        }
        send({ type: 'ERROR', ...(extra.seq === undefined ? {} : { seq: extra.seq }), code, message, ...(extra.details ? { details: extra.details } : {}) });
      };

      socket.on('message', (data: RawData, isBinary: boolean) => {
        // Frames still arriving after we decided to close are not read.
        if (socket.readyState !== socket.OPEN) return;
        if (isBinary) return refuse('bad_request', 'Send renewals as JSON text messages, not binary frames.');
        let parsed: unknown;
        try {
          parsed = JSON.parse(data.toString());
        } catch (err) {
          return refuse('invalid_json', `The message is not valid JSON: ${(err as Error).message}`);
        }
        const checked = renewMessage.safeParse(parsed);
        if (!checked.success) {
          const seq = (parsed as { seq?: unknown } | null)?.seq;
          const details = issueDetails(checked.error.issues);
          return refuse('validation_failed', `Invalid message: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`, {
            ...(Number.isSafeInteger(seq) && (seq as number) >= 0 ? { seq: seq as number } : {}),
            details,
          });
        }
        const { seq, instances } = checked.data;
        // The stream outlives the check made at its upgrade: a reloaded auth file applies to its next message, as
        // it would to the next PUT …/heartbeat (new scopes per instance; a revoked credential ends the stream).
        let principal: Principal | null;
        try {
          principal = req.principalNow?.() ?? null;
        } catch (err) {
          req.log.info({ err }, 'lease stream closed: its credential was revoked by a reload');
          metrics.leaseStreamCloses.inc({ reason: 'unauthorized' });
          closeWebSocket(socket, LEASE_CLOSE.policyViolation, 'unauthorized: the credential is no longer valid (auth file reloaded)');
          return;
        }
        renewAll(principal, instances, 'stream').then(
          (results) => send({ type: 'RENEWED', ...(seq === undefined ? {} : { seq }), results }),
          (err: unknown) => {
            // Per-instance failures are results; only the unexpected gets here.
            const known = err instanceof RollcallError;
            if (!known) req.log.error({ err }, 'lease renewal failed');
            send({
              type: 'ERROR',
              ...(seq === undefined ? {} : { seq }),
              code: known ? err.code : 'internal_error',
              message: known ? err.message : 'The renewal failed; the server log has the details.',
            });
          },
        );
      });
    },
  });
};
