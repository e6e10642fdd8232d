// The socket edge of the HTTP server: timeouts that cut slow or silent peers, a cap on open connections, and
// JSON answers for the errors Node, the router and ws raise before a route runs, so that every error a client
// can see has the one documented shape {error, message}.
import type { FastifyError, FastifyHttpOptions, FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, RollcallError, type ErrorCode } from '../errors.js';

export interface ServerLimits {
  /** The request line and headers must arrive within this (also cuts connections that never send a byte). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this. Responses may take longer (long-polls, streams). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way while a request is served is cut after this (0 = never). */
  connectionTimeoutMs: number;
  /** Open connections above this get a 503 too_many_connections and are closed (0 = no limit). */
  maxConnections: number;
}

/** Connections refused with a 503 are held at most this long: enough to read one request and answer it. */
const REFUSED_SOCKET_MS = 5000;
/**
 * Above the soft limit we still answer (so clients see why), but every refused socket costs memory until it is
 * answered. Past this many extra sockets Node drops new connections at accept, without an answer.
 */
const REFUSAL_ALLOWANCE = 256;
/** Bytes we answer an error with get this long to leave before the socket is destroyed. */
const LINGER_MS = 1000;

const refused = new WeakSet<Socket>();

function errorJson(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: code, message });
}

/** A complete HTTP/1.1 error response for writing straight to a socket, closing the connection. */
export function rawErrorResponse(code: ErrorCode, message: string): string {
  const status = ERROR_CODES[code];
  const body = errorJson(code, message);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/** Answers on a socket nobody else will write to, then closes it; ending (not destroying) lets the bytes out. */
export function answerAndClose(socket: Duplex, code: ErrorCode, message: string): void {
  if (socket.writable) socket.end(rawErrorResponse(code, message));
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

function clientErrorFor(err: NodeJS.ErrnoException, limits: ServerLimits): [ErrorCode, string] {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        'request_timeout',
        `The request did not arrive in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms); the connection is closed.`,
      ];
    case 'HPE_HEADER_OVERFLOW':
      return ['headers_too_large', 'The request line and headers are larger than 16 KiB.'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return ['body_too_large', 'The chunk extensions of the request body are too large.'];
    default:
      return ['bad_request', `The request is not valid HTTP/1.1 (${err.code ?? 'parse error'}).`];
  }
}

/** Fastify server options: the timeouts and the handlers for errors raised before routing. Spread into Fastify(). */
export function serverLimitOptions(limits: ServerLimits): Pick<
  FastifyHttpOptions<RawServerDefault>,
  'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout' | 'http' | 'clientErrorHandler' | 'frameworkErrors'
> {
  const shortest = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks header/request deadlines on this interval (30 s by default, which would stretch a 10 s
      // headers timeout to 40 s). The check walks only connections with a request still arriving: cheap.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
      // Node answers a Host-less HTTP/1.1 request with an empty 400; the onRequest guard answers it in JSON.
      requireHostHeader: false,
    },
    clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
      // A reset peer, or a socket already gone: nobody to answer.
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [code, message] = clientErrorFor(err, limits);
      const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
      if (inFlight?.headersSent) {
        // A response already started (a slow response, not a slow request): it cannot be replaced.
        socket.destroy();
        return;
      }
      answerAndClose(socket, code, message);
    },
    frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply) {
      // The router's own errors would echo the whole URL back; name the problem instead.
      const [code, message]: [ErrorCode, string] =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? ['uri_too_long', 'A path segment is longer than 256 characters.']
          : err.code === 'FST_ERR_BAD_URL'
            ? ['bad_request', 'The URL path is not valid percent-encoded UTF-8.']
            : ['internal_error', 'An internal error occurred; the server log has the details.'];
      return reply.code(ERROR_CODES[code]).type('application/json; charset=utf-8').send(errorJson(code, message));
    },
  };
}

/**
 * Installs what needs the app: the connection count, JSON answers to Expect and Host problems, and JSON for
 * WebSocket handshakes that ws would refuse in text/html. Call before other onRequest hooks: a refused
 * connection is answered before anything else runs.
 */
export function installServerLimits(app: FastifyInstance, limits: ServerLimits): void {
  let open = 0;
  if (limits.maxConnections > 0) app.server.maxConnections = limits.maxConnections + REFUSAL_ALLOWANCE;
  app.server.on('connection', (socket: Socket) => {
    open++;
    socket.once('close', () => open--);
    if (limits.maxConnections > 0 && open > limits.maxConnections) {
      refused.add(socket);
      // A refused client gets one answer; one that sends nothing must not hold the socket.
      socket.setTimeout(REFUSED_SOCKET_MS, () => socket.destroy());
    }
  });

  // Node answers an Expect it does not know with an empty 417 unless someone listens.
  app.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = errorJson('expectation_failed', 'Only "Expect: 100-continue" is supported.');
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });

  app.addHook('onRequest', async (req, reply) => {
    if (refused.has(req.raw.socket)) {
      reply.header('connection', 'close');
      throw new RollcallError(
        'too_many_connections',
        `The registry has ${limits.maxConnections} open connections, its limit; retry later or reuse a connection.`,
      );
    }
    if (req.raw.httpVersion === '1.1' && req.headers.host === undefined) {
      reply.header('connection', 'close');
      throw new RollcallError('bad_request', 'An HTTP/1.1 request needs a Host header.');
    }
  });

  // ws refuses a bad handshake (wrong Upgrade value, missing key or version) with a text/html body. The
  // WebSocket server exists once @fastify/websocket is registered, which is later than these hooks must be.
  app.addHook('onReady', async () => {
    app.websocketServer.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
      const message = req.method === 'GET' ? `Invalid WebSocket handshake: ${err.message}.` : 'A WebSocket upgrade must be a GET.';
      answerAndClose(socket, req.method === 'GET' ? 'bad_request' : 'method_not_allowed', message);
    });
  });
}
