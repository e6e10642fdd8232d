// nftables DNATs to IP addresses only; instances may be registered by host name (docker-compose service names).
// Names are resolved to IPv4 on every pass, so a pass uses fresh answers; a name that does not resolve is left out
// (and said so) instead of failing the whole ruleset.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DesiredState } from '../desired-state.js';

export type Lookup4 = (host: string) => Promise<string>;

const defaultLookup: Lookup4 = async (host) => (await lookup(host, { family: 4 })).address;

export async function resolveBackends(state: DesiredState, lookup4: Lookup4 = defaultLookup): Promise<{ state: DesiredState; unresolved: string[] }> {
  const names = new Set<string>();
  for (const sp of state.ports) for (const b of sp.backends) if (isIP(b.address) === 0) names.add(b.address);
  if (names.size === 0) return { state, unresolved: [] };
  const answers = new Map<string, string | Error>();
  await Promise.all(
    [...names].map(async (name) => {
      try {
        answers.set(name, await lookup4(name));
      } catch (err) {
        answers.set(name, err as Error);
      }
    }),
  );
  const unresolved = [...answers].filter(([, a]) => a instanceof Error).map(([name, a]) => `${name} (${(a as NodeJS.ErrnoException).code ?? (a as Error).message})`);
  return {
    state: {
      ports: state.ports.map((sp) => ({
        ...sp,
        backends: sp.backends.flatMap((b) => {
          if (isIP(b.address) !== 0) return [b];
          const a = answers.get(b.address);
          return typeof a === 'string' ? [{ ...b, address: a }] : [];
        }),
      })),
    },
    unresolved,
  };
}
