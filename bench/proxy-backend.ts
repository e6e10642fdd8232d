// The backend of the proxy benchmark, as its own process: an HTTP server answering "hello\n" and a TCP server
// that streams STREAM_MIB MiB to each connection and ends it. Prints {"http":PORT,"stream":PORT} when ready.
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';

const streamMiB = Number(process.argv[2] ?? 256);
const chunk = Buffer.alloc(1024 * 1024, 7);

const http = createHttpServer((_req, res) => res.end('hello\n'));
http.keepAliveTimeout = 30_000;
const stream = createServer((s) => {
  s.on('error', () => {});
  let sent = 0;
  const pump = () => {
    while (sent < streamMiB) {
      sent++;
      if (!s.write(chunk)) return void s.once('drain', pump);
    }
    s.end();
  };
  pump();
});
await Promise.all([new Promise<void>((r) => http.listen(0, '127.0.0.1', r)), new Promise<void>((r) => stream.listen(0, '127.0.0.1', r))]);
process.stdout.write(`${JSON.stringify({ http: (http.address() as AddressInfo).port, stream: (stream.address() as AddressInfo).port })}\n`);
