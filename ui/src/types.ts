// Wire shapes of the public API (see openapi.yaml), as far as the page reads them.

export type Status = 'starting' | 'up' | 'draining' | 'down';
export const STATUSES: readonly Status[] = ['up', 'draining', 'starting', 'down'];

export interface Instance {
  namespace: string;
  service: string;
  id: string;
  address: string;
  port: number;
  status: Status;
  weight: number;
  zone: string | null;
  tags: string[];
  metadata: Record<string, string>;
  ttlSeconds: number;
  registeredAt: string;
  lastHeartbeatAt: string;
  expiresAt: string;
  revision: number;
  createRevision: number;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: number | null;
  protocol: string;
}

export interface Service {
  namespace: string;
  name: string;
  virtualIP: string | null;
  ports: ServicePort[];
  revision: number;
  createRevision: number;
  createdAt: string;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export type WatchMessage =
  | { type: 'SNAPSHOT'; revision: number; items: Instance[]; services?: Service[] }
  | { type: ChangeType; revision: number; reason: string; instance: Instance }
  | { type: ChangeType; revision: number; reason: string; service: Service }
  | { type: 'BOOKMARK'; revision: number }
  | { type: 'ERROR'; code: string; message: string };

export type ChangeMessage = Extract<WatchMessage, { type: ChangeType }>;

export interface Ready {
  status: 'ready';
  revision: number;
  compactedRevision?: number;
  watchers?: number;
}

export interface Whoami {
  authenticated: boolean;
  name: string | null;
  role: 'read' | 'write' | 'admin';
  namespaces: string[];
}
