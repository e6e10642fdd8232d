// DNS names for registry objects: an instance id as one DNS label, and a query name read back into what it names.
import { createHash } from 'node:crypto';
import { DNS_LABEL } from '../schemas/instance.js';

/**
 * The DNS label of an instance id. Ids allow `A-Za-z0-9._:-` and 128 characters, DNS labels only 63 characters
 * of `a-z0-9-` compared case-insensitively, so:
 * - an id that already is a lower-case DNS label without "--" is its own label (`web-1` → `web-1`);
 * - every other id becomes `<readable>--<hash>`: readable is the id lower-cased, each run of other characters
 *   turned into one "-", cut to 32 characters (`id` when nothing is left); hash is the first 24 base32
 *   characters (120 bits) of SHA-256 of the exact id (`Web_1` → `web-1--…`).
 * Encoded labels always contain "--" and plain ones never do, so the two kinds cannot collide, and ids that
 * differ only in case get different hashes. Stable across restarts and versions: it depends on the id alone.
 */
export function idLabel(id: string): string {
  const known = memo.get(id);
  if (known !== undefined) return known;
  const label = DNS_LABEL.test(id) && !id.includes('--') ? id : encodeId(id);
  // A memo of a pure function of the id, not a cache of registry state: it can never be stale. Bounded.
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(id, label);
  return label;
}

const MEMO_LIMIT = 100_000;
const memo = new Map<string, string>();

function encodeId(id: string): string {
  const readable =
    id
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+/, '')
      .slice(0, 32)
      .replace(/-+$/, '') || 'id';
  return `${readable}--${base32(createHash('sha256').update(id).digest()).slice(0, 24)}`;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** What a name inside the zone refers to; labels are lower-cased. */
export type ZoneName =
  | { kind: 'apex' }
  /** `<namespace>`: exists while the namespace has instances (an empty non-terminal). */
  | { kind: 'namespace'; namespace: string }
  /** `_tcp.<namespace>`, `_udp.<namespace>`, `_dns-sd._udp.<namespace>`: empty non-terminals. */
  | { kind: 'namespace-branch'; namespace: string }
  /** `<service>.<namespace>`: A/AAAA (virtual IP or instances) and SRV. */
  | { kind: 'service'; namespace: string; service: string }
  /** `<id>.<service>.<namespace>`: one instance's address. */
  | { kind: 'instance'; namespace: string; service: string; label: string }
  /** `_<service>._tcp.<namespace>`: SRV (RFC 2782) and PTR to instance names (DNS-SD). */
  | { kind: 'service-type'; namespace: string; service: string }
  /** `<id>._<service>._tcp.<namespace>`: a DNS-SD service instance, SRV + TXT. */
  | { kind: 'sd-instance'; namespace: string; service: string; label: string }
  /** `_<protocol>.<service>.<namespace>`: empty non-terminal above named ports. */
  | { kind: 'port-branch'; namespace: string; service: string; protocol: string }
  /** `_<port>._<protocol>.<service>.<namespace>`: SRV for a Service's named port. */
  | { kind: 'named-port'; namespace: string; service: string; port: string; protocol: string }
  /** `_services._dns-sd._udp.<namespace>`: PTR to every service type of the namespace (RFC 6763 §9). */
  | { kind: 'service-types'; namespace: string }
  /** In the zone, but nothing of that shape can exist. */
  | { kind: 'nothing' };

/**
 * Reads a query name (no trailing dot, any case) against the zone (lower-case, no trailing dot).
 * Returns null when the name is outside the zone.
 */
export function parseZoneName(name: string, zone: string): ZoneName | null {
  const lower = name.toLowerCase();
  if (lower === zone) return { kind: 'apex' };
  if (!lower.endsWith(zone) || lower.charCodeAt(lower.length - zone.length - 1) !== 46 /* . */) return null;
  const labels = lower.slice(0, lower.length - zone.length - 1).split('.');
  const at = (i: number) => labels[labels.length - 1 - i]!;
  const namespace = at(0);
  const nothing = { kind: 'nothing' } as const;
  if (!DNS_LABEL.test(namespace)) return nothing;
  switch (labels.length) {
    case 1:
      return { kind: 'namespace', namespace };
    case 2: {
      const second = at(1);
      if (second === '_tcp' || second === '_udp') return { kind: 'namespace-branch', namespace };
      return DNS_LABEL.test(second) ? { kind: 'service', namespace, service: second } : nothing;
    }
    case 3: {
      const [second, third] = [at(1), at(2)];
      if (second === '_udp' && third === '_dns-sd') return { kind: 'namespace-branch', namespace };
      if (second === '_tcp' && third.startsWith('_') && DNS_LABEL.test(third.slice(1))) {
        return { kind: 'service-type', namespace, service: third.slice(1) };
      }
      if (!DNS_LABEL.test(second)) return nothing;
      if (third === '_tcp' || third === '_udp') return { kind: 'port-branch', namespace, service: second, protocol: third.slice(1) };
      return DNS_LABEL.test(third) ? { kind: 'instance', namespace, service: second, label: third } : nothing;
    }
    case 4: {
      const [second, third, fourth] = [at(1), at(2), at(3)];
      if (second === '_udp' && third === '_dns-sd' && fourth === '_services') return { kind: 'service-types', namespace };
      if (second === '_tcp' && third.startsWith('_') && DNS_LABEL.test(third.slice(1)) && DNS_LABEL.test(fourth)) {
        return { kind: 'sd-instance', namespace, service: third.slice(1), label: fourth };
      }
      if (DNS_LABEL.test(second) && (third === '_tcp' || third === '_udp') && fourth.startsWith('_') && fourth.length > 1) {
        return { kind: 'named-port', namespace, service: second, port: fourth.slice(1), protocol: third.slice(1) };
      }
      return nothing;
    }
    default:
      return nothing;
  }
}
