// Raw TCP for tests that need what no HTTP client sends: broken requests, dribbled bytes, silent peers (test/raw-http.ts sends one exact request target).
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  /** Everything the server sent before closing (or before the deadline). */
  text: string;
  status: number | undefined;
  headers: Record<string, string>;
  body: string;
  /** Parsed body when it is JSON, else undefined. */
  json: any;
  /** Whether the server closed the connection (false: we gave up at the deadline). */
  closed: boolean;
  /** Milliseconds from connect to close (or to the deadline). */
  elapsedMs: number;
}

export function parseRaw(text: string): Pick<RawResponse, 'status' | 'headers' | 'body' | 'json'> {
  // Skip interim 1xx responses (100 Continue).
  let rest = text;
  while (/^HTTP\/1\.1 1\d\d /.test(rest) && rest.includes('\r\n\r\n')) rest = rest.slice(rest.indexOf('\r\n\r\n') + 4);
  const end = rest.indexOf('\r\n\r\n');
  const head = end === -1 ? rest : rest.slice(0, end);
  const body = end === -1 ? '' : rest.slice(end + 4);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let json: unknown;
  try {
    json = body === '' ? undefined : JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: status === undefined ? undefined : Number(status), headers, body, json };
}

export interface RawOptions {
  /** Sent after the initial bytes, one piece every `everyMs`, until the server closes. */
  dribble?: string[];
  everyMs?: number;
  /** Give up after this long (the connection is then destroyed and `closed` is false). */
  deadlineMs?: number;
  /** Stop reading after the first full response instead of waiting for the close. */
  firstResponse?: boolean;
}

/** Connects to 127.0.0.1:port, writes data, optionally dribbles more, and collects what comes back. */
export function rawRequest(port: number, data: string | Buffer, options: RawOptions = {}): Promise<RawResponse> {
  const { dribble = [], everyMs = 200, deadlineMs = 20_000 } = options;
  const started = Date.now();
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearInterval(timer);
      socket.destroy();
      resolve({ text, closed, elapsedMs: Date.now() - started, ...parseRaw(text) });
    };
    const deadline = setTimeout(() => finish(false), deadlineMs);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (options.firstResponse) {
        const parsed = parseRaw(text);
        const length = Number(parsed.headers['content-length'] ?? NaN);
        if (parsed.status !== undefined && Buffer.byteLength(parsed.body, 'latin1') >= length) finish(true);
      }
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.write(data);
    let next = 0;
    if (dribble.length > 0) {
      timer = setInterval(() => {
        if (socket.writable && next < dribble.length) socket.write(dribble[next++]!);
      }, everyMs);
    }
  });
}
