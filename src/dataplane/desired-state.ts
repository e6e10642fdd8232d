// What every virtualIP:port should reach, computed from Services and their instances. Pure: the control loop
// calls it on each (debounced) change and hands the result to one data plane.
import type { Instance } from '../schemas/instance.js';
import type { Service } from '../schemas/service.js';
import { compareInstances, isRoutable } from '../client/routing.js';

/** The part of a Service (the registry's resource of issue 8) the data planes need. */
export type ServiceRecord = Pick<Service, 'namespace' | 'name' | 'virtualIP' | 'ports'>;

export interface Backend {
  /** Instance id, stable across changes: the userspace picker keys its round-robin state on it. */
  id: string;
  address: string;
  /** The instance's port, or the service port's targetPort when it has one. */
  port: number;
  weight: number;
  zone: string | null;
}

export interface ServicePort {
  /** `namespace/service/port`: unique, stable, and safe in nft chain names (DNS labels and digits only). */
  key: string;
  namespace: string;
  service: string;
  portName: string | null;
  virtualIP: string;
  port: number;
  protocol: string;
  /** Routable instances, same-zone ones only when --zone is set and the zone has any. Empty = reject at once. */
  backends: Backend[];
}

export interface DesiredState {
  /** Sorted by key, so equal inputs give equal output and renders are stable. */
  ports: ServicePort[];
}

export function servicePortKey(namespace: string, service: string, port: number): string {
  return `${namespace}/${service}/${port}`;
}

/**
 * Zone preference like Kubernetes' topology-aware routing: same-zone routable instances when there are any,
 * else every routable instance, so a zone without instances degrades to cross-zone traffic instead of failing.
 */
export function computeDesiredState(services: readonly ServiceRecord[], instances: readonly Instance[], options: { zone?: string | undefined } = {}): DesiredState {
  const byService = new Map<string, Instance[]>();
  for (const i of instances) {
    if (!isRoutable(i)) continue;
    const k = `${i.namespace}/${i.service}`;
    let list = byService.get(k);
    if (!list) byService.set(k, (list = []));
    list.push(i);
  }
  const ports: ServicePort[] = [];
  for (const svc of services) {
    let routable = (byService.get(`${svc.namespace}/${svc.name}`) ?? []).sort(compareInstances);
    if (options.zone !== undefined) {
      const local = routable.filter((i) => i.zone === options.zone);
      if (local.length > 0) routable = local;
    }
    for (const p of svc.ports) {
      ports.push({
        key: servicePortKey(svc.namespace, svc.name, p.port),
        namespace: svc.namespace,
        service: svc.name,
        portName: p.name,
        virtualIP: svc.virtualIP,
        port: p.port,
        protocol: p.protocol,
        backends: routable.map((i) => ({
          id: i.id,
          address: i.address,
          port: p.targetPort ?? i.port,
          weight: i.weight,
          zone: i.zone,
        })),
      });
    }
  }
  ports.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { ports };
}

/** Plans are compared as JSON: every field is data, and the order is fixed by computeDesiredState. */
export function sameState(a: DesiredState, b: DesiredState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
