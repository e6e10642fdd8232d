// The only module that speaks SQL about instances, the revision and the event log (whose events are about
// instances or Services; Service rows are written by service-store.ts inside the same transaction).
import { createInterner } from './intern.js';
import type { Instance } from '../schemas/instance.js';
import type { Service, WatchResource } from '../schemas/service.js';
import type { ChangeEvent, InstanceRecord, RegistryChange, ServiceChangeEvent, ServiceRecord } from '../registry/types.js';
import type { Db } from './open.js';
import { createServiceStore } from './service-store.js';

interface InstanceRow {
  namespace: string;
  service: string;
  id: string;
  address: string;
  port: number;
  status: InstanceRecord['status'];
  weight: number;
  zone: string | null;
  tags: string;
  metadata: string;
  ttl_seconds: number;
  registered_at: number;
  last_heartbeat_at: number;
  revision: number;
  create_revision: number;
}

interface EventRow {
  revision: number;
  kind: EventKind;
  type: RegistryChange['type'];
  reason: RegistryChange['reason'];
  object: string;
}

/** The events table's `kind` column. */
type EventKind = 'instance' | 'service';

/** A change to commit: the record to write (or delete) and the event that tells watchers about it. */
export type StoredChange = { event: ChangeEvent; record: InstanceRecord } | { event: ServiceChangeEvent; record: ServiceRecord };

/** Which kinds of events a reader wants; instances only when not said. */
export type EventKinds = readonly WatchResource[];

function kindParams(kinds: EventKinds): [EventKind, EventKind] {
  // The statements test `kind IN (?, ?)`: one kind is passed twice, so one prepared statement serves every choice.
  const wanted = kinds.map((k): EventKind => (k === 'services' ? 'service' : 'instance'));
  return [wanted[0] ?? 'instance', wanted[1] ?? wanted[0] ?? 'instance'];
}

export interface HeartbeatMark {
  namespace: string;
  service: string;
  id: string;
  lastHeartbeatAt: number;
}

/** Trimming the event log deletes at most this many rows per write beyond what the write added. */
const TRIM_BATCH = 1000;

