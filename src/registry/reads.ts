// The reads every backend serves from memory: the instance index and the Services, at the revision memory is at.
import { instanceNotFound } from '../errors.js';
import type { Instance } from '../schemas/instance.js';
import type { Service } from '../schemas/service.js';
import type { InstanceIndex, ListFilter } from './instance-index.js';
import type { ServiceRules } from './services.js';
import { toApiInstance, type InstanceRecord, type ServiceRecord } from './types.js';

export interface ServiceSummary {
  name: string;
  instances: number;
  up: number;
  /** Only for a service that has an explicit Service (a stable address). */
  virtualIP?: string;
  ports?: Service['ports'];
}

export interface NamespaceSummary {
  name: string;
  services: number;
  instances: number;
}

export interface RegistryReadsDeps {
  index: InstanceIndex;
  services: () => ServiceRules;
  /** The revision memory is consistent at. */
  revision: () => number;
  api: (r: InstanceRecord) => Instance;
}

export function createRegistryReads({ index, services: rules, revision, api }: RegistryReadsDeps) {
  const { namespaces, find } = index;
  return {
    get(namespace: string, service: string, id: string): Instance {
      const existing = find(namespace, service, id);
      if (!existing) throw instanceNotFound(namespace, service, id);
      return api(existing);
    },

    /**
     * The instance with this id in a namespace, whatever its service: for protocols that name an instance by
     * id alone (Consul's agent API). Ids are unique per service only; the first service by name wins.
     * Costs one map lookup per service of the namespace.
     */
    findById(namespace: string, id: string): Instance | undefined {
      const services = namespaces.get(namespace);
      if (!services) return undefined;
      for (const name of [...services.keys()].sort()) {
        const record = services.get(name)!.get(id);
        if (record) return toApiInstance(record);
      }
      return undefined;
    },

    /** Instances matching filter, sorted by service then id, consistent at `revision`. */
    list(filter: ListFilter): { revision: number; items: Instance[] } {
      return { revision: revision(), items: index.filter(filter).map(api) };
    },

    /** Every instance of every namespace (or one namespace), for a watch snapshot. */
    snapshot(filter: { namespace?: string; service?: string }): { revision: number; items: Instance[] } {
      const names = filter.namespace === undefined ? [...namespaces.keys()].sort() : [filter.namespace];
      const items: Instance[] = [];
      for (const namespace of names) {
        for (const r of index.filter({ namespace, ...(filter.service === undefined ? {} : { service: filter.service }) })) {
          items.push(api(r));
        }
      }
      return { revision: revision(), items };
    },

    /**
     * The services of a namespace: every name that has instances or an explicit Service (a Service with no
     * instances lists with 0 counts; one with a Service also shows its virtualIP and ports).
     */
    services(namespace: string): { revision: number; items: ServiceSummary[] } {
      const services = namespaces.get(namespace);
      const explicit = rules().inNamespace(namespace);
      const names = new Set([...(services?.keys() ?? []), ...explicit.keys()]);
      const items: ServiceSummary[] = [];
      for (const name of [...names].sort()) {
        const ids = services?.get(name);
        let up = 0;
        for (const r of ids?.values() ?? []) if (r.status === 'up') up++;
        const item: ServiceSummary = { name, instances: ids?.size ?? 0, up };
        const svc = explicit.get(name);
        if (svc) {
          item.virtualIP = svc.virtualIP;
          item.ports = svc.ports;
        }
        items.push(item);
      }
      return { revision: revision(), items };
    },

    /** Namespaces with instances or Services; `services` counts names that have either. */
    namespaces(): { revision: number; items: NamespaceSummary[] } {
      const items: NamespaceSummary[] = [];
      const names = new Set([...namespaces.keys(), ...rules().namespaces()]);
      for (const name of [...names].sort()) {
        const services = namespaces.get(name);
        let instances = 0;
        for (const ids of services?.values() ?? []) instances += ids.size;
        const serviceNames = new Set([...(services?.keys() ?? []), ...rules().inNamespace(name).keys()]);
        items.push({ name, services: serviceNames.size, instances });
      }
      return { revision: revision(), items };
    },

    getService(namespace: string, name: string): Service {
      return rules().get(namespace, name);
    },

    /** The Service of that name, or undefined: for adapters that answer "none" rather than 404 (DNS). */
    findService(namespace: string, name: string): Readonly<ServiceRecord> | undefined {
      return rules().inNamespace(namespace).get(name);
    },

    /** Services for a watch snapshot (every namespace, one, or one Service), sorted by namespace then name. */
    serviceSnapshot(filter: { namespace?: string; service?: string }): Service[] {
      return rules().list(filter);
    },

    /** The --service-cidr in force and how much of it is used. */
    serviceCidrUsage() {
      return rules().usage();
    },

    /**
     * The live service → id → record maps of one namespace, not copied, for adapters that answer straight from
     * memory (DNS). Read them synchronously and keep nothing: the next write changes them in place.
     */
    liveNamespace(namespace: string): ReadonlyMap<string, ReadonlyMap<string, Readonly<InstanceRecord>>> | undefined {
      return namespaces.get(namespace);
    },

    /** Counts of instances by namespace/service/status, for metrics. */
    countByStatus(): { namespace: string; service: string; status: string; count: number }[] {
      const out: { namespace: string; service: string; status: string; count: number }[] = [];
      for (const [namespace, services] of namespaces) {
        for (const [service, ids] of services) {
          const counts = new Map<string, number>();
          for (const r of ids.values()) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
          for (const [status, count] of counts) out.push({ namespace, service, status, count });
        }
      }
      return out;
    },

  };
}
