// Eureka's "recently changed" queue for GET /eureka/apps/delta: the last change of each instance in the
// last three minutes (Eureka's retention), fed by the watch hub, so changes made through any API appear.
import { isServiceChange } from '../../registry/types.js';
import type { Instance } from '../../schemas/instance.js';
import type { WatchHub } from '../../watch/hub.js';

const RETENTION_MS = 3 * 60_000;
/** A burst bigger than this keeps only its newest changes; clients whose hashcode then differs refetch in full. */
const MAX_ENTRIES = 50_000;

export interface RecentChange {
  at: number;
  actionType: 'ADDED' | 'MODIFIED' | 'DELETED';
  instance: Instance;
}

export function createRecentChanges(hub: WatchHub, namespace: string, now: () => number = Date.now) {
  // Insertion-ordered: oldest first; an instance that changes again moves to the end.
  const recent = new Map<string, RecentChange>();

  function prune() {
    const cutoff = now() - RETENTION_MS;
    for (const [key, change] of recent) {
      if (change.at >= cutoff && recent.size <= MAX_ENTRIES) break;
      recent.delete(key);
    }
  }

  const unsubscribe = hub.subscribe({ namespace }, ({ event }) => {
    // Only instance events reach a subscriber that asks for the default resources; the guard narrows the type.
    if (isServiceChange(event)) return;
    const key = `${event.instance.service}/${event.instance.id}`;
    recent.delete(key);
    recent.set(key, { at: now(), actionType: event.type, instance: event.instance });
    prune();
  });

  return {
    list(): RecentChange[] {
      prune();
      return [...recent.values()];
    },
    close: unsubscribe,
  };
}
