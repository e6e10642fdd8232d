// Every etcd call is bounded: a replica that lost etcd answers 503 store_unavailable, it never hangs.
import { RollcallError } from '../../errors.js';

export function storeUnavailable(err: unknown): RollcallError {
  if (err instanceof RollcallError) return err;
  return new RollcallError(
    'store_unavailable',
    `etcd did not answer (${(err as Error)?.message ?? String(err)}); nothing was written. Retry, on this replica or another.`,
  );
}

/** Rejects with store_unavailable when p takes longer than ms. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(storeUnavailable(new Error(`${what} timed out after ${ms} ms`))), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
