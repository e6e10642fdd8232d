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
  if (file !== ':memory:') checkIntegrity(db, file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * Refuses a damaged database file at start (PRAGMA quick_check: every page and index entry readable and well
 * formed; O(size), no full cross-check) rather than serving garbage. Throws one line saying what to do.
 */
function checkIntegrity(db: Db, file: string): void {
  let problem: string | undefined;
  try {
    const rows = db.pragma('quick_check(3)', { simple: false }) as { quick_check: string }[];
    if (rows.length !== 1 || rows[0]!.quick_check !== 'ok') problem = rows.map((r) => r.quick_check).join('; ');
  } catch (err) {
    problem = (err as Error).message;
  }
  if (problem === undefined) return;
  db.close();
  throw new Error(
    `the database file ${file} is damaged (${problem.replace(/\s+/g, ' ')}); restore it from a backup (rollcall backup) or move it away to start empty`,
  );
}
