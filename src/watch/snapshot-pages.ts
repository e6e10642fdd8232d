// Watch snapshots shared per (filter, revision), built page by page across event-loop turns, a bounded few at
// a time, and sent at a bounded number of bytes per turn. A reconnect storm (a load balancer fleet restarting)
// then costs one serialization per filter instead of one per watcher, and never holds the event loop long
// enough to delay heartbeats: each turn does at most one page of work per build and BYTES_PER_TURN of writes.
//
// Atomicity with the subscription is kept by the caller (session.ts): it acquires the snapshot and subscribes
// in one synchronous step with nothing uncommitted (registry.whenSettled). acquire() captures the records at
// that revision at once (references only, O(n)); the pages are formatted later from those references, which
// no commit changes (a commit replaces a record, it never edits one; heartbeats move only lease times, which
// are not changes).
import type { InstanceRecord } from '../registry/types.js';
import type { Service } from '../schemas/service.js';
import { wantsKind, type WatchFilter } from './hub.js';

/** What the snapshots are read from: the registry. */
export interface SnapshotSource {
  readonly revision: number;
  snapshotRecords(filter: { namespace?: string; service?: string }): { revision: number; groups: InstanceRecord[][] };
  recordJson(record: InstanceRecord): string;
  serviceSnapshot(filter: { namespace?: string; service?: string }): Service[];
}

export interface SnapshotOptions {
  /** Instances formatted per page (one page per event-loop turn per build). */
  pageSize?: number;
  /** Snapshots being formatted at once; more wait their turn. */
  maxBuilding?: number;
  /** Snapshot bytes handed to sockets per event-loop turn, over all watchers. */
  bytesPerTurn?: number;
  /** A finished snapshot is kept for later watchers of the same filter and revision while all kept ones fit here. */
  retainBytes?: number;
}

/** One SNAPSHOT message's JSON, in parts whose concatenation is the message, shared by every reader. */
export class SharedSnapshot {
  readonly parts: Buffer[] = [];
  done = false;
  bytes = 0;
  readers = 0;
  private waiters: (() => void)[] = [];
  constructor(
    readonly revision: number,
    /** The filter it answers, as the cache keys it. */
    readonly key: string,
  ) {}

