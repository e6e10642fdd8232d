// The --auth-file format (YAML): who may do what, holding only SHA-256 digests of tokens.
//
//   tokens:
//     - { name: deployer, role: write, namespaces: [team-a, "team-b-*"], sha256: "…" }
//     - { name: edge, role: read, namespaces: ["*"], cn: edge.internal }   # a client certificate's CN
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { RollcallError } from '../errors.js';
import { ROLES } from './access.js';
import type { TokenEntry } from './credentials.js';

/** A namespace name (DNS-1123 label) in which `*` stands for any run of characters. */
const NAMESPACE_GLOB = /^[a-z0-9*]([-a-z0-9*]{0,61}[a-z0-9*])?$/;

export const authEntry = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be 1-64 characters of letters, digits, ".", "_", "@" and "-"'),
    role: z.enum(ROLES),
    namespaces: z
      .array(z.string().regex(NAMESPACE_GLOB, 'must be a namespace name or a glob such as "team-*", or "*" for every namespace'))
      .min(1, 'must list at least one namespace (or "*")'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the hex SHA-256 of the token (64 hex digits; `rollcall token create` prints it)')
      .transform((s) => s.toLowerCase())
      .optional(),
    /** With --tls-client-ca: a client certificate whose subject CN equals this is this principal. */
    cn: z.string().min(1).max(256).optional(),
  })
  .strict()
  .refine((e) => e.sha256 !== undefined || e.cn !== undefined, 'needs sha256 (a token) or cn (a client certificate), or both');

export const authFileSchema = z
  .object({ tokens: z.array(authEntry) })
  .strict()
  .superRefine((file, ctx) => {
    for (const key of ['name', 'sha256', 'cn'] as const) {
      const seen = new Set<string>();
      file.tokens.forEach((entry, i) => {
        const value = entry[key];
        if (value === undefined) return;
        if (seen.has(value)) ctx.addIssue({ code: 'custom', path: ['tokens', i, key], message: `repeats ${key} "${key === 'sha256' ? `${value.slice(0, 8)}…` : value}"` });
        seen.add(value);
      });
    }
  });

export type AuthFile = z.infer<typeof authFileSchema>;

/** Reads and checks the auth file; throws a RollcallError with one line naming the file and every problem. */
export function loadAuthFile(path: string): TokenEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RollcallError('bad_request', `auth file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new RollcallError('bad_request', `auth file ${path}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  }
  const parsed = authFileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'file'}: ${i.message}`);
    throw new RollcallError('bad_request', `auth file ${path}: ${problems.join('; ')}`);
  }
  return parsed.data.tokens.map((e) => ({
    name: e.name,
    role: e.role,
    namespaces: e.namespaces,
    ...(e.sha256 === undefined ? {} : { sha256: e.sha256 }),
    ...(e.cn === undefined ? {} : { cn: e.cn }),
  }));
}

/** One flow-style YAML line for the `tokens:` list (JSON strings are valid YAML scalars). */
export function entryLine(entry: TokenEntry): string {
  const fields = [
    `name: ${JSON.stringify(entry.name)}`,
    `role: ${entry.role}`,
    `namespaces: [${entry.namespaces.map((n) => JSON.stringify(n)).join(', ')}]`,
    ...(entry.sha256 === undefined ? [] : [`sha256: ${JSON.stringify(entry.sha256)}`]),
    ...(entry.cn === undefined ? [] : [`cn: ${JSON.stringify(entry.cn)}`]),
  ];
  return `  - { ${fields.join(', ')} }`;
}
