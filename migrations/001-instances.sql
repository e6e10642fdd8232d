-- 001: the registry's durable state: live instances, the registry-wide revision and the event log that watchers resume from.
CREATE TABLE instances (
  namespace         TEXT    NOT NULL,
  service           TEXT    NOT NULL,
  id                TEXT    NOT NULL,
  address           TEXT    NOT NULL,
  port              INTEGER NOT NULL,
  status            TEXT    NOT NULL,
  weight            INTEGER NOT NULL,
  zone              TEXT,
  tags              TEXT    NOT NULL,  -- JSON array
  metadata          TEXT    NOT NULL,  -- JSON object
  ttl_seconds       INTEGER NOT NULL,
  registered_at     INTEGER NOT NULL,  -- epoch ms
  last_heartbeat_at INTEGER NOT NULL,  -- epoch ms, persisted lazily (heartbeats cost no fsync)
  revision          INTEGER NOT NULL,
  create_revision   INTEGER NOT NULL,
  PRIMARY KEY (namespace, service, id)
) WITHOUT ROWID;

-- One row per counter. 'revision' only grows; 'compacted' is the highest revision trimmed from the event log.
CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('revision', 0), ('compacted', 0);

CREATE TABLE events (
  revision  INTEGER PRIMARY KEY,
  type      TEXT NOT NULL,
  reason    TEXT NOT NULL,
  namespace TEXT NOT NULL,
  service   TEXT NOT NULL,
  instance  TEXT NOT NULL  -- JSON of the instance as it was at this revision
);
CREATE INDEX events_by_service ON events (namespace, service, revision);
