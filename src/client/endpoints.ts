// Which registry replica to talk to. A client given several URLs (replicas of one registry over etcd) sends every
// call to the replica that answered last, and moves on to the next one in the list when that replica fails.
// Requests, watch views and registrations share one Endpoints, so what one of them learns (replica b is down)
// the others use at once instead of each timing out on b in turn.
//
// Retrying a request on another replica is safe because every call of the API is idempotent: reads, PUT (register
// or replace by id, heartbeat by id, a Service by name), PATCH (sets fields to given values) and DELETE by id.
// A write whose answer was lost (the replica died after etcd committed it) and that is then sent again to another
// replica leaves the same state; only its answer can differ: 200 instead of 201 for a PUT, 404 for a DELETE.

/** The base URLs, validated and normalized (no trailing slash), from one URL or a list. Throws a TypeError. */
export function parseRegistryUrls(input: string | readonly string[]): string[] {
  const list = typeof input === 'string' ? [input] : [...input];
  if (list.length === 0) throw new TypeError('Give at least one registry URL.');
  const urls = list.map((raw) => {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new TypeError(`Invalid registry URL "${raw}".`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`Invalid registry URL "${raw}": use http:// or https://.`);
    return parsed.href.replace(/\/+$/, '');
  });
  return [...new Set(urls)];
}

export interface Endpoints {
  readonly urls: readonly string[];
  /** The replica to try first: the last one that answered (the first URL until something failed). */
  current(): string;
  /** Every replica once, for one call: the current one first, then the others in list order after it. */
  order(): string[];
  /** `url` answered: calls go there first from now on. */
  succeeded(url: string): void;
  /** `url` failed: if it was the current replica, the next one in the list becomes current. */
  failed(url: string): void;
}

export function createEndpoints(urls: readonly string[]): Endpoints {
  if (urls.length === 0) throw new TypeError('Give at least one registry URL.');
  let index = 0;
  return {
    urls,
    current: () => urls[index]!,
    order: () => urls.map((_, i) => urls[(index + i) % urls.length]!),
    succeeded(url) {
      const i = urls.indexOf(url);
      if (i >= 0) index = i;
    },
    failed(url) {
      if (urls[index] === url) index = (index + 1) % urls.length;
    },
  };
}
