// Watch snapshots shared per (filter, revision), built page by page across event-loop turns, a bounded few at
// a time, and sent at a bounded number of bytes per turn. A reconnect storm (a load balancer fleet restarting)
// then costs one serialization per filter instead of one per watcher, and never holds the event loop long
// enough to delay heartbeats: each turn does at most one page of work per build, and the snapshot bytes waiting
// for the kernel are bounded (windowBytes) however many watchers read.
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
  /** Snapshot bytes written to sockets and not yet taken by the kernel, over all watchers. */
  windowBytes?: number;
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

  /** The build failed (a bug, not bad input): readers get the error instead of waiting forever. */
  fail(err: unknown): void {
    this.error = err ?? new Error('snapshot build failed');
    this.push(Buffer.alloc(0), true);
  }

  error: unknown;

  /** The part at index, once built; undefined past the last one. Throws when the build failed. */
  async part(index: number): Promise<{ part: Buffer; last: boolean } | undefined> {
    if (this.error !== undefined) throw this.error;
    while (index >= this.parts.length) {
      if (this.done) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return { part: this.parts[index]!, last: this.done && index === this.parts.length - 1 };
  }
}

/** A snapshot write the kernel has not taken after this long stops counting against the shared window. */
const STUCK_WRITE_MS = 10_000;

const filterKey = (f: WatchFilter) => JSON.stringify([f.namespace ?? null, f.service ?? null, [...(f.resources ?? ['instances'])].sort()]);

export function createSnapshotCache(source: SnapshotSource, options: SnapshotOptions = {}) {
  const pageSize = options.pageSize ?? 500;
  const maxBuilding = options.maxBuilding ?? 2;
  const windowBytes = options.windowBytes ?? 8 * 1024 * 1024;
  const retainBytes = options.retainBytes ?? 64 * 1024 * 1024;
  const byFilter = new Map<string, SharedSnapshot>();
  // Finished snapshots kept for later watchers, and their bytes (at most retainBytes).
  const retainedSet = new Set<SharedSnapshot>();
  let retained = 0;
  let building = 0;
  const queued: (() => void)[] = [];

  // The write window: snapshot bytes handed to sockets and not yet taken by the kernel (inFlight), and bytes
  // handed over in this turn (turnBytes), both at most windowBytes over every watcher. libuv flushes every
  // writable socket in one poll phase, and a write the kernel takes at once completes on nextTick, so without
  // the per-turn bound a chain of write → done → next write would copy gigabytes without yielding.
  let inFlight = 0;
  let turnBytes = 0;
  let tick: NodeJS.Immediate | undefined;
  const waiting: { bytes: number; go: () => void }[] = [];
  const fits = (bytes: number) => (inFlight === 0 && turnBytes === 0) || (inFlight + bytes <= windowBytes && turnBytes + bytes <= windowBytes);
  function take(bytes: number) {
    inFlight += bytes;
    turnBytes += bytes;
    tick ??= setImmediate(nextTurn);
  }
  function nextTurn() {
    tick = undefined;
    turnBytes = 0;
    while (waiting.length > 0 && fits(waiting[0]!.bytes)) {
      const next = waiting.shift()!;
      take(next.bytes);
      next.go();
    }
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
    } catch (err) {
      forget(snapshot);
      snapshot.fail(err);
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

    /** Runs write (a send that resolves once the kernel took the bytes) when the write window has room. */
    async send(bytes: number, write: () => Promise<void>): Promise<void> {
      if (waiting.length === 0 && fits(bytes)) take(bytes);
      else await new Promise<void>((go) => waiting.push({ bytes, go }));
      // A watcher that stops reading must not hold the window for the others: its share is freed after a
      // while (its bytes then wait in its own buffer: memory, bounded per watcher, not copying time). The
      // caller still waits for its own write, so it sends no further part meanwhile.
      let freed = false;
      const free = () => {
        if (freed) return;
        freed = true;
        clearTimeout(timer);
        inFlight -= bytes;
        // Admitted on the next turn, never in this one (see the window above).
        if (waiting.length > 0) tick ??= setImmediate(nextTurn);
      };
      const timer = setTimeout(free, STUCK_WRITE_MS);
      try {
        await write();
      } finally {
        free();
      }
    },

    stats() {
      return { cached: byFilter.size, retainedBytes: retained, building, queued: queued.length, inFlight };
    },
  };

  function forget(snapshot: SharedSnapshot) {
    if (byFilter.get(snapshot.key) === snapshot) byFilter.delete(snapshot.key);
    if (retainedSet.delete(snapshot)) retained -= snapshot.bytes;
  }
}

export type SnapshotCache = ReturnType<typeof createSnapshotCache>;
