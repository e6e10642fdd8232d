-- 002: explicit Services with stable virtual IPs, and events of more than one kind in the one event log.
CREATE TABLE services (
  namespace       TEXT    NOT NULL,
  name            TEXT    NOT NULL,
  virtual_ip      TEXT    NOT NULL UNIQUE,  -- canonical text; UNIQUE is the last guard against handing one out twice
  ports           TEXT    NOT NULL,         -- JSON array of {name, port, targetPort, protocol}
  created_at      INTEGER NOT NULL,         -- epoch ms
  revision        INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

-- Each event is about an instance or a Service; `service` stays the service name either way, so the
-- (namespace, service) filters serve both kinds. Rows from before this migration are all instance events.
ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'instance';
ALTER TABLE events RENAME COLUMN instance TO object;  -- JSON of the instance or Service as it was at this revision
