// The search box: one lower-case haystack per instance, built once per instance object (changes replace it).
import type { Instance } from './types.js';

const haystacks = new WeakMap<Instance, string>();

function haystack(i: Instance): string {
  let s = haystacks.get(i);
  if (s === undefined) {
    s = [
      i.namespace,
      i.service,
      i.id,
      `${i.address}:${i.port}`,
      i.status,
      i.zone ?? '',
      ...i.tags,
      ...Object.entries(i.metadata).map(([k, v]) => `${k}=${v}`),
    ]
      .join('\u0000')
      .toLowerCase();
    haystacks.set(i, s);
  }
  return s;
}

/** Terms separated by spaces must all match (name, id, address, tag, zone or metadata key=value). */
export function matcher(query: string): ((i: Instance) => boolean) | null {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (terms.length === 0) return null;
  return (i) => {
    const s = haystack(i);
    return terms.every((t) => s.includes(t));
  };
}

export function serviceNameMatches(query: string, key: string): boolean {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  return terms.length > 0 && terms.every((t) => key.toLowerCase().includes(t));
}
