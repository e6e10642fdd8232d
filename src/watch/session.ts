// One watcher's life: snapshot or resume from the event log, then live events, bookmarks and backpressure.
// Shared by the WebSocket and Server-Sent Events transports, which differ only in framing (the sink).
import type { Registry } from '../registry/registry.js';
import type { Instance } from '../schemas/instance.js';
import { PublishedEvent, PublishedNotice, wantsKind, type WatchFilter, type WatchHub } from './hub.js';

export type WatchErrorCode = 'revision_compacted' | 'revision_ahead' | 'store_unavailable';

/** Close code sent to a watcher that fell too far behind; it resumes with sinceRevision. */
export const SLOW_CONSUMER_CLOSE = 4008;
/** Close code sent to a WebSocket watcher that did not answer a ping within one interval (dead or not reading). */
export const PING_TIMEOUT_CLOSE = 4009;

export interface WatchSink {
  /** Sends a change event or notice in its cached wire form (built once for every watcher). */
  sendEvent(event: PublishedEvent | PublishedNotice): void;
  sendMessage(message: Record<string, unknown>, id?: number): void;
  /** Bytes accepted but not yet handed to the kernel. */
  buffered(): number;
  /** Ends the stream; code/reason are used where the transport has them. */
  close(code: number, reason: string): void;
}

export interface WatchSessionOptions {
  registry: Registry;
  hub: WatchHub;
  sink: WatchSink;
  filter: WatchFilter;
  sinceRevision?: number;
  bookmarkMs: number;
  maxBufferedBytes: number;
  onEventSent?: () => void;
  onSlowConsumer?: () => void;
}

/** How long a resume ahead of this registry's revision waits for it before answering revision_ahead. */
const AHEAD_GRACE_MS = 2000;

/** Events read from the event log per page while catching up; the loop yields between pages. */
const CATCH_UP_PAGE = 500;

