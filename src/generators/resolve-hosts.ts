// nginx (open source) resolves each `server host:port` of an upstream once, when it loads the config, and refuses
// the whole config when one name does not resolve ("host not found in upstream"). One careless registration would
// then hold back every other service. So `rollcall render` resolves hostnames where it renders, leaves out the
// instances whose name does not resolve, and looks the names up again now and then: a name that starts (or stops)
// resolving is a change like any registry change, so the config follows it.
import { lookup as dnsLookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';

/** Resolves to true when the name has at least one address. Never rejects for a name that does not resolve. */
export type HostLookup = (host: string) => Promise<boolean>;

export const systemLookup: HostLookup = async (host) => {
  try {
    // getaddrinfo, like nginx: /etc/hosts first, then DNS, per nsswitch.conf.
    return (await dnsLookup(host, { all: true })).length > 0;
  } catch {
    return false;
  }
};

export interface HostResolverOptions {
  lookup?: HostLookup;
  /** Known names are looked up again this often; when an answer flips, 'change' is emitted. 0 = never. */
  refreshMs?: number;
  /** A lookup slower than this counts as not resolving (nginx's own lookup would stall or fail as well). */
  timeoutMs?: number;
}

export interface HostResolver {
  /**
   * The names among `hosts` that do not resolve. IP literals are skipped. A name seen for the first time is looked
   * up now (bounded by the timeout); a known one is answered from the last lookup, so renders stay fast.
   */
  unresolved(hosts: Iterable<string>): Promise<Set<string>>;
  on(event: 'change', listener: () => void): this;
  off(event: 'change', listener: () => void): this;
  close(): void;
}

export const DEFAULT_REFRESH_MS = 10_000;
export const DEFAULT_LOOKUP_TIMEOUT_MS = 3000;

export function createHostResolver(options: HostResolverOptions = {}): HostResolver {
  const lookup = options.lookup ?? systemLookup;
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
  const refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
  const emitter = new EventEmitter();
  /** name → resolves; only the names of the latest unresolved() call are kept. */
  const known = new Map<string, boolean>();
  let refreshing = false;

  const bounded = (host: string): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    return Promise.race([lookup(host).catch(() => false), timeout]).finally(() => clearTimeout(timer));
  };

  const refresh = async () => {
    if (refreshing || known.size === 0) return;
    refreshing = true;
    try {
      const names = [...known.keys()];
      const answers = await Promise.all(names.map(bounded));
      let flipped = false;
      names.forEach((name, i) => {
        // A name dropped meanwhile is not re-added; only a name still wanted can flip.
        if (known.has(name) && known.get(name) !== answers[i]) {
          known.set(name, answers[i] as boolean);
          flipped = true;
        }
      });
      if (flipped) emitter.emit('change');
    } finally {
      refreshing = false;
    }
  };
  const timer = refreshMs > 0 ? setInterval(() => void refresh(), refreshMs) : undefined;
  timer?.unref();

  const resolver: HostResolver = {
    async unresolved(hosts) {
      const names = new Set<string>();
      for (const host of hosts) if (isIP(host) === 0) names.add(host.toLowerCase());
      for (const name of [...known.keys()]) if (!names.has(name)) known.delete(name);
      const fresh = [...names].filter((n) => !known.has(n));
      const answers = await Promise.all(fresh.map(bounded));
      fresh.forEach((name, i) => known.set(name, answers[i] as boolean));
      return new Set([...names].filter((n) => known.get(n) === false));
    },
    on(event, listener) {
      emitter.on(event, listener);
      return resolver;
    },
    off(event, listener) {
      emitter.off(event, listener);
      return resolver;
    },
    close() {
      if (timer) clearInterval(timer);
      emitter.removeAllListeners();
    },
  };
  return resolver;
}