export function createInstanceStore(db: Db, options: { historySize: number }) {
  const { historySize } = options;
  const selectAll = db.prepare('SELECT * FROM instances');
  const upsert = db.prepare(`
    INSERT INTO instances (namespace, service, id, address, port, status, weight, zone, tags, metadata,
                           ttl_seconds, registered_at, last_heartbeat_at, revision, create_revision)
    VALUES (@namespace, @service, @id, @address, @port, @status, @weight, @zone, @tags, @metadata,
            @ttlSeconds, @registeredAt, @lastHeartbeatAt, @revision, @createRevision)
    ON CONFLICT (namespace, service, id) DO UPDATE SET
      address = excluded.address, port = excluded.port, status = excluded.status, weight = excluded.weight,
      zone = excluded.zone, tags = excluded.tags, metadata = excluded.metadata, ttl_seconds = excluded.ttl_seconds,
      registered_at = excluded.registered_at, last_heartbeat_at = excluded.last_heartbeat_at,
      revision = excluded.revision, create_revision = excluded.create_revision`);
  const remove = db.prepare('DELETE FROM instances WHERE namespace = ? AND service = ? AND id = ?');
  const appendEvent = db.prepare(
    'INSERT INTO events (revision, kind, type, reason, namespace, service, object) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const services = createServiceStore(db);
  const getCounter = db.prepare('SELECT value FROM counters WHERE name = ?').pluck();
  const setCounter = db.prepare('UPDATE counters SET value = ? WHERE name = ?');
  const trimEvents = db.prepare('DELETE FROM events WHERE revision <= ?');
  const markHeartbeat = db.prepare(
    'UPDATE instances SET last_heartbeat_at = ? WHERE namespace = ? AND service = ? AND id = ?',
  );
  const eventsAll = db.prepare(
    'SELECT revision, kind, type, reason, object FROM events WHERE kind IN (?, ?) AND revision > ? AND revision <= ? ORDER BY revision LIMIT ?',
  );
  const eventsNs = db.prepare(
    'SELECT revision, kind, type, reason, object FROM events WHERE kind IN (?, ?) AND namespace = ? AND revision > ? AND revision <= ? ORDER BY revision LIMIT ?',
  );
  const eventsSvc = db.prepare(
    'SELECT revision, kind, type, reason, object FROM events WHERE kind IN (?, ?) AND namespace = ? AND service = ? AND revision > ? AND revision <= ? ORDER BY revision LIMIT ?',
  );
  const lastChangeByService = db.prepare(
    'SELECT kind, namespace, service, MAX(revision) AS revision FROM events GROUP BY kind, namespace, service',
  );

  const commitTx = db.transaction((changes: StoredChange[]) => {
    for (const change of changes) {
      const { event } = change;
      if ('service' in event) {
        const record = change.record as ServiceRecord;
        if (event.type === 'DELETED') services.remove(record);
        else services.save(record);
        appendEvent.run(event.revision, 'service', event.type, event.reason, record.namespace, record.name, JSON.stringify(event.service));
      } else {
        const record = change.record as InstanceRecord;
        if (event.type === 'DELETED') remove.run(record.namespace, record.service, record.id);
        else upsert.run(toRow(record));
        appendEvent.run(event.revision, 'instance', event.type, event.reason, record.namespace, record.service, JSON.stringify(event.instance));
      }
    }
    const last = changes[changes.length - 1];
    if (!last) return;
    setCounter.run(last.event.revision, 'revision');
    const compacted = getCounter.get('compacted') as number;
    const target = last.event.revision - historySize;
    if (target > compacted) {
      const upTo = Math.min(target, compacted + TRIM_BATCH + changes.length);
      trimEvents.run(upTo);
      setCounter.run(upTo, 'compacted');
    }
  });

  const heartbeatTx = db.transaction((marks: HeartbeatMark[]) => {
    for (const m of marks) markHeartbeat.run(m.lastHeartbeatAt, m.namespace, m.service, m.id);
  });

  return {
    /** Opens the transaction that a turn's changes join (group commit); commit() nests as savepoints. */
    beginBatch(): void {
      db.exec('BEGIN IMMEDIATE');
    },
    commitBatch(): void {
      db.exec('COMMIT');
    },
    rollbackBatch(): void {
      if (db.inTransaction) db.exec('ROLLBACK');
    },
    /** Every instance, row by row: a million rows are never all in memory as rows at once. */
    *loadInstances(): Iterable<Omit<InstanceRecord, 'expiresAt' | 'lapsedAt'>> {
      const intern = createInterner();
      for (const row of selectAll.iterate() as Iterable<InstanceRow>) yield fromRow(row, intern);
    },
    loadServices(): ServiceRecord[] {
      return services.load();
    },
    revision(): number {
      return getCounter.get('revision') as number;
    },
    /** The highest revision no longer in the event log: resuming from an older one is refused. */
    compactedRevision(): number {
      return getCounter.get('compacted') as number;
    },
    /** Writes every change, its event, the new revision and the trim in one transaction (one fsync). */
    commit(changes: StoredChange[]): void {
      commitTx(changes);
    },
    saveHeartbeats(marks: HeartbeatMark[]): void {
      if (marks.length > 0) heartbeatTx(marks);
    },
    /**
     * Events with after < revision <= upTo, oldest first, at most limit, optionally for one namespace/service,
     * of the given kinds (instances only by default).
     */
    readEvents(
      filter: { namespace?: string; service?: string; resources?: EventKinds },
      after: number,
      upTo: number,
      limit: number,
    ): RegistryChange[] {
      const kinds = kindParams(filter.resources ?? ['instances']);
      const rows = (filter.namespace === undefined
        ? eventsAll.all(...kinds, after, upTo, limit)
        : filter.service === undefined
          ? eventsNs.all(...kinds, filter.namespace, after, upTo, limit)
          : eventsSvc.all(...kinds, filter.namespace, filter.service, after, upTo, limit)) as EventRow[];
      return rows.map((r): RegistryChange =>
        r.kind === 'service'
          ? { type: r.type, revision: r.revision, reason: r.reason as ServiceChangeEvent['reason'], service: JSON.parse(r.object) as Service }
          : { type: r.type, revision: r.revision, reason: r.reason as ChangeEvent['reason'], instance: JSON.parse(r.object) as Instance },
      );
    },
    /** Last change revision per kind and service still in the log, to seed long-poll indexes after a restart. */
    lastChangeByService(): { kind: WatchResource; namespace: string; service: string; revision: number }[] {
      return (lastChangeByService.all() as { kind: EventKind; namespace: string; service: string; revision: number }[]).map((r) => ({
        ...r,
        kind: r.kind === 'service' ? 'services' : 'instances',
      }));
    },
  };
}

export type InstanceStore = ReturnType<typeof createInstanceStore>;

function toRow(r: InstanceRecord) {
  return {
    namespace: r.namespace,
    service: r.service,
    id: r.id,
    address: r.address,
    port: r.port,
    status: r.status,
    weight: r.weight,
    zone: r.zone,
    tags: JSON.stringify(r.tags),
    metadata: JSON.stringify(r.metadata),
    ttlSeconds: r.ttlSeconds,
    registeredAt: r.registeredAt,
    lastHeartbeatAt: r.lastHeartbeatAt,
    revision: r.revision,
    createRevision: r.createRevision,
  };
}

type Interner = ReturnType<typeof createInterner>;

function fromRow(row: InstanceRow, intern: Interner): Omit<InstanceRecord, 'expiresAt' | 'lapsedAt'> {
  return {
    namespace: intern.string(row.namespace),
    service: intern.string(row.service),
    id: row.id,
    address: row.address,
    port: row.port,
    status: intern.string(row.status),
    weight: row.weight,
    zone: intern.string(row.zone),
    tags: intern.json<string[]>(row.tags),
    metadata: intern.json<Record<string, string>>(row.metadata),
    ttlSeconds: row.ttl_seconds,
    registeredAt: row.registered_at,
    lastHeartbeatAt: row.last_heartbeat_at,
    revision: row.revision,
    createRevision: row.create_revision,
  };
}
