import type { EventReason, EventType, Instance, InstanceStatus } from '../schemas/instance.js';

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
  /**
   * Lease deadline in lease time (wall time minus the stalls discounted so far, see pauseLeases). Not
   * persisted: a restart grants every restored instance a fresh full TTL.
   */
  expiresAt: number;
  revision: number;
  createRevision: number;
  /**
   * When the lease lapsed while the registry was in self-preservation (wall time), else null. A lapsed
   * instance stays listed until it renews, is deregistered, or protection ends and it expires. Not persisted.
   */
  lapsedAt: number | null;
}

/** A committed change, as the event log stores it and watchers receive it. */
export interface ChangeEvent {
  type: EventType;
  revision: number;
  reason: EventReason;
  instance: Instance;
}

/** leaseOffsetMs turns the lease-time deadline back into wall time. */
export function toApiInstance(r: InstanceRecord, leaseOffsetMs = 0): Instance {
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
    expiresAt: new Date(r.expiresAt + leaseOffsetMs).toISOString(),
    revision: r.revision,
    createRevision: r.createRevision,
    // Only present while lapsed, so the instances of clients that know nothing of self-preservation look
    // exactly as before.
    ...(r.lapsedAt === null ? {} : { lapsed: true, lapsedAt: new Date(r.lapsedAt).toISOString() }),
  };
}