export function startWatchSession(options: WatchSessionOptions): { stop(): void } {
  const { registry, hub, sink, filter, maxBufferedBytes, bookmarkMs } = options;
  let stopped = false;
  let catchingUp = false;
  let pending: (PublishedEvent | PublishedNotice)[] = [];
  let pendingBytes = 0;
  let lastSentAt = Date.now();
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let unsubscribeEvents = () => {};
  let unsubscribeNotices = () => {};
  const unsubscribe = () => {
    unsubscribeEvents();
    unsubscribeNotices();
  };

  const stop = () => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    clearTimeout(bookmarkTimer);
    pending = [];
  };

  const fail = (code: WatchErrorCode, message: string) => {
    sink.sendMessage({ type: 'ERROR', code, message });
    stop();
    sink.close(1000, code);
  };

  const tooSlow = () => {
    options.onSlowConsumer?.();
    stop();
    sink.close(SLOW_CONSUMER_CLOSE, 'slow_consumer: resume with sinceRevision');
  };

  const send = (event: PublishedEvent | PublishedNotice) => {
    sink.sendEvent(event);
    lastSentAt = Date.now();
    options.onEventSent?.();
    if (sink.buffered() > maxBufferedBytes) tooSlow();
  };

  const deliver = (event: PublishedEvent | PublishedNotice) => {
    if (stopped) return;
    if (catchingUp) {
      pending.push(event);
      pendingBytes += event.json.length;
      if (pendingBytes > maxBufferedBytes) tooSlow();
      return;
    }
    send(event);
  };

  // A bookmark tells an idle watcher "you have seen everything up to R", so it can resume from a recent
  // revision. Rescheduled lazily from lastSentAt, so sending events costs no timer work.
  const scheduleBookmark = (delay: number) => {
    bookmarkTimer = setTimeout(() => {
      if (stopped) return;
      const idle = Date.now() - lastSentAt;
      if (idle >= bookmarkMs && !catchingUp) {
        sink.sendMessage({ type: 'BOOKMARK', revision: registry.revision }, registry.revision);
        lastSentAt = Date.now();
        if (sink.buffered() > maxBufferedBytes) return tooSlow();
        scheduleBookmark(bookmarkMs);
      } else {
        scheduleBookmark(Math.max(bookmarkMs - idle, 10));
      }
    }, delay);
    bookmarkTimer.unref();
  };

  const subscribe = () => {
    unsubscribeEvents = hub.subscribe(filter, deliver);
    unsubscribeNotices = hub.subscribeNotices(deliver);
  };

  const since = options.sinceRevision;
  const begin = () => {
    if (stopped) return;
    if (since === undefined) {
      // Snapshot and subscription happen in one synchronous step with nothing uncommitted in memory:
      // no change can fall between them or be counted twice.
      // `items` (instances) is always there, empty when only Services are watched; `services` only when asked.
      const snapshot = wantsKind(filter, 'instances') ? registry.snapshot(filter) : { revision: registry.revision, items: [] };
      const message: Record<string, unknown> = { type: 'SNAPSHOT', revision: snapshot.revision, items: snapshot.items satisfies Instance[] };
      if (wantsKind(filter, 'services')) message.services = registry.serviceSnapshot(filter);
      subscribe();
      sink.sendMessage(message, snapshot.revision);
      lastSentAt = Date.now();
      if (sink.buffered() > maxBufferedBytes) return tooSlow();
    } else if (since > registry.revision) {
      return fail(
        'revision_ahead',
        `sinceRevision ${since} is ahead of the registry's revision ${registry.revision}: the registry lost its data or the client is confused. List again and watch from the listed revision.`,
      );
    } else if (since < registry.compactedRevision()) {
      return fail(
        'revision_compacted',
        `sinceRevision ${since} is older than the retained history (oldest resumable revision: ${registry.compactedRevision()}). List again and watch from the listed revision.`,
      );
    } else {
      // Subscribe first (live events wait in `pending`), then replay the log up to the subscription point.
      const upTo = registry.revision;
      catchingUp = true;
      subscribe();
      void catchUp(since, upTo);
    }
    // A watcher arriving during self-preservation learns it at once (after its snapshot or replay).
    if (registry.protection().active) deliver(new PublishedNotice({ type: 'PROTECTION', active: true, revision: registry.revision }));
    scheduleBookmark(bookmarkMs);
  };
  const start = async () => {
    // On etcd a replica's memory may trail the one the watcher came from by a few milliseconds: give it a moment
    // to catch up before calling the revision one it never saw.
    if (since !== undefined && since > registry.revision) await registry.waitForRevision(since, AHEAD_GRACE_MS);
    await registry.whenSettled(begin);
  };
  void start();

  async function catchUp(from: number, upTo: number) {
    let cursor = from;
    while (!stopped) {
      // Writes between pages may have trimmed the log past our cursor: then the replay would have a hole.
      if (registry.compactedRevision() > cursor) {
        return fail('revision_compacted', `History up to revision ${registry.compactedRevision()} was trimmed while resuming; list again.`);
      }
      let page;
      try {
        page = await registry.eventsAfter(filter, cursor, upTo, CATCH_UP_PAGE);
      } catch (err) {
        // The etcd backend learns of compaction only when it reads the history; anything else (etcd gone) ends
        // the stream too: the client resumes from the last revision it saw, on this replica or another.
        if (stopped) return;
        const code = (err as { code?: unknown }).code === 'revision_compacted' ? 'revision_compacted' : 'store_unavailable';
        return fail(code, (err as Error).message);
      }
      if (stopped) return;
      for (const event of page) {
        if (stopped) return;
        send(new PublishedEvent(event));
        cursor = event.revision;
      }
      if (page.length < CATCH_UP_PAGE) break;
      cursor = page[page.length - 1]!.revision;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (stopped) return;
    catchingUp = false;
    const queued = pending;
    pending = [];
    pendingBytes = 0;
    for (const event of queued) {
      if (stopped) return;
      send(event);
    }
  }

  return { stop };
}
