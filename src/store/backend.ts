// The seam between the registry's rules and a replicated store (etcd). The rules decide what a write is; the
// store owns keys, revisions, leases and the one watch that feeds every replica's memory.
//
// SQLite does not sit behind this interface: it is one process, writes memory first and commits in groups
// (src/registry/registry.ts), with its own lease heap, self-preservation and stall offset. A replicated
// store is the other way round: the store commits first, and memory follows its watch, on every replica alike.
import type { InstanceRecord, ServiceRecord } from '../registry/types.js';
import type { EventReason } from '../schemas/instance.js';
import type { ServiceEventReason } from '../schemas/service.js';

/** A committed change as the store's watch reports it. DELETED carries the record as it last was. */
export type StoreChange =
  | { kind: 'instance'; type: 'ADDED' | 'MODIFIED' | 'DELETED'; reason: EventReason; record: InstanceRecord }
  | { kind: 'service'; type: 'ADDED' | 'MODIFIED' | 'DELETED'; reason: ServiceEventReason; record: ServiceRecord };

/** What the store's watch feeds: the whole state once, then every revision's changes in order. */
export interface StoreSink {
  /** The whole state at `revision` (start-up, or a relist after the watch fell behind compaction). */
  reset(revision: number, instances: InstanceRecord[], services: ServiceRecord[]): void;
  /** The changes of one revision, in revision order, each revision exactly once. */
  apply(revision: number, changes: StoreChange[]): void;
}

/** The outcome of a compare-and-swap write. `current` is what the store holds now when the compare failed. */
export type WriteResult<T> =
  | { ok: true; revision: number }
  | { ok: false; conflict: 'changed'; current: T | undefined }
  | { ok: false; conflict: 'lease_gone' }
  | { ok: false; conflict: 'ip_taken' };

export interface ReplicatedStore {
  /** The smallest lease the store grants; shorter TTLs are raised to it. */
  readonly minTtlSeconds: number;
  /** The last revision this replica's memory applied. */
  readonly revision: number;
  /** Whether the store answered recently (the watch is connected): /readyz. */
  readonly available: boolean;
  /** Loads the state, then follows the watch. Resolves once the state is loaded. */
  start(sink: StoreSink): Promise<void>;
  /** Resolves true once memory applied `revision`, false after timeoutMs. */
  waitForRevision(revision: number, timeoutMs: number): Promise<boolean>;
  /**
   * Writes an instance if the stored one is still `previous` (same revision; undefined = it must not exist), with a
   * fresh lease of record.ttlSeconds, or previous's lease (renewed) when `keepLease`. Resolves once memory applied
   * the write. `previous` must be a record this store handed out (memory, or a lost compare's `current`).
   */
  putInstance(
    record: InstanceRecord,
    reason: 'registered' | 'updated',
    previous: InstanceRecord | undefined,
    keepLease: boolean,
  ): Promise<WriteResult<InstanceRecord>>;
  /** Deletes an instance (a deregistration, told apart from an expiry) if its revision is still expected. */
  deleteInstance(record: InstanceRecord): Promise<WriteResult<InstanceRecord>>;
  /** Renews an instance's lease without a write: the TTL left, or 0 when the lease is gone. */
  keepAlive(record: InstanceRecord): Promise<number>;
  /** Writes a Service; a new one claims its virtual IP in the same transaction (never two Services on one). */
  putService(record: ServiceRecord, reason: 'created' | 'updated', expected: number): Promise<WriteResult<ServiceRecord>>;
  deleteService(record: ServiceRecord): Promise<WriteResult<ServiceRecord>>;
  /** Changes with after < revision <= upTo from the store's history, oldest first; throws revision_compacted. */
  history(after: number, upTo: number): Promise<{ revision: number; changes: StoreChange[] }[]>;
  /** The newest revision known to be compacted away (0 when none is known). */
  compactedRevision(): number;
  close(): Promise<void>;
}
