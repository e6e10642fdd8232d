import type { EventReason, EventType, Instance, InstanceStatus } from '../schemas/instance.js';
import type { Service, ServiceEventReason, ServicePort } from '../schemas/service.js';

/** An instance as the registry holds it: timestamps as epoch milliseconds. */
export interface InstanceRecord {
  namespace: string;
  service: string;
  id: string;
  address: string;
  port: number;
  status: InstanceStatus;
  weight: number;
  zone: string | null;
  tags: string[];
  metadata: Record<string, string>;
  ttlSeconds: number;
  registeredAt: number;
  lastHeartbeatAt: number;
  /** Lease deadline. Not persisted: a restart grants every restored instance a fresh full TTL. */
  expiresAt: number;
  revision: number;
  createRevision: number;
}

/** A committed change, as the event log stores it and watchers receive it. */
export interface ChangeEvent {
  type: EventType;
  revision: number;
  reason: EventReason;
  instance: Instance;
}

export function toApiInstance(r: InstanceRecord): Instance {
  return {
    namespace: r.namespace,
    service: r.service,
    id: r.id,
    address: r.address,
    port: r.port,
    status: r.status,
    weight: r.weight,
    zone: r.zone,
    tags: r.tags,
    metadata: r.metadata,
    ttlSeconds: r.ttlSeconds,
    registeredAt: new Date(r.registeredAt).toISOString(),
    lastHeartbeatAt: new Date(r.lastHeartbeatAt).toISOString(),
    expiresAt: new Date(r.expiresAt).toISOString(),
    revision: r.revision,
    createRevision: r.createRevision,
  };
}

/** A Service as the registry holds it: createdAt as epoch milliseconds. */
export interface ServiceRecord {
  namespace: string;
  name: string;
  virtualIP: string;
  ports: ServicePort[];
  createdAt: number;
  revision: number;
  createRevision: number;
}

/** A committed change to a Service: carries `service` where an instance change carries `instance`. */
export interface ServiceChangeEvent {
  type: EventType;
  revision: number;
  reason: ServiceEventReason;
  service: Service;
}

/** Any committed change: what the event log, the hub and watchers carry. */
export type RegistryChange = ChangeEvent | ServiceChangeEvent;

export function isServiceChange(e: RegistryChange): e is ServiceChangeEvent {
  return 'service' in e;
}

/** The namespace and service name a change is about, whatever its kind: what watch filters match on. */
export function changeScope(e: RegistryChange): { kind: 'instances' | 'services'; namespace: string; service: string } {
  return isServiceChange(e)
    ? { kind: 'services', namespace: e.service.namespace, service: e.service.name }
    : { kind: 'instances', namespace: e.instance.namespace, service: e.instance.service };
}

export function toApiService(r: ServiceRecord): Service {
  return {
    namespace: r.namespace,
    name: r.name,
    virtualIP: r.virtualIP,
    ports: r.ports,
    revision: r.revision,
    createRevision: r.createRevision,
    createdAt: new Date(r.createdAt).toISOString(),
  };
}
