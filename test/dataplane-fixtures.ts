// Services and instances for the data plane tests, as the registry's watch would hand them over.
import type { ServiceRecord } from '../src/dataplane/desired-state.js';
import type { Instance } from '../src/schemas/instance.js';
import { inst } from './generators-fixtures.js';

type PortInput = { name?: string; port: number; targetPort?: number; protocol: 'tcp' };

export function svc(name: string, virtualIP: string, ports: PortInput[], namespace = 'shop'): ServiceRecord {
  return { namespace, name, virtualIP, ports: ports.map((p) => ({ name: p.name ?? null, targetPort: p.targetPort ?? null, port: p.port, protocol: p.protocol })) };
}

export const SERVICES: ServiceRecord[] = [
  svc('web', '127.77.0.2', [{ name: 'http', port: 80, protocol: 'tcp' }, { name: 'admin', port: 8081, targetPort: 9090, protocol: 'tcp' }]),
  svc('api', '127.77.0.1', [{ port: 80, protocol: 'tcp' }]),
  // No routable instance: rejected at once.
  svc('db', '127.77.0.3', [{ port: 5432, protocol: 'tcp' }]),
  // Another namespace's service with the same name must not pick up shop's instances.
  svc('api', '127.77.0.9', [{ port: 80, protocol: 'tcp' }], 'other'),
];

export const INSTANCES: Instance[] = [
  inst('api', 'api-1', { address: '10.0.0.1', weight: 1, zone: 'a' }),
  inst('api', 'api-2', { address: '10.0.0.2', weight: 3, zone: 'b' }),
  inst('api', 'api-3', { address: '10.0.0.3', status: 'draining', weight: 2, zone: 'a' }),
  inst('api', 'api-4', { address: '10.0.0.4', status: 'down', zone: 'a' }),
  inst('web', 'web-1', { address: '10.0.1.1', port: 8000 }),
  inst('web', 'web-2', { address: '10.0.1.2', port: 8000, weight: 2 }),
  inst('db', 'db-1', { address: '10.0.2.1', port: 5432, weight: 0 }),
  // Registered, but no Service gives it an address.
  inst('cache', 'cache-1', { address: '10.0.3.1', port: 6379 }),
];
