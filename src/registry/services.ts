// The rules of explicit Services: what a PUT means, when it is a change, who gets which virtual IP.
// Memory only; every change goes through the registry's one commit path (passed in as `commit`).
import { RollcallError, serviceNotFound } from '../errors.js';
import type { PutServiceInput, Service, ServicePort } from '../schemas/service.js';
import { toApiService, type ServiceChangeEvent, type ServiceRecord } from './types.js';
import { createVirtualIpAllocator, parseCidr, type Cidr } from './virtual-ips.js';

export const DEFAULT_SERVICE_CIDR = '127.77.0.0/16';

export interface ServiceRulesOptions {
  cidr?: Cidr;
  restored: ServiceRecord[];
  now: () => number;
  commit: (type: ServiceChangeEvent['type'], reason: ServiceChangeEvent['reason'], record: ServiceRecord) => ServiceChangeEvent;
}

/** Ports as stored: every optional field spelled out (null = "not said"), so equal Services compare equal. */
function normalizePorts(ports: PutServiceInput['ports']): ServicePort[] {
  return ports.map((p) => ({ name: p.name ?? null, port: p.port, targetPort: p.targetPort ?? null, protocol: p.protocol ?? 'tcp' }));
}

function samePorts(a: ServicePort[], b: ServicePort[]): boolean {
  return (
    a.length === b.length &&
    a.every((p, i) => {
      const q = b[i]!;
      return p.name === q.name && p.port === q.port && p.targetPort === q.targetPort && p.protocol === q.protocol;
    })
  );
}

