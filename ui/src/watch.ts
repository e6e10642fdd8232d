// One watch stream for the whole page: SNAPSHOT first, then every change in revision order. A dropped stream
// resumes from the last revision seen (Last-Event-ID), so nothing is missed and nothing is shown twice; only when
// the registry no longer has that history (revision_compacted / revision_ahead) does the page list again.
import { auth, ApiError } from './api.js';
import { readSse } from './sse.js';
import type { ChangeMessage, WatchMessage } from './types.js';

export type Connection =
  | { kind: 'connecting' }
  | { kind: 'live'; resumedFrom: number | null }
  | { kind: 'reconnecting'; attempt: number; lastRevision: number | null; reason: string }
  | { kind: 'unauthorized'; message: string };

export interface WatchHandlers {
  snapshot(msg: Extract<WatchMessage, { type: 'SNAPSHOT' }>): void;
  change(msg: ChangeMessage): void;
  revision(revision: number): void;
  connection(state: Connection): void;
}

const WATCH_URL = '/v1/watch?resources=services,instances&bookmarkSeconds=10';
const MAX_BACKOFF_MS = 4000;

export function startWatch(h: WatchHandlers): { stop(): void } {
  let stopped = false;
  let current: AbortController | null = null;
  let since: number | null = null;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const run = async () => {
    let attempt = 0;
    h.connection({ kind: 'connecting' });
    while (!stopped) {
      current = new AbortController();
      let reason = 'the stream ended';
      try {
        const headers: Record<string, string> = { accept: 'text/event-stream', ...auth.headers() };
        if (since !== null) headers['last-event-id'] = String(since);
        const res = await fetch(WATCH_URL, { headers, signal: current.signal, cache: 'no-store' });
        if (res.status === 401 || res.status === 403) {
          // 403: a token scoped to some namespaces cannot follow the whole registry, which this page does.
          const body = (await res.json().catch(() => ({}))) as { message?: string };
          since = null; // whatever was shown belonged to another credential
          h.connection({ kind: 'unauthorized', message: body.message ?? 'This registry needs a token.' });
          await auth.next();
          continue;
        }
        if (!res.ok || res.body === null) {
          const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
          throw new ApiError(res.status, body.error ?? `http_${res.status}`, body.message ?? `watch answered ${res.status}`);
        }
        attempt = 0;
        if (since !== null) h.connection({ kind: 'live', resumedFrom: since });
        for await (const ev of readSse(res.body)) {
          const msg = JSON.parse(ev.data) as WatchMessage;
          if (msg.type === 'SNAPSHOT') {
            since = msg.revision;
            h.snapshot(msg);
            h.connection({ kind: 'live', resumedFrom: null });
          } else if (msg.type === 'BOOKMARK') {
            if (since === null || msg.revision > since) since = msg.revision;
            h.revision(msg.revision);
          } else if (msg.type === 'ERROR') {
            // The history we would resume from is gone (or from another registry): start over with a snapshot.
            since = null;
            reason = msg.message;
            break;
          } else {
            // A change at or below what we have was already applied (a resume overlapping what was seen).
            if (since !== null && msg.revision <= since) continue;
            since = msg.revision;
            h.change(msg);
          }
        }
      } catch (err) {
        if (stopped) return;
        reason = err instanceof ApiError ? err.message : 'the registry cannot be reached';
      }
      if (stopped) return;
      attempt += 1;
      h.connection({ kind: 'reconnecting', attempt, lastRevision: since, reason });
      await sleep(Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(attempt - 1, 4)));
    }
  };
  void run();
  return {
    stop() {
      stopped = true;
      current?.abort();
    },
  };
}
