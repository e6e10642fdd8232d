import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

/**
 * Opens the registry database. WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL on
 * every commit, so a 2xx answer means the change survives kill -9 and power loss alike. Heartbeats never
 * commit on their own (see the lazy flush in the registry), so FULL costs them nothing.
 */
export function openDatabase(file: string): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}
