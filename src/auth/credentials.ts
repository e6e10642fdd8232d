// Tokens to principals. Only SHA-256 digests are held; a presented token is hashed and compared with every
// digest in constant time, so neither the token nor which entry came close leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ALL_NAMESPACES, type Principal } from './rules.js';

export interface TokenEntry extends Principal {
  /** Hex SHA-256 of the token. */
  sha256: string;
}

export interface Credentials {
  /** The principal the bearer token names, or null for an unknown token. */
  byToken(token: string): Principal | null;
}

export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** ROLLCALL_TOKEN: one token with every right in every namespace. */
export function adminTokenEntry(token: string): TokenEntry {
  return { name: 'ROLLCALL_TOKEN', role: 'admin', namespaces: [ALL_NAMESPACES], sha256: sha256Hex(token) };
}

export function createCredentials(entries: readonly TokenEntry[]): Credentials {
  const digests = entries.map((e) => ({ digest: Buffer.from(e.sha256, 'hex'), principal: { name: e.name, role: e.role, namespaces: e.namespaces } }));
  return {
    byToken(token) {
      const presented = createHash('sha256').update(token, 'utf8').digest();
      let found: Principal | null = null;
      // No early exit: every digest is compared whatever matched.
      for (const { digest, principal } of digests) {
        if (timingSafeEqual(presented, digest) && found === null) found = principal;
      }
      return found;
    },
  };
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}