export function createServiceRules(options: ServiceRulesOptions) {
  const cidr = options.cidr ?? (parseCidr(DEFAULT_SERVICE_CIDR) as Cidr);
  const ips = createVirtualIpAllocator(cidr);
  // namespace → name → Service.
  const byNamespace = new Map<string, Map<string, ServiceRecord>>();

  function find(namespace: string, name: string): ServiceRecord | undefined {
    return byNamespace.get(namespace)?.get(name);
  }

  function remember(r: ServiceRecord): void {
    let names = byNamespace.get(r.namespace);
    if (!names) byNamespace.set(r.namespace, (names = new Map()));
    names.set(r.name, r);
  }

  function forget(r: ServiceRecord): void {
    const names = byNamespace.get(r.namespace);
    names?.delete(r.name);
    if (names?.size === 0) byNamespace.delete(r.namespace);
  }

  for (const r of options.restored) {
    remember(r);
    ips.hold(r.virtualIP);
  }

  /** The address a PUT ends up with; throws the 4xx that explains why it cannot have the one it asked for. */
  function chooseVirtualIp(namespace: string, name: string, existing: ServiceRecord | undefined, requested: string | undefined): string {
    if (existing) {
      if (requested === undefined || ips.canonical(requested) === existing.virtualIP) return existing.virtualIP;
      throw new RollcallError(
        'virtual_ip_immutable',
        `Service "${name}" in namespace "${namespace}" has virtual IP ${existing.virtualIP} for its whole life; delete and re-create it to move it to ${requested}.`,
      );
    }
    if (requested === undefined) {
      const ip = ips.allocate();
      if (ip === undefined) {
        throw new RollcallError(
          'service_cidr_full',
          `Every address of the service range ${cidr.text} is in use; delete a Service or restart the registry with a larger --service-cidr.`,
        );
      }
      return ip;
    }
    const result = ips.reserve(requested);
    if (result === 'out_of_range') {
      throw new RollcallError(
        'virtual_ip_out_of_range',
        `virtualIP ${requested} is not a usable address of the service range ${cidr.text} (the network and broadcast addresses are never used); omit virtualIP to get one allocated.`,
        [{ path: 'body.virtualIP', message: `must be inside ${cidr.text}` }],
      );
    }
    if (result === 'taken') {
      throw new RollcallError(
        'virtual_ip_taken',
        `virtualIP ${requested} already belongs to another Service; ask for a free one or omit virtualIP to get one allocated.`,
      );
    }
    return ips.canonical(requested)!;
  }

  return {
    toApi: toApiService,

    /**
     * What a PUT would write, without writing it: the Service unchanged, or the record to commit (a new one has
     * its address claimed in memory: `claimed`, handed back with unclaim() when the write does not happen).
     */
    plan(
      namespace: string,
      name: string,
      input: PutServiceInput,
    ): { service: Service } | { type: 'ADDED' | 'MODIFIED'; reason: 'created' | 'updated'; record: ServiceRecord; claimed?: string } {
      const existing = find(namespace, name);
      const ports = normalizePorts(input.ports);
      const virtualIP = chooseVirtualIp(namespace, name, existing, input.virtualIP);
      if (existing && samePorts(existing.ports, ports)) return { service: toApiService(existing) };
      if (existing) return { type: 'MODIFIED', reason: 'updated', record: { ...existing, ports } };
      const record: ServiceRecord = { namespace, name, virtualIP, ports, createdAt: options.now(), revision: 0, createRevision: 0 };
      return { type: 'ADDED', reason: 'created', record, claimed: virtualIP };
    },

    /** Hands back an address plan() claimed for a write that did not happen (unless a Service holds it now). */
    unclaim(ip: string): void {
      for (const names of byNamespace.values()) for (const r of names.values()) if (r.virtualIP === ip) return;
      ips.release(ip);
    },

    put(namespace: string, name: string, input: PutServiceInput): { service: Service; created: boolean } {
      const plan = this.plan(namespace, name, input);
      if ('service' in plan) return { service: plan.service, created: false };
      try {
        const event = options.commit(plan.type, plan.reason, plan.record);
        return { service: event.service, created: plan.type === 'ADDED' };
      } catch (err) {
        // Nothing was written: hand the address back so it is not lost until a restart.
        if (plan.claimed !== undefined) ips.release(plan.claimed);
        throw err;
      }
    },

    get(namespace: string, name: string): Service {
      const r = find(namespace, name);
      if (!r) throw serviceNotFound(namespace, name);
      return toApiService(r);
    },

    delete(namespace: string, name: string): void {
      const r = find(namespace, name);
      if (!r) throw serviceNotFound(namespace, name);
      options.commit('DELETED', 'deleted', r);
    },

    /**
     * Called by the commit path once a change is in the batch: memory follows what is being written. Returns
     * the undo, run when the batch fails (a full disk), so memory never runs ahead of disk.
     */
    apply(type: ServiceChangeEvent['type'], r: ServiceRecord): () => void {
      const previous = find(r.namespace, r.name);
      if (type === 'DELETED') {
        forget(r);
        ips.release(r.virtualIP);
        return () => {
          remember(r);
          ips.hold(r.virtualIP);
        };
      }
      remember(r);
      // A Service another replica created (etcd) holds its address here too; a no-op when put() claimed it.
      ips.hold(r.virtualIP);
      return () => {
        if (previous) remember(previous);
        else {
          forget(r);
          ips.release(r.virtualIP);
        }
      };
    },

    list(filter: { namespace?: string; service?: string }): Service[] {
      const namespaces = filter.namespace === undefined ? [...byNamespace.keys()].sort() : [filter.namespace];
      const out: Service[] = [];
      for (const ns of namespaces) {
        const names = byNamespace.get(ns);
        if (!names) continue;
        const wanted = filter.service === undefined ? [...names.keys()].sort() : [filter.service];
        for (const n of wanted) {
          const r = names.get(n);
          if (r) out.push(toApiService(r));
        }
      }
      return out;
    },

    inNamespace(namespace: string): ReadonlyMap<string, ServiceRecord> {
      return byNamespace.get(namespace) ?? new Map();
    },

    namespaces(): Iterable<string> {
      return byNamespace.keys();
    },

    usage(): { cidr: string; capacity: number; used: number } {
      const { capacity, used } = ips.stats();
      return { cidr: cidr.text, capacity: Number(capacity), used: Number(used) };
    },
  };
}

export type ServiceRules = ReturnType<typeof createServiceRules>;
