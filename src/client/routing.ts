// Client-side load balancing, pure and synchronous. Kept apart from src/schemas so the client
// does not load zod at runtime; the rule is the same as the registry's isRoutable.
import type { Instance } from '../schemas/instance.js';

/** Routable = may get new traffic: status up and weight above zero. */
export function isRoutable(i: Pick<Instance, 'status' | 'weight'>): boolean {
  return i.status === 'up' && i.weight > 0;
}

export function instanceKey(i: Pick<Instance, 'namespace' | 'service' | 'id'>): string {
  return `${i.namespace}\u0000${i.service}\u0000${i.id}`;
}

/** What the picker needs of an instance; `rollcall proxy` passes its backends in this shape. */
export type PickCandidate = Pick<Instance, 'namespace' | 'service' | 'id' | 'status' | 'weight' | 'zone'>;

export function compareInstances(a: Pick<Instance, 'namespace' | 'service' | 'id'>, b: Pick<Instance, 'namespace' | 'service' | 'id'>): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.service !== b.service) return a.service < b.service ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Smooth weighted round-robin (the nginx algorithm): over any window of sum(weights) picks each
 * instance is chosen exactly `weight` times, interleaved rather than in runs. State is kept per pool
 * (a zone, or everything), and entries of instances that left the pool are dropped, so a newcomer
 * starts at zero instead of inheriting a debt.
 */
export function createPicker() {
  const pools = new Map<string, Map<string, number>>();

  return {
    pick<T extends PickCandidate>(instances: Iterable<T>, zone?: string): T | undefined {
      const routable = [...instances].filter(isRoutable).sort(compareInstances);
      if (routable.length === 0) return undefined;
      let pool = routable;
      let poolKey = '*';
      if (zone !== undefined) {
        const local = routable.filter((i) => i.zone === zone);
        // Prefer the caller's zone; fall back to every zone rather than failing when it has none.
        if (local.length > 0) {
          pool = local;
          poolKey = `zone:${zone}`;
        }
      }
      let current = pools.get(poolKey);
      if (!current) {
        current = new Map();
        pools.set(poolKey, current);
      }
      const keys = new Set(pool.map(instanceKey));
      for (const k of current.keys()) if (!keys.has(k)) current.delete(k);

      let total = 0;
      let best: T | undefined;
      let bestWeight = -Infinity;
      for (const i of pool) {
        const k = instanceKey(i);
        const w = (current.get(k) ?? 0) + i.weight;
        current.set(k, w);
        total += i.weight;
        if (w > bestWeight) {
          bestWeight = w;
          best = i;
        }
      }
      if (best) current.set(instanceKey(best), bestWeight - total);
      return best;
    },
    reset(): void {
      pools.clear();
    },
  };
}

export type Picker = ReturnType<typeof createPicker>;
