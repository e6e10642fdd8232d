// Credentials to principals. Only SHA-256 digests of tokens are held; a presented token is hashed and compared
// with every digest in constant time, so neither the token nor which entry came close leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
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
  const digests = entries
    .filter((e) => e.sha256 !== undefined)
    .map((e) => ({ digest: Buffer.from(e.sha256!, 'hex'), principal: principalOf(e) }));
  // A CN is not a secret (the certificate was verified by TLS): a plain lookup is enough.
  const byCn = new Map(entries.filter((e) => e.cn !== undefined).map((e) => [e.cn!, principalOf(e)]));
  return {
    size: entries.length,
    byToken(token) {
      const presented = createHash('sha256').update(token, 'utf8').digest();
      let found: Principal | null = null;
      // No early exit: every digest is compared whatever matched.
      for (const { digest, principal } of digests) {
        if (timingSafeEqual(presented, digest) && found === null) found = principal;
      }
      return found;
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
