// Auth files and tokens for the auth tests.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { entryLine } from '../src/auth/auth-file.js';
import { sha256Hex, type TokenEntry } from '../src/auth/credentials.js';

export interface TestPrincipal {
  name: string;
  role: 'read' | 'write' | 'admin';
  namespaces: string[];
  token?: string;
  cn?: string;
}

/** The auth file for these principals, written as `rollcall token create` prints entries. */
export function authFileText(principals: TestPrincipal[]): string {
  const entries: TokenEntry[] = principals.map((p) => ({
    name: p.name,
    role: p.role,
    namespaces: p.namespaces,
    ...(p.token === undefined ? {} : { sha256: sha256Hex(p.token) }),
    ...(p.cn === undefined ? {} : { cn: p.cn }),
  }));
  return `# written by the auth tests\ntokens:\n${entries.map(entryLine).join('\n')}\n`;
}

export function writeAuthFile(dir: string, principals: TestPrincipal[], name = 'auth.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, authFileText(principals));
  return file;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
