// Raw HTTP/1.1 over a node:net socket: the request target goes on the wire exactly as written (fetch, curl
// and undici all normalise `/%761/…`, `//`, `..` or absolute-form targets before sending).
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

/**
 * Sends `METHOD target HTTP/1.1` with the given headers and body and resolves with the answer. Streams (101
 * Switching Protocols, text/event-stream) resolve as soon as their head arrives; the socket is then cut.
 */
export function rawRequest(
  port: number,
  method: string,
  target: string,
  options: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...options.headers };
  if (options.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(options.body));
  }
  const head = [`${method} ${target} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer to ${method} ${target} within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    const parse = (final: boolean): RawAnswer | null => {
      const text = data.toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return null;
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
      const parsedHeaders: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        parsedHeaders[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const streaming = status === 101 || (parsedHeaders['content-type'] ?? '').startsWith('text/event-stream');
      let body = text.slice(end + 4);
      const length = parsedHeaders['content-length'];
      if (!streaming && !final) {
        if (length === undefined || Buffer.byteLength(body) < Number(length)) return null;
      }
      if (parsedHeaders['transfer-encoding'] === 'chunked') body = unchunk(body);
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      return { status, headers: parsedHeaders, body: streaming ? '' : body, json };
    };
    const finish = (final: boolean) => {
      const answer = parse(final);
      if (answer === null) {
        if (final) {
          clearTimeout(timer);
          reject(new Error(`the connection closed before an answer to ${method} ${target}: ${JSON.stringify(data.toString())}`));
        }
        return;
      }
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(`${head}\r\n\r\n${options.body ?? ''}`);
  });
}

function unchunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
