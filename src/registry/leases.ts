import type { InstanceRecord } from './types.js';

interface LeaseEntry {
  deadline: number;
  record: InstanceRecord;
}

/**
 * Leases in a min-heap by deadline (etcd's design): finding what is due costs O(log n) per lease, never a
 * scan of every instance. Heartbeats only move record.expiresAt and leave the heap alone; when an entry
 * comes due, the loop re-queues it at the record's real deadline if it was renewed meanwhile. Entries of
 * records that were replaced or removed are dropped when they surface (`isCurrent`).
 */
export function createLeaseQueue() {
  const heap: LeaseEntry[] = [];

  function up(i: number) {
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.deadline <= entry.deadline) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  function down(i: number) {
    const entry = heap[i]!;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && heap[right]!.deadline < heap[left]!.deadline ? right : left;
      if (heap[child]!.deadline >= entry.deadline) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = entry;
  }

  return {
    add(record: InstanceRecord) {
      heap.push({ deadline: record.expiresAt, record });
      up(heap.length - 1);
    },
    get size() {
      return heap.length;
    },
    /**
     * Pops up to `limit` records whose lease really ended by `now`. isCurrent tells whether a record is still
     * the live one for its key (not replaced or deleted since it was queued).
     */
    takeExpired(now: number, limit: number, isCurrent: (r: InstanceRecord) => boolean): InstanceRecord[] {
      const expired: InstanceRecord[] = [];
      // A record can sit in the heap twice (re-queued after a failed commit): never return it twice.
      const seen = new Set<InstanceRecord>();
      while (heap.length > 0 && expired.length < limit) {
        const top = heap[0]!;
        if (top.deadline > now) break;
        const last = heap.pop()!;
        if (heap.length > 0) {
          heap[0] = last;
          down(0);
        }
        const { record } = top;
        if (!isCurrent(record) || seen.has(record)) continue;
        if (record.expiresAt > now) {
          heap.push({ deadline: record.expiresAt, record });
          up(heap.length - 1);
          continue;
        }
        seen.add(record);
        expired.push(record);
      }
      return expired;
    },
  };
}
