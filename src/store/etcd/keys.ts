// Where the registry lives in etcd, and what its values hold.
//
// Keys under the prefix:
//   <prefix>/instances/<namespace>/<service>/<id>   the registration (JSON), on an etcd lease of its TTL
//   <prefix>/services/<namespace>/<name>            a Service (JSON)
//   <prefix>/vips/<ip>                              the claim on a virtual IP, created with its Service
//   <prefix>/meta/deregistered                      written in the same transaction as a deregistration, so the
//                                                   watch tells it from an expiry (a lease's delete has none)
import type { IKeyValue } from 'etcd3';
import type { InstanceRecord, ServiceRecord } from '../../registry/types.js';
import type { ServicePort } from '../../schemas/service.js';

interface InstanceValue {
  address: string;
  port: number;
  status: InstanceRecord['status'];
  weight: number;
  zone: string | null;
  tags: string[];
  metadata: Record<string, string>;
  ttlSeconds: number;
  registeredAt: number;
  lastHeartbeatAt: number;
  /** Why this version was written: ADDED/MODIFIED events carry it. */
  reason: 'registered' | 'updated';
}

interface ServiceValue {
  virtualIP: string;
  ports: ServicePort[];
  createdAt: number;
  reason: 'created' | 'updated';
}

export type Decoded =
  | { kind: 'instance'; key: string; record: InstanceRecord; reason: InstanceValue['reason'] }
  | { kind: 'service'; key: string; record: ServiceRecord; reason: ServiceValue['reason'] };

/** The value of an instance key. */
export function encodeInstance(record: InstanceRecord, reason: InstanceValue['reason']): Buffer {
  const value: InstanceValue = {
    address: record.address,
    port: record.port,
    status: record.status,
    weight: record.weight,
    zone: record.zone,
    tags: record.tags,
    metadata: record.metadata,
    ttlSeconds: record.ttlSeconds,
    registeredAt: record.registeredAt,
    lastHeartbeatAt: record.lastHeartbeatAt,
    reason,
  };
  return Buffer.from(JSON.stringify(value));
}

/** The value of a Service key. */
export function encodeService(record: ServiceRecord, reason: ServiceValue['reason']): Buffer {
  const value: ServiceValue = { virtualIP: record.virtualIP, ports: record.ports, createdAt: record.createdAt, reason };
  return Buffer.from(JSON.stringify(value));
}

export function createKeyspace(prefix: string) {
  const root = `${prefix}/`;
  const key = {
    instance: (r: { namespace: string; service: string; id: string }) => `${root}instances/${r.namespace}/${r.service}/${r.id}`,
    service: (r: { namespace: string; name: string }) => `${root}services/${r.namespace}/${r.name}`,
    vip: (ip: string) => `${root}vips/${ip}`,
    deregistered: `${root}meta/deregistered`,
  };

  function decode(kv: IKeyValue): Decoded | undefined {
    const k = kv.key.toString();
    if (!k.startsWith(root)) return undefined;
    const parts = k.slice(root.length).split('/');
    if (parts[0] === 'instances' && parts.length === 4) {
      const v = JSON.parse(kv.value.toString()) as InstanceValue;
      const record: InstanceRecord = {
        namespace: parts[1]!,
        service: parts[2]!,
        id: parts[3]!,
        address: v.address,
        port: v.port,
        status: v.status,
        weight: v.weight,
        zone: v.zone,
        tags: v.tags,
        metadata: v.metadata,
        ttlSeconds: v.ttlSeconds,
        registeredAt: v.registeredAt,
        lastHeartbeatAt: v.lastHeartbeatAt,
        // As of the last write or the last heartbeat this replica served: renewals on other replicas raise no event.
        expiresAt: v.lastHeartbeatAt + v.ttlSeconds * 1000,
        revision: Number(kv.mod_revision),
        createRevision: Number(kv.create_revision),
        lapsedAt: null,
      };
      return { kind: 'instance', key: k, record, reason: v.reason };
    }
    if (parts[0] === 'services' && parts.length === 3) {
      const v = JSON.parse(kv.value.toString()) as ServiceValue;
      const record: ServiceRecord = {
        namespace: parts[1]!,
        name: parts[2]!,
        virtualIP: v.virtualIP,
        ports: v.ports,
        createdAt: v.createdAt,
        revision: Number(kv.mod_revision),
        createRevision: Number(kv.create_revision),
      };
      return { kind: 'service', key: k, record, reason: v.reason };
    }
    return undefined;
  }

  return {
    root,
    /** The end of the prefix range: "/" + 1 is "0". */
    rootEnd: Buffer.from(`${prefix}0`),
    key,
    /** An instance or Service from its key and value; undefined for every other key (claims, markers). */
    decode,
  };
}
