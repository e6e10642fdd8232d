// The page's state and its one redraw per animation frame: however many events arrive (a burst of thousands),
// the DOM is touched once per frame.
import { Model } from './model.js';
import type { Ready, Whoami } from './types.js';
import type { Connection } from './watch.js';

export type Route = { view: 'overview' } | { view: 'service'; namespace: string; service: string };

export interface State {
  model: Model;
  connection: Connection;
  /** When the stream last dropped (ms), while it is down. */
  downSince: number | null;
  ready: { kind: 'ready'; body: Ready } | { kind: 'not-ready'; message: string } | { kind: 'unreachable' } | null;
  /** Null until known, or when the registry has no /v1/auth/whoami (then writes are tried and a 403 is shown). */
  whoami: Whoami | null;
  route: Route;
  query: string;
  servicePage: number;
  instancePage: number;
}

export function parseRoute(hash: string): Route {
  const m = /^#\/s\/([^/]+)\/([^/]+)$/.exec(hash);
  if (m) return { view: 'service', namespace: decodeURIComponent(m[1]!), service: decodeURIComponent(m[2]!) };
  return { view: 'overview' };
}

export function serviceHref(namespace: string, service: string): string {
  return `#/s/${encodeURIComponent(namespace)}/${encodeURIComponent(service)}`;
}

/** Whether the caller may write in a namespace: unknown means try (the API answers 403 with the missing scope). */
export function canWrite(whoami: Whoami | null, namespace: string): boolean {
  if (whoami === null) return true;
  if (whoami.role === 'read') return false;
  return whoami.namespaces.some((glob) => new RegExp(`^${glob.split('*').map(escapeRegExp).join('.*')}$`).test(namespace));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function createScheduler(draw: () => void): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
}
