import type { FastifyReply } from 'fastify';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { parseWait } from '../schemas/api.js';
import type { WatchFilter, WatchHub } from '../watch/hub.js';

const DEFAULT_WAIT_MS = 30_000;

/**
 * A blocking query (Consul-style): without index it returns at once; with index it waits until the filtered
 * set changed after that revision, the wait ran out, the client left or the server is shutting down.
 * An index above the registry's revision returns at once: the registry lost its data and the caller must
 * start over, not hang.
 */
export async function awaitChange(
  ctx: { registry: Registry; hub: WatchHub; metrics: Metrics; shutdown: AbortSignal; reply: FastifyReply },
  filter: WatchFilter,
  index: number | undefined,
  wait: string | undefined,
): Promise<void> {
  if (index === undefined || index > ctx.registry.revision || ctx.shutdown.aborted) return;
  const waitMs = wait === undefined ? DEFAULT_WAIT_MS : parseWait(wait)!;
  const gone = new AbortController();
  const onClose = () => gone.abort();
  ctx.reply.raw.once('close', onClose);
  // A waiting long-poll is silent both ways for up to 5 minutes; the server's idle cut (connectionTimeoutMs)
  // must not end it. The wait itself is the bound; the idle cut applies again to the answer.
  // (inject()'s stand-in socket has no timer to change.)
  const socket = typeof ctx.reply.raw.socket?.setTimeout === 'function' ? ctx.reply.raw.socket : null;
  socket?.setTimeout(0);
  ctx.metrics.longPollsWaiting.inc();
  try {
    await ctx.hub.waitForChange(filter, index, waitMs, AbortSignal.any([gone.signal, ctx.shutdown]));
  } finally {
    ctx.metrics.longPollsWaiting.dec();
    ctx.reply.raw.off('close', onClose);
    if (socket && !socket.destroyed) socket.setTimeout(ctx.reply.server.server.timeout);
  }
}
