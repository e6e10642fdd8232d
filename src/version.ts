// The version people and machines see (--version, the server's start line, the OpenAPI info) has one source:
// package.json, found next to dist/ (in a clone, an npm install and the image alike).
import { readFileSync } from 'node:fs';

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error('package.json has no version');
  return pkg.version;
}

export const VERSION = readVersion();
