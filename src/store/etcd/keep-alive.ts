// Heartbeats on etcd: one LeaseKeepAlive stream per replica carries the renewals of every lease it serves (etcd
// answers each request in order on the stream), instead of one call per heartbeat.
import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { storeUnavailable, withTimeout } from './timeouts.js';

export function createKeepAlive(client: Etcd3, timeoutMs: number) {
  let keepAliveStream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  let keepAliveOpening: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> | undefined;
  const renewing = new Map<string, ((ttl: number | Error) => void)[]>();

  function failKeepAlives(err: Error) {
    keepAliveStream = undefined;
    for (const queue of renewing.values()) for (const done of queue) done(err);
    renewing.clear();
  }

  function keepAliveChannel() {
    if (keepAliveStream) return Promise.resolve(keepAliveStream);
    keepAliveOpening ??= client.leaseClient.leaseKeepAlive().then(
      (stream) => {
        keepAliveOpening = undefined;
        stream.on('data', (res: ILeaseKeepAliveResponse) => {
          const queue = renewing.get(res.ID);
          const done = queue?.shift();
          if (queue?.length === 0) renewing.delete(res.ID);
          done?.(Number(res.TTL));
        });
        const broken = (err?: unknown) => {
          if (keepAliveStream !== stream) return;
          failKeepAlives(err instanceof Error ? err : new Error('the keep-alive stream ended'));
        };
        stream.on('error', broken);
        stream.on('end', broken);
        keepAliveStream = stream;
        return stream;
      },
      (err: unknown) => {
        keepAliveOpening = undefined;
        throw err;
      },
    );
    return keepAliveOpening;
  }

  return {
    /** One keep-alive of a lease: the TTL it has now, 0 when it is gone (expired or revoked). */
    async renew(lease: string): Promise<number> {
      let stream;
      try {
        stream = await withTimeout(keepAliveChannel(), timeoutMs, 'opening the keep-alive stream');
      } catch (err) {
        throw storeUnavailable(err);
      }
      const answer = new Promise<number>((resolve, reject) => {
        let queue = renewing.get(lease);
        if (!queue) renewing.set(lease, (queue = []));
        queue.push((ttl) => (typeof ttl === 'number' ? resolve(ttl) : reject(storeUnavailable(ttl))));
      });
      stream.write({ ID: lease });
      try {
        return await withTimeout(answer, timeoutMs, 'renewing a lease');
      } catch (err) {
        // A stream that does not answer is broken: the next heartbeat opens a new one.
        if (keepAliveStream === stream) {
          failKeepAlives(err as Error);
          stream.end();
        }
        throw err;
      }
    },

    /** Ends the stream; renewals waiting for an answer fail. */
    close() {
      keepAliveStream?.end();
      failKeepAlives(new Error('closing'));
    },
  };
}
