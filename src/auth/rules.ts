// Who may do what: pure rules over principals and scopes, no Fastify, no I/O.
import type { Action, Role } from './access.js';

export interface Principal {
  /** Shown in logs and in 403 messages; never the token. */
  name: string;
  role: Role;
  /** Namespace globs (`*` matches any run of characters); `*` alone is every namespace. */
  namespaces: string[];
}

/** Every namespace: what ROLLCALL_TOKEN grants, and what a cross-namespace watch or list needs. */
export const ALL_NAMESPACES = '*';

const STRENGTH: Record<Role, number> = { read: 1, write: 2, admin: 3 };

function globToRegExp(glob: string): RegExp {
  const escaped = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

const compiled = new Map<string, RegExp>();
export function namespaceMatches(glob: string, namespace: string): boolean {
  let re = compiled.get(glob);
  if (!re) {
    re = globToRegExp(glob);
    compiled.set(glob, re);
  }
  return re.test(namespace);
}

/**
 * Null when `principal` may do `action` on `namespace` (undefined = across every namespace); otherwise the
 * missing scope as `action:namespace`, e.g. `write:prod` or `read:*`, for the 403 message.
 */
export function missingScope(principal: Principal, action: Action, namespace: string | undefined): string | null {
  const scope = `${action}:${namespace ?? ALL_NAMESPACES}`;
  if (STRENGTH[principal.role] < STRENGTH[action]) return scope;
  // Across every namespace only a literal `*` will do: `team-*` must not see other teams' services.
  const inScope =
    namespace === undefined
      ? principal.namespaces.includes(ALL_NAMESPACES)
      : principal.namespaces.some((glob) => namespaceMatches(glob, namespace));
  return inScope ? null : scope;
}

/**
 * Null when `principal`'s role allows `action` somewhere; otherwise the missing scope as `action:<namespace>`.
 * For requests that name many namespaces (lease renewals): each item is then checked with missingScope.
 */
export function missingRole(principal: Principal, action: Action): string | null {
  return STRENGTH[principal.role] < STRENGTH[action] ? `${action}:<namespace>` : null;
}
