// The DNS sockets: UDP and TCP on the same port. Framing, limits and lifecycle only; every message goes to handle().
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { MAX_QUERY_BYTES, type Transport } from './protocol.js';

export interface DnsServerOptions {
  host: string;
  /** 0 picks a port free for both UDP and TCP. */
  port: number;
  handle(message: Buffer, transport: Transport): Promise<Buffer | null>;
  /** An idle TCP connection is closed after this long (RFC 7766 §6.2.3). */
  tcpIdleMs: number;
  /** Connections beyond this are closed on accept. */
  tcpMaxConnections: number;
  onError(err: unknown): void;
  /** Open TCP connections changed (for a gauge). */
  onConnections?(count: number): void;
}

export interface DnsServer {
  address(): { host: string; port: number };
  close(): Promise<void>;
}

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  // Port 0: the port UDP got may be taken for TCP; try a few times before giving up.
  for (let attempt = 0; ; attempt++) {
    const udp = await bindUdp(options);
    const port = udp.address().port;
    try {
      const tcp = await listenTcp(options, port);
      return assemble(options, udp, tcp, port);
    } catch (err) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (options.port !== 0 || attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

function bindUdp(options: DnsServerOptions): Promise<UdpSocket> {
  // A larger receive buffer rides out bursts instead of dropping them (the kernel caps it at net.core.rmem_max).
  const udp = createSocket({ type: isIPv6(options.host) ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  return new Promise((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(options.port, options.host, () => {
      udp.off('error', reject);
      resolve(udp);
    });
  });
}

function listenTcp(options: DnsServerOptions, port: number): Promise<Server> {
  const tcp = createServer({ pauseOnConnect: false });
  tcp.maxConnections = options.tcpMaxConnections;
  return new Promise((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, options.host, () => {
      tcp.off('error', reject);
      resolve(tcp);
    });
  });
}

function assemble(options: DnsServerOptions, udp: UdpSocket, tcp: Server, port: number): DnsServer {
  udp.on('message', (message, peer) => {
    options.handle(message, 'udp').then(
      (response) => {
        if (response) udp.send(response, peer.port, peer.address, (err) => err && options.onError(err));
      },
      (err: unknown) => options.onError(err),
    );
  });
  // A send to a vanished peer (ICMP unreachable) is no reason to stop serving.
  udp.on('error', (err) => options.onError(err));

  const connections = new Set<Socket>();
  tcp.on('connection', (socket) => {
    connections.add(socket);
    options.onConnections?.(connections.size);
    socket.once('close', () => {
      connections.delete(socket);
      options.onConnections?.(connections.size);
    });
    serveTcp(socket, options);
  });
  tcp.on('error', (err) => options.onError(err));

  return {
    address: () => ({ host: options.host, port }),
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const socket of connections) socket.destroy();
      await closed;
    },
  };
}

/**
 * DNS over TCP: each message has a 2-byte length prefix; queries may be pipelined (RFC 7766). One message is
 * answered at a time (the socket is paused meanwhile), a length above MAX_QUERY_BYTES closes the connection, and
 * so does silence for tcpIdleMs: one client can hold neither memory nor a connection slot for long.
 */
function serveTcp(socket: Socket, options: DnsServerOptions) {
  let pending: Buffer = Buffer.alloc(0);
  let busy = false;
  socket.setTimeout(options.tcpIdleMs, () => socket.destroy());
  socket.on('error', () => socket.destroy());

  const drain = async () => {
    if (busy) return;
    busy = true;
    socket.pause();
    try {
      while (pending.length >= 2 && !socket.destroyed) {
        const length = pending.readUInt16BE(0);
        if (length > MAX_QUERY_BYTES) {
          socket.destroy();
          return;
        }
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        const response = await options.handle(Buffer.from(message), 'tcp');
        if (response && !socket.destroyed) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(response.length);
          // A client that sends but does not read gets no further answers (and no more of our memory) until
          // it does; if it never does, the idle timeout closes it.
          if (!socket.write(Buffer.concat([prefix, response]))) await writable(socket);
        }
      }
    } catch (err) {
      options.onError(err);
      socket.destroy();
    } finally {
      busy = false;
      if (!socket.destroyed) socket.resume();
    }
  };

  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    // More unprocessed bytes than one largest query plus its prefix and the next prefix: not a DNS client.
    if (pending.length > MAX_QUERY_BYTES + 4 && pending.readUInt16BE(0) > MAX_QUERY_BYTES) {
      socket.destroy();
      return;
    }
    void drain();
  });
}

/** Resolves once the socket's write buffer has drained, or the socket is gone. */
function writable(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
