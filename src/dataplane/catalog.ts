// The control loop's source: one client watch view of Services + instances, with failover across several registry
// URLs (--registry URL,URL…). The view itself resumes, relists and backs off against one registry; when that
// registry keeps failing, the next URL gets a fresh view. Until the new view's snapshot, the last contents stay
// in place: a stale catalog beats an empty one, and the data plane keeps serving it.
import { EventEmitter } from 'node:events';
import type { Instance } from '../schemas/instance.js';
import type { CatalogSource } from './control-loop.js';
import type { Log } from './data-plane.js';
import type { ServiceRecord } from './desired-state.js';

/** What the catalog needs of a watch view (the client library's WatchView with resources services + instances). */
export interface CatalogView {
  readonly ready: Promise<void>;
  readonly revision: number;
  services(): ServiceRecord[];
  instances(): Instance[];
  on(event: 'change', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  close(): void;
}

export interface Catalog extends CatalogSource {
  /** Resolves at the first snapshot from any registry; rejects when the registry refuses the watch (4xx). */
  readonly ready: Promise<void>;
  /** The registry currently followed. */
  readonly url: string;
  /** False while the current registry fails (the catalog then holds its last contents). */
  readonly connected: boolean;
  close(): void;
}

export function openCatalog(options: {
  urls: string[];
  open: (url: string) => CatalogView;
  log: Log;
  /** Consecutive watch failures on one registry before the next URL is tried. */
  failoverAfter: number;
}): Catalog {
  const emitter = new EventEmitter();
  let index = 0;
  let services: ServiceRecord[] = [];
  let instances: Instance[] = [];
  let revision = 0;
  let failures = 0;
  let connected = false;
  let closed = false;
  let view: CatalogView;
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  ready.catch(() => {});
  let lastError = '';

  const follow = (url: string) => {
    const v = options.open(url);
    view = v;
    v.on('change', () => {
      if (v !== view) return;
      services = v.services();
      instances = v.instances();
      revision = v.revision;
      failures = 0;
      if (!connected) options.log(`following ${url} at revision ${revision}`);
      connected = true;
      lastError = '';
      resolveReady();
      emitter.emit('change');
    });
    v.on('error', (err) => {
      if (v !== view || closed) return;
      connected = false;
      failures++;
      // A registry that is down fails the same way on every retry: say it once until something else happens.
      if (err.message !== lastError) options.log(`watch ${url}: ${err.message}`);
      lastError = err.message;
      if (options.urls.length > 1 && failures >= options.failoverAfter) {
        failures = 0;
        v.close();
        index = (index + 1) % options.urls.length;
        options.log(`${url} keeps failing; switching to ${options.urls[index]}`);
        follow(options.urls[index]!);
      }
    });
    // The view gives up only on a refusal that retrying cannot fix (a 4xx such as 401): before the first snapshot
    // that ends the proxy with the registry's message.
    v.ready.catch((err: Error) => {
      if (v === view && !closed) rejectReady(err);
    });
  };
  follow(options.urls[0]!);

  return {
    ready,
    get url() {
      return options.urls[index]!;
    },
    get connected() {
      return connected;
    },
    get revision() {
      return revision;
    },
    services: () => services,
    instances: () => instances,
    on: (event, listener) => emitter.on(event, listener),
    off: (event, listener) => emitter.off(event, listener),
    close() {
      closed = true;
      view.close();
    },
  };
}
