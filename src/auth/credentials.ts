// Credentials to principals. Only SHA-256 digests of tokens are held; a presented token is hashed, looked up by
// its digest and compared in constant time, so timing reveals nothing about any stored token.
import { createHash, hash, timingSafeEqual } from 'node:crypto';
import { ALL_NAMESPACES, type Principal } from './rules.js';

export interface TokenEntry extends Principal {
  /** Hex SHA-256 of the token. */
  sha256?: string;
  /** Subject CN of a client certificate (mutual TLS) that names this principal. */
  cn?: string;
}

export interface Credentials {
  /** The principal the bearer token names, or null for an unknown token. */
  byToken(token: string): Principal | null;
  /** The principal a verified client certificate's CN names, or null. */
  byCertificate(cn: string): Principal | null;
  /** How many principals (for the reload log line). */
  readonly size: number;
}

export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** ROLLCALL_TOKEN: one token with every right in every namespace. */
export function adminTokenEntry(token: string): TokenEntry {
  return { name: 'ROLLCALL_TOKEN', role: 'admin', namespaces: [ALL_NAMESPACES], sha256: sha256Hex(token) };
}

export function createCredentials(entries: readonly TokenEntry[]): Credentials {
  const principalOf = (e: TokenEntry): Principal => ({ name: e.name, role: e.role, namespaces: [...e.namespaces] });
  // Indexed by digest: a lookup's timing can only depend on SHA-256(presented token), which tells an attacker
  // nothing about any stored token (finding one from its digest is a preimage attack). The final equality is
  // still checked in constant time. Comparing against every digest instead cost ~0.2 µs per entry per request.
  const byDigest = new Map(
    entries.filter((e) => e.sha256 !== undefined).map((e) => [e.sha256!, { digest: Buffer.from(e.sha256!, 'latin1'), principal: principalOf(e) }]),
  );
  // A CN is not a secret (the certificate was verified by TLS): a plain lookup is enough.
  const byCn = new Map(entries.filter((e) => e.cn !== undefined).map((e) => [e.cn!, principalOf(e)]));
  return {
    size: entries.length,
    byToken(token) {
      // crypto.hash: the one-shot form, ~1.5x faster than createHash() (hashing is most of the check's cost).
      const presented = hash('sha256', token, 'hex');
      const found = byDigest.get(presented);
      return found !== undefined && timingSafeEqual(Buffer.from(presented, 'latin1'), found.digest) ? found.principal : null;
    },
    byCertificate: (cn) => byCn.get(cn) ?? null,
  };
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}

/**
 * The token a request presents: `Bearer <token>`, or Basic auth whose password is the token (what clients that
 * only know URLs with user:password send: Eureka clients, Prometheus basic_auth). Else null.
 */
export function presentedToken(header: string | undefined): string | null {
  const bearer = bearerToken(header);
  if (bearer !== null || header === undefined) return bearer;
  const m = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : null;
}
