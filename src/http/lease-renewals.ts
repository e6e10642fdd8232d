// Renewing many leases in one go, for the batch route and the lease stream alike: every instance gets exactly
// what PUT …/heartbeat would have given it (its namespace's write scope checked, unknown → instance_not_found,
// one registry.heartbeat() call), so a renewal means the same whichever way it came.
import { missingScope, type Principal } from '../auth/rules.js';
import { RollcallError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { RenewalResult } from '../schemas/leases.js';

export type RenewalTransport = 'http' | 'batch' | 'stream';

/** The result label of rollcall_lease_renewals_total (and heartbeats_total) for an error code. */
function resultLabel(code: string): string {
  return code === 'instance_not_found' ? 'not_found' : code;
}

export function createLeaseRenewer(registry: Registry, metrics: Metrics) {
  /**
   * Renews each key (already validated as namespace/service/id) for `principal` (null: auth is off) and
   * answers one result per key, in order. Never throws for a single instance: its failure is its result.
   */
  return async function renewAll(principal: Principal | null, keys: readonly string[], transport: RenewalTransport): Promise<RenewalResult[]> {
    const results: RenewalResult[] = new Array(keys.length);
    // A batch nearly always names few namespaces: decide each once.
    const refusals = new Map<string, string | null>();
    const counts = new Map<string, number>();
    const count = (label: string) => counts.set(label, (counts.get(label) ?? 0) + 1);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const first = key.indexOf('/');
      const second = key.indexOf('/', first + 1);
      const namespace = key.slice(0, first);
      const service = key.slice(first + 1, second);
      const id = key.slice(second + 1);
      if (principal !== null) {
        let missing = refusals.get(namespace);
        if (missing === undefined) refusals.set(namespace, (missing = missingScope(principal, 'write', namespace)));
        if (missing !== null) {
          results[i] = {
            instance: key,
            error: 'forbidden',
            status: 403,
            message: `"${principal.name}" (role ${principal.role}, namespaces ${principal.namespaces.join(',')}) lacks the scope ${missing}.`,
          };
          count('forbidden');
          continue;
        }
      }
      // Each resolves as PUT …/heartbeat's would: once what is pending is committed (at once when nothing is; a
      // lapsed instance brought back is itself a change), or with its own error (instance_not_found, storage_full).
      pending.push(
        registry.heartbeat(namespace, service, id).then(
          ({ ttlSeconds, expiresAt }) => {
            results[i] = { instance: key, ttlSeconds, expiresAt };
            count('ok');
          },
          (err: unknown) => {
            if (!(err instanceof RollcallError)) throw err;
            results[i] = { instance: key, error: err.code, status: err.status, message: err.message };
            count(resultLabel(err.code));
          },
        ),
      );
    }
    await Promise.all(pending);
    for (const [label, n] of counts) {
      metrics.leaseRenewals.inc({ transport, result: label }, n);
      if (label === 'ok' || label === 'not_found') metrics.heartbeats.inc({ result: label }, n);
    }
    return results;
  };
}

export type LeaseRenewer = ReturnType<typeof createLeaseRenewer>;
