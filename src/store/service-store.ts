// The only module that speaks SQL about Services. Its writes run inside the instance store's commit
// transaction, so a Service change, its event and the revision land together.
import type { ServiceRecord } from '../registry/types.js';
import type { ServicePort } from '../schemas/service.js';
import type { Db } from './open.js';

interface ServiceRow {
  namespace: string;
  name: string;
  virtual_ip: string;
  ports: string;
  created_at: number;
  revision: number;
  create_revision: number;
}

export function createServiceStore(db: Db) {
  const selectAll = db.prepare('SELECT * FROM services');
  const upsert = db.prepare(`
    INSERT INTO services (namespace, name, virtual_ip, ports, created_at, revision, create_revision)
    VALUES (@namespace, @name, @virtualIP, @ports, @createdAt, @revision, @createRevision)
    ON CONFLICT (namespace, name) DO UPDATE SET
      virtual_ip = excluded.virtual_ip, ports = excluded.ports, created_at = excluded.created_at,
      revision = excluded.revision, create_revision = excluded.create_revision`);
  const remove = db.prepare('DELETE FROM services WHERE namespace = ? AND name = ?');

  return {
    load(): ServiceRecord[] {
      return (selectAll.all() as ServiceRow[]).map((row) => ({
        namespace: row.namespace,
        name: row.name,
        virtualIP: row.virtual_ip,
        ports: JSON.parse(row.ports) as ServicePort[],
        createdAt: row.created_at,
        revision: row.revision,
        createRevision: row.create_revision,
      }));
    },
    /** Only inside a transaction the caller owns. */
    save(r: ServiceRecord): void {
      upsert.run({ ...r, ports: JSON.stringify(r.ports) });
    },
    /** Only inside a transaction the caller owns. */
    remove(r: ServiceRecord): void {
      remove.run(r.namespace, r.name);
    },
  };
}

export type ServiceStore = ReturnType<typeof createServiceStore>;
