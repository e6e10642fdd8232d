// Real backends for the proxy tests: HTTP servers on loopback that answer with their name, and a counter of
// which backend served each request through a virtual address.
import { once } from 'node:events';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';

export interface Backend {
  name: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1:<ephemeral> answering its name on a connection it then closes. */
export async function startBackend(t: Test, name: string, host = '127.0.0.1'): Promise<Backend> {
  const server = createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(name);
  });
  server.listen(0, host);
  await once(server, 'listening');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(close);
  return { name, port: (server.address() as AddressInfo).port, server, close };
}

/** GETs url n times, one new connection each, and counts the answers by body. Errors count under their code. */
export async function spread(url: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const key = await fetchName(url);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** One GET on a fresh connection (no agent, no keep-alive): its body, or `error:<code>`. */
export function fetchName(url: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(`error:${err.code ?? err.message}`));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error:${err.code ?? err.message}`));
  });
}
