import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './open.js';

// migrations/ sits at the package root; this file is src/store (or dist/src/store once built).
const here = dirname(fileURLToPath(import.meta.url));
export const MIGRATIONS_DIR = [join(here, '../../migrations'), join(here, '../../../migrations')].find((dir) => {
  try {
    readdirSync(dir);
    return true;
  } catch {
    return false;
  }
}) ?? join(here, '../../migrations');

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d+-[\w-]+\.sql$/.test(f))
    .map((f) => ({ version: Number.parseInt(f, 10), name: f, sql: readFileSync(join(dir, f), 'utf8') }))
    .sort((a, b) => a.version - b.version);
}

/**
 * Applies the migrations not yet recorded, each in its own transaction with its record, so an upgrade is one
 * restart and a crash mid-way leaves the database at the last whole migration. Returns the versions applied.
 */
export function migrate(db: Db, migrations = readMigrations()): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const applied = new Set(
    db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[],
  );
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const done: number[] = [];
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    })();
    done.push(m.version);
  }
  return done;
}

export function pendingMigrations(db: Db, migrations = readMigrations()): number[] {
  const applied = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
  return migrations.filter((m) => !applied.has(m.version)).map((m) => m.version);
}
