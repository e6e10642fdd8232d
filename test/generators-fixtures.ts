// Snapshots for the generator tests: one ordinary namespace, and one full of hostile values.
import type { Instance } from '../src/schemas/instance.js';

const BASE = {
  namespace: 'shop',
  zone: null,
  tags: [] as string[],
  metadata: {} as Record<string, string>,
  ttlSeconds: 30,
  registeredAt: '2024-01-01T00:00:00.000Z',
  lastHeartbeatAt: '2024-01-01T00:00:00.000Z',
  expiresAt: '2024-01-01T00:00:30.000Z',
  revision: 1,
  createRevision: 1,
};

export function inst(service: string, id: string, fields: Partial<Instance> = {}): Instance {
  return { ...BASE, service, id, address: '10.0.0.1', port: 8080, status: 'up', weight: 1, ...fields };
}

/** Every case the generators distinguish, deliberately out of order (output must be sorted). */
export const ORDINARY: Instance[] = [
  inst('web', 'web-b', { address: '10.0.1.2', status: 'starting' }),
  inst('api', 'api-3', { address: '10.0.0.3', status: 'draining', weight: 2 }),
  inst('api', 'api-1', { address: '10.0.0.1', weight: 1 }),
  inst('api', 'api-2', { address: '10.0.0.2', weight: 3 }),
  inst('api', 'api-4', { address: '10.0.0.4', status: 'down' }),
  inst('db', 'db-1', { address: '10.0.2.1', port: 5432, weight: 0 }),
  inst('cache', 'cache-v6', { address: '::1', port: 6379, weight: 2 }),
  inst('cache', 'cache-host', { address: 'localhost', port: 6380 }),
  // Another namespace's row must never leak into this namespace's config.
  inst('api', 'intruder', { namespace: 'other', address: '10.9.9.9' }),
];

const INJECT = 'x; }\n server { listen 1; } # "quoted" \' \\ \r\nuse_backend evil if TRUE\n}';

/** Values no registry would accept, as if a bug or a hand-built snapshot let them through. */
export const HOSTILE: Instance[] = [
  inst('api', 'ok-1', {
    address: '127.0.0.1',
    port: 9001,
    tags: [INJECT, '#', '}'],
    metadata: { [INJECT]: INJECT, upstream: '}; include /etc/passwd;' },
    zone: INJECT,
  }),
  inst('api', `id;}\n#${INJECT}`, { address: '127.0.0.2', port: 9002 }),
  inst('api', 'bad-address', { address: '127.0.0.3; include /etc/passwd', port: 9003 }),
  inst('api', 'bad-address-2', { address: '127.0.0.4:80 backup', port: 9004 }),
  inst('api', 'bad-port', { address: '127.0.0.5', port: 0 }),
  inst('api', 'bad-weight', { address: '127.0.0.6', port: 9006, weight: 1.5 }),
  inst(`evil;}\n`, 'e-1', { address: '127.0.0.7', port: 9007 }),
  inst('web', '"quoted"\\', { address: '127.0.0.8', port: 9008, status: 'draining', metadata: { a: INJECT } }),
];

/** What hostile payloads try to get into the config as directives. */
export const INJECTED_WORDS = ['include', '/etc/passwd', 'listen 1', 'use_backend evil', 'backup', 'TRUE'];
