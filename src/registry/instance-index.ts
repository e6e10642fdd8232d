// The current instances in memory, by namespace → service → id: what every read is served from, whichever store
// keeps the durable copy.
import type { Instance } from '../schemas/instance.js';
import type { InstanceRecord } from './types.js';

export interface ListFilter {
  namespace: string;
  service?: string;
  status?: Instance['status'];
  tag?: string;
  zone?: string;
}

export type ServiceMap = Map<string, Map<string, InstanceRecord>>;

export function createInstanceIndex() {
  const namespaces = new Map<string, ServiceMap>();
  let count = 0;

  return {
    /** namespace → service → id → record, live: read synchronously and keep nothing. */
    namespaces: namespaces as ReadonlyMap<string, ServiceMap>,

    get size(): number {
      return count;
    },

    find(namespace: string, service: string, id: string): InstanceRecord | undefined {
      return namespaces.get(namespace)?.get(service)?.get(id);
    },

    /** Adds the record, or replaces the one with its namespace, service and id. */
    put(record: InstanceRecord): void {
      let services = namespaces.get(record.namespace);
      if (!services) namespaces.set(record.namespace, (services = new Map()));
      let ids = services.get(record.service);
      if (!ids) services.set(record.service, (ids = new Map()));
      if (!ids.has(record.id)) count++;
      ids.set(record.id, record);
    },

    drop(record: InstanceRecord): void {
      const services = namespaces.get(record.namespace);
      const ids = services?.get(record.service);
      if (!services || !ids) return;
      if (ids.delete(record.id)) count--;
      if (ids.size === 0) services.delete(record.service);
      if (services.size === 0) namespaces.delete(record.namespace);
    },

    /** Records matching filter, sorted by service then id. */
    filter(filter: ListFilter): InstanceRecord[] {
      const services = namespaces.get(filter.namespace);
      if (!services) return [];
      const names = filter.service === undefined ? [...services.keys()].sort() : [filter.service];
      const out: InstanceRecord[] = [];
      for (const name of names) {
        const ids = services.get(name);
        if (!ids) continue;
        for (const id of [...ids.keys()].sort()) {
          const r = ids.get(id)!;
          if (filter.status !== undefined && r.status !== filter.status) continue;
          if (filter.zone !== undefined && r.zone !== filter.zone) continue;
          if (filter.tag !== undefined && !r.tags.includes(filter.tag)) continue;
          out.push(r);
        }
      }
      return out;
    },
  };
}

export type InstanceIndex = ReturnType<typeof createInstanceIndex>;