  push(part: Buffer, last: boolean): void {
    this.parts.push(part);
    this.bytes += part.length;
    if (last) this.done = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The part at index, once built; undefined past the last one. */
  async part(index: number): Promise<{ part: Buffer; last: boolean } | undefined> {
    while (index >= this.parts.length) {
      if (this.done) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return { part: this.parts[index]!, last: this.done && index === this.parts.length - 1 };
  }
}

const filterKey = (f: WatchFilter) => JSON.stringify([f.namespace ?? null, f.service ?? null, [...(f.resources ?? ['instances'])].sort()]);

export function createSnapshotCache(source: SnapshotSource, options: SnapshotOptions = {}) {
  const pageSize = options.pageSize ?? 1000;
  const maxBuilding = options.maxBuilding ?? 2;
  const bytesPerTurn = options.bytesPerTurn ?? 8 * 1024 * 1024;
  const retainBytes = options.retainBytes ?? 64 * 1024 * 1024;
  const byFilter = new Map<string, SharedSnapshot>();
  // Finished snapshots kept for later watchers, and their bytes (at most retainBytes).
  const retainedSet = new Set<SharedSnapshot>();
  let retained = 0;
  let building = 0;
  const queued: (() => void)[] = [];

  // The write budget: spent by send(), refilled once per turn; those over it wait for the next turn, in order.
  let budget = bytesPerTurn;
  let refill: NodeJS.Immediate | undefined;
  const overBudget: { bytes: number; go: () => void }[] = [];
  function refillBudget() {
    refill = undefined;
    budget = bytesPerTurn;
    while (overBudget.length > 0 && budget > 0) {
      const next = overBudget.shift()!;
      budget -= next.bytes;
      next.go();
    }
    if (overBudget.length > 0 || budget <= 0) refill ??= setImmediate(refillBudget);
  }

  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

  async function build(snapshot: SharedSnapshot, groups: InstanceRecord[][], servicesJson: string | undefined) {
    if (building >= maxBuilding) await new Promise<void>((resolve) => queued.push(resolve));
    building++;
    try {
      let parts: string[] = [`{"type":"SNAPSHOT","revision":${snapshot.revision},"items":[`];
      let inPage = 0;
      let first = true;
      for (const group of groups) {
        // Sorted here, not at capture: the capture stays O(n) inside the synchronous subscribe step.
        group.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        for (const record of group) {
          parts.push(first ? source.recordJson(record) : `,${source.recordJson(record)}`);
          first = false;
          if (++inPage === pageSize) {
            snapshot.push(Buffer.from(parts.join('')), false);
            parts = [];
            inPage = 0;
            await turn();
          }
        }
      }
      parts.push(servicesJson === undefined ? ']}' : `],"services":${servicesJson}}`);
      snapshot.push(Buffer.from(parts.join('')), true);
    } finally {
      building--;
      queued.shift()?.();
    }
  }

  return {
    /**
     * The snapshot of filter at the source's current revision: the one being built or kept for it, or a new
     * one. Call it where the source is settled, in the same synchronous step as the subscription.
     */
    acquire(filter: WatchFilter): SharedSnapshot {
      const key = filterKey(filter);
      const current = byFilter.get(key);
      if (current && current.revision === source.revision) {
        current.readers++;
        return current;
      }
      if (current) forget(current);
      const place = { ...(filter.namespace === undefined ? {} : { namespace: filter.namespace }), ...(filter.service === undefined ? {} : { service: filter.service }) };
      const { revision, groups } = wantsKind(filter, 'instances') ? source.snapshotRecords(place) : { revision: source.revision, groups: [] };
      const servicesJson = wantsKind(filter, 'services') ? JSON.stringify(source.serviceSnapshot(place)) : undefined;
      const snapshot = new SharedSnapshot(revision, key);
      snapshot.readers = 1;
      byFilter.set(key, snapshot);
      void build(snapshot, groups, servicesJson);
      return snapshot;
    },

    /** A reader is done with snapshot: it is kept for the next watcher only while the kept ones stay small. */
    release(snapshot: SharedSnapshot): void {
      snapshot.readers--;
      if (snapshot.readers > 0) return;
      // Kept ones of an older revision can serve nobody any more.
      for (const kept of retainedSet) if (kept.revision !== source.revision && kept.readers === 0) forget(kept);
      const key = snapshot.key;
      if (byFilter.get(key) !== snapshot) return;
      if (!snapshot.done || retained + snapshot.bytes > retainBytes) {
        // Still building with nobody left to read it: it finishes (cheaply, pages are small) and is dropped.
        byFilter.delete(key);
        return;
      }
      if (!retainedSet.has(snapshot)) {
        retainedSet.add(snapshot);
        retained += snapshot.bytes;
      }
    },

    /** Resolves when `bytes` more may be written this turn (at once while the turn's budget lasts). */
    send(bytes: number): Promise<void> {
      if (budget > 0 && overBudget.length === 0) {
        budget -= bytes;
        if (budget <= 0) refill ??= setImmediate(refillBudget);
        return Promise.resolve();
      }
      refill ??= setImmediate(refillBudget);
      return new Promise((go) => overBudget.push({ bytes, go }));
    },

    stats() {
      return { cached: byFilter.size, retainedBytes: retained, building, queued: queued.length };
    },
  };

  function forget(snapshot: SharedSnapshot) {
    if (byFilter.get(snapshot.key) === snapshot) byFilter.delete(snapshot.key);
    if (retainedSet.delete(snapshot)) retained -= snapshot.bytes;
  }
}

export type SnapshotCache = ReturnType<typeof createSnapshotCache>;
