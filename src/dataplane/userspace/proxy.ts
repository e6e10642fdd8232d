// The userspace data plane: a Node TCP listener on each virtualIP:port, relaying every connection to one routable
// instance. What old kube-proxy's userspace mode taught: a connect that fails is retried on the next instance
// (bounded), so one dead instance costs a client latency, never an error.
// - pick: smooth weighted round-robin per service port (the client library's picker); zone preference is already
//   in the desired state;
// - a draining or deregistered instance leaves the state, so it gets no new connections; relayed connections are
//   never cut by a state change, they finish on their own;
// - nothing routable, or every try failed: the client's connection is reset at once;
// - both directions are piped (backpressure), and an end in one direction is passed on while the other keeps
//   flowing (half-close).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createPicker, type Picker } from '../../client/routing.js';
import type { Backend, DesiredState, ServicePort } from '../desired-state.js';
import type { DataPlane, Log } from '../data-plane.js';
import { serviceLabels, type ProxyMetrics } from '../metrics.js';

export interface UserspaceOptions {
  /** Listen here instead of on each service's virtual IP (where the operator cannot add the addresses). */
  bindHost?: string | undefined;
  /** How long one connect to an instance may take before the next is tried. */
  connectTimeoutMs: number;
  /** Instances tried per client connection before giving up. */
  maxTries: number;
  /** On close(), how long relayed connections may run before they are cut. */
  closeGraceMs: number;
  metrics: ProxyMetrics;
  log: Log;
}

interface Listener {
  host: string;
  port: number;
  server: Server;
  /** Replaced on every apply; connections read it when they arrive. */
  sp: ServicePort;
  picker: Picker;
  listening: boolean;
}

interface Candidate {
  namespace: string;
  service: string;
  id: string;
  status: 'up';
  weight: number;
  zone: string | null;
  backend: Backend;
}

export interface UserspaceProxy extends DataPlane {
  /** Where each service port is served, for logs and tests. */
  addresses(): { key: string; host: string; port: number; listening: boolean }[];
}

export function createUserspaceProxy(options: UserspaceOptions): UserspaceProxy {
  const listeners = new Map<string, Listener>();
  const sockets = new Set<Socket>();
  let closed = false;

  function handle(l: Listener, client: Socket): void {
    const sp = l.sp;
    const labels = serviceLabels(sp);
    options.metrics.connections.inc(labels);
    sockets.add(client);
    client.on('error', () => {});
    client.once('close', () => sockets.delete(client));
    const candidates: Candidate[] = sp.backends.map((b) => ({
      namespace: sp.namespace,
      service: sp.service,
      id: `${b.id}@${b.address}:${b.port}`,
      status: 'up',
      weight: b.weight,
      zone: b.zone,
      backend: b,
    }));
    const tried = new Set<string>();

    const attempt = (): void => {
      if (client.destroyed) return;
      // The picker drops its state for entries missing from a call, so a retry without the failed instance costs
      // that instance its round-robin position: a rare event, and the spread recovers within one cycle.
      const pool = tried.size === 0 ? candidates : candidates.filter((c) => !tried.has(c.id));
      const pick = tried.size < options.maxTries ? l.picker.pick(pool) : undefined;
      if (!pick) {
        options.metrics.unroutable.inc(labels);
        client.resetAndDestroy();
        return;
      }
      tried.add(pick.id);
      const upstream = connect({ host: pick.backend.address, port: pick.backend.port, allowHalfOpen: true });
      const onFail = () => {
        clearTimeout(timer);
        upstream.destroy();
        options.metrics.connectFailures.inc(labels);
        attempt();
      };
      const timer = setTimeout(onFail, options.connectTimeoutMs);
      upstream.once('error', onFail);
      upstream.once('connect', () => {
        clearTimeout(timer);
        upstream.off('error', onFail);
        relay(client, upstream, labels);
      });
      // A client that leaves while we connect takes its upstream with it.
      client.once('close', () => {
        if (upstream.connecting) {
          clearTimeout(timer);
          upstream.destroy();
        }
      });
    };
    attempt();
  }

  function relay(client: Socket, upstream: Socket, labels: ReturnType<typeof serviceLabels>): void {
    sockets.add(upstream);
    options.metrics.activeConnections.inc(labels);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      options.metrics.activeConnections.dec(labels);
      options.metrics.bytes.inc({ ...labels, direction: 'in' }, client.bytesRead);
      options.metrics.bytes.inc({ ...labels, direction: 'out' }, upstream.bytesRead);
    };
    // An error on either side ends both: there is no way to tell the other peer anything more precise.
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.once('close', () => {
      sockets.delete(upstream);
      // The instance went away without ending its side cleanly: reset the client rather than pretend an end.
      if (!client.destroyed && !client.writableEnded) client.destroy();
      finish();
    });
    client.once('close', () => {
      if (!upstream.destroyed && !upstream.writableEnded) upstream.destroy();
      finish();
    });
    // pipe() passes backpressure on and calls end() on the other side when one side ends (half-close), while the
    // reverse direction keeps flowing; each socket closes once both of its directions are done.
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }

  async function open(sp: ServicePort): Promise<void> {
    const host = options.bindHost ?? sp.virtualIP;
    const l: Listener = { host, port: sp.port, sp, picker: createPicker(), listening: false, server: undefined as unknown as Server };
    l.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => handle(l, socket));
    listeners.set(sp.key, l);
    await new Promise<void>((resolve) => {
      l.server.once('error', (err: NodeJS.ErrnoException) => {
        options.log(`cannot listen on ${host}:${sp.port} for ${sp.key}: ${err.code ?? err.message}; will retry on the next change`);
        listeners.delete(sp.key);
        resolve();
      });
      l.server.listen({ host, port: sp.port, exclusive: true }, () => {
        l.listening = true;
        l.server.removeAllListeners('error');
        l.server.on('error', (err) => options.log(`listener ${host}:${sp.port}: ${err.message}`));
        resolve();
      });
    });
  }

  function shut(key: string, l: Listener): void {
    listeners.delete(key);
    // close() stops accepting; connections already relayed run to their end.
    l.server.close();
  }

  return {
    async apply(state: DesiredState) {
      if (closed) return 'unchanged';
      let changed = false;
      const wanted = new Map(state.ports.map((sp) => [sp.key, sp]));
      for (const [key, l] of listeners) {
        const sp = wanted.get(key);
        if (!sp || (options.bindHost ?? sp.virtualIP) !== l.host) {
          shut(key, l);
          changed = true;
        }
      }
      const opening: Promise<void>[] = [];
      for (const sp of state.ports) {
        const l = listeners.get(sp.key);
        if (l) {
          if (JSON.stringify(l.sp) !== JSON.stringify(sp)) changed = true;
          l.sp = sp;
        } else {
          changed = true;
          opening.push(open(sp));
        }
      }
      await Promise.all(opening);
      return changed ? 'applied' : 'unchanged';
    },
    async close() {
      closed = true;
      for (const l of listeners.values()) l.server.close();
      listeners.clear();
      // Give relayed connections a grace to finish, then cut them: a stop must not wait on a client forever.
      const deadline = Date.now() + options.closeGraceMs;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const s of sockets) s.destroy();
    },
    addresses() {
      return [...listeners.entries()].map(([key, l]) => ({ key, host: l.host, port: l.port, listening: l.listening }));
    },
  };
}
