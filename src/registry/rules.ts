// The rules of a registration that every backend shares: what PUT and PATCH mean, and when a write is no change.
import type { PatchInput } from '../schemas/instance.js';
import type { InstanceRecord } from './types.js';

/** What a registration says, without the times and revisions the registry adds. */
export type RegistrationFields = Omit<InstanceRecord, 'registeredAt' | 'lastHeartbeatAt' | 'expiresAt' | 'revision' | 'createRevision' | 'lapsedAt'>;

/** The given fields over base: PUT applies them over the defaults, PATCH over the current registration. */
export function applyChanges<T extends RegistrationFields>(base: T, input: PatchInput): T {
  return {
    ...base,
    status: input.status ?? base.status,
    weight: input.weight ?? base.weight,
    zone: input.zone === undefined ? base.zone : input.zone,
    tags: input.tags ?? base.tags,
    metadata: input.metadata ?? base.metadata,
    ttlSeconds: input.ttlSeconds ?? base.ttlSeconds,
  };
}

/** An identical PUT (or a PATCH that changes nothing) only renews the lease: no revision, no event. */
export function sameRegistration(a: RegistrationFields, b: RegistrationFields): boolean {
  return (
    a.address === b.address &&
    a.port === b.port &&
    a.status === b.status &&
    a.weight === b.weight &&
    a.zone === b.zone &&
    a.ttlSeconds === b.ttlSeconds &&
    JSON.stringify(a.tags) === JSON.stringify(b.tags) &&
    JSON.stringify(a.metadata) === JSON.stringify(b.metadata)
  );
}
