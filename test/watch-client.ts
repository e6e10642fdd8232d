// A minimal recording WebSocket watcher for tests.
import WebSocket from 'ws';
import { PATIENCE_MS, waitFor } from './helper.js';

export interface RecordedWatch {
  messages: any[];
  closed: { code: number; reason: string } | undefined;
  socket: WebSocket;
  /** Waits until predicate matches a message (or at least n messages exist) and returns the messages. */
  until(predicate: (messages: any[]) => boolean, timeoutMs?: number): Promise<any[]>;
  waitClosed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
  close(): void;
}

export async function openWatch(baseUrl: string, query: Record<string, string | number> = {}): Promise<RecordedWatch> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/watch${qs ? `?${qs}` : ''}`);
  const watch: RecordedWatch = {
    messages: [],
    closed: undefined,
    socket,
    until: async (predicate, timeoutMs = PATIENCE_MS) => {
      await waitFor(() => predicate(watch.messages), timeoutMs, 'watch messages');
      return watch.messages;
    },
    waitClosed: (timeoutMs = PATIENCE_MS) => waitFor(() => watch.closed, timeoutMs, 'watch close'),
    close: () => socket.close(),
  };
  socket.on('message', (data) => watch.messages.push(JSON.parse(data.toString())));
  socket.on('close', (code, reason) => (watch.closed = { code, reason: reason.toString() }));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return watch;
}

export const changes = (messages: any[]) => messages.filter((m) => m.type === 'ADDED' || m.type === 'MODIFIED' || m.type === 'DELETED');
