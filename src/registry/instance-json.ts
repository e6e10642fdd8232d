// Pre-serialized instances: each record's API JSON is built once and reused by every list, snapshot and
// long-poll that reads it, so a read of 10,000 instances is concatenation, not 10,000 conversions.
//
// Never stale, by construction: the cache is keyed to the record object, and every committed change replaces
// the record with a new object (registry.commit), so a change drops its cached form in the same step. The one
// in-place mutation is the lease (renew, startLeases: lastHeartbeatAt and expiresAt), and the API also shows
// expiresAt shifted by the lease offset (pauseLeases). So the JSON is cached in two parts around those two
// fields, which are spliced in per read; the whole text is memoized for the times it was last built with.
import type { Instance } from '../schemas/instance.js';
import { toApiInstance, type InstanceRecord } from './types.js';

interface Cached {
  /** `{"namespace":…,"registeredAt":"…","lastHeartbeatAt":"` */
  head: string;
  /** `","revision":…}` */
  tail: string;
  heartbeatAt: number;
  expiresAt: number;
  text: string;
}

const HEARTBEAT_KEY = ',"lastHeartbeatAt":"';
const EXPIRES_KEY = '","expiresAt":"';
const AFTER_EXPIRES = '","revision":';

const cache = new WeakMap<InstanceRecord, Cached>();

/**
 * The JSON text of toApiInstance(record, leaseOffsetMs), byte for byte (the same keys in the same order), from
 * the record's cached parts; only the lease times are formatted again, and only when they moved.
 */
export function instanceJson(record: InstanceRecord, leaseOffsetMs: number): string {
  const expiresAt = record.expiresAt + leaseOffsetMs;
  let cached = cache.get(record);
  if (cached === undefined) {
    cached = split(toApiInstance(record, leaseOffsetMs), record.lastHeartbeatAt, expiresAt);
    cache.set(record, cached);
    return cached.text;
  }
  if (cached.heartbeatAt !== record.lastHeartbeatAt || cached.expiresAt !== expiresAt) {
    cached.heartbeatAt = record.lastHeartbeatAt;
    cached.expiresAt = expiresAt;
    cached.text = `${cached.head}${new Date(record.lastHeartbeatAt).toISOString()}${EXPIRES_KEY}${new Date(expiresAt).toISOString()}${cached.tail}`;
  }
  return cached.text;
}

function split(instance: Instance, heartbeatAt: number, expiresAt: number): Cached {
  const text = JSON.stringify(instance);
  // A tag or metadata value may contain these very characters, so search from the end: after the real keys
  // only numbers, a boolean and an ISO time follow (revision, createRevision, lapsed, lapsedAt).
  const heartbeatKey = text.lastIndexOf(HEARTBEAT_KEY);
  const afterExpires = text.lastIndexOf(AFTER_EXPIRES);
  return {
    head: text.slice(0, heartbeatKey + HEARTBEAT_KEY.length),
    tail: text.slice(afterExpires),
    heartbeatAt,
    expiresAt,
    text,
  };
}

/** `{"revision":R,"items":[…]}`: the InstanceList body, as JSON.stringify({ revision, items }) would write it. */
export function instanceListJson(revision: number, records: readonly InstanceRecord[], leaseOffsetMs: number): string {
  const parts = new Array<string>(records.length);
  for (let i = 0; i < records.length; i++) parts[i] = instanceJson(records[i]!, leaseOffsetMs);
  return `{"revision":${revision},"items":[${parts.join(',')}]}`;
}
