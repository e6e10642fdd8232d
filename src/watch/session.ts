// One watcher's life: snapshot or resume from the event log, then live events, bookmarks and backpressure.
// Shared by the WebSocket and Server-Sent Events transports, which differ only in framing (the sink).
import type { Registry } from '../registry/registry.js';
import type { Instance } from '../schemas/instance.js';
import { PublishedEvent, wantsKind, type WatchFilter, type WatchHub } from './hub.js';

export type WatchErrorCode = 'revision_compacted' | 'revision_ahead';

/** Close code sent to a watcher that fell too far behind; it resumes with sinceRevision. */
export const SLOW_CONSUMER_CLOSE = 4008;
/** Close code sent to a WebSocket watcher that did not answer a ping within one interval (dead or not reading). */
export const PING_TIMEOUT_CLOSE = 4009;

export interface WatchSink {
  /** Frames and sends one message. `event` is given for change events so the sink can reuse cached bytes. */
  sendEvent(event: PublishedEvent): void;
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

/** Events read from the event log per page while catching up; the loop yields between pages. */
const CATCH_UP_PAGE = 500;

export function startWatchSession(options: WatchSessionOptions): { stop(): void } {
  const { registry, hub, sink, filter, maxBufferedBytes, bookmarkMs } = options;
  let stopped = false;
  let catchingUp = false;
  let pending: PublishedEvent[] = [];
  let pendingBytes = 0;
  let lastSentAt = Date.now();
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let unsubscribe = () => {};

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

  const send = (event: PublishedEvent) => {
    sink.sendEvent(event);
    lastSentAt = Date.now();
    options.onEventSent?.();
    if (sink.buffered() > maxBufferedBytes) tooSlow();
  };

  const deliver = (event: PublishedEvent) => {
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
      unsubscribe = hub.subscribe(filter, deliver);
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
      unsubscribe = hub.subscribe(filter, deliver);
      void catchUp(since, upTo);
    }
    scheduleBookmark(bookmarkMs);
  };
  void registry.whenSettled(begin);

  async function catchUp(from: number, upTo: number) {
    let cursor = from;
    while (!stopped) {
      // Writes between pages may have trimmed the log past our cursor: then the replay would have a hole.
      if (registry.compactedRevision() > cursor) {
        return fail('revision_compacted', `History up to revision ${registry.compactedRevision()} was trimmed while resuming; list again.`);
      }
      const page = registry.eventsAfter(filter, cursor, upTo, CATCH_UP_PAGE);
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
