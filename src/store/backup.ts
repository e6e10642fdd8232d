// Online backup of the registry database with SQLite's backup API, beside a running server.
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export interface BackupResult {
  file: string;
  bytes: number;
  pages: number;
  revision: number;
  instances: number;
}

/**
 * Copies the database at `source` to `out` while a server may be writing to it (WAL lets a second connection
 * read). All pages are copied in one backup step, i.e. inside one read transaction: the copy is one
 * consistent revision, and a step-by-step copy would restart each time the server commits (it commits
 * several times per second under load). Written to a temporary file beside `out`, checked, then renamed, so
 * `out` is either the old file or a complete, verified copy.
 */
export async function backupDatabase(source: string, out: string): Promise<BackupResult> {
  if (!existsSync(source)) throw new Error(`no registry database at ${source}`);
  if (!existsSync(dirname(out))) throw new Error(`the folder of ${out} does not exist`);
  const db = new Database(source, { fileMustExist: true });
  const temp = `${out}.partial-${process.pid}`;
  try {
    db.pragma('busy_timeout = 5000');
    const metadata = await db.backup(temp, { progress: () => 0x7fffffff });
    const copy = new Database(temp, { readonly: true });
    try {
      const check = copy.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new Error(`the copy failed its integrity check: ${String(check)}`);
      const revision = copy.prepare("SELECT value FROM counters WHERE name = 'revision'").pluck().get() as number;
      const instances = copy.prepare('SELECT COUNT(*) FROM instances').pluck().get() as number;
      copy.close();
      renameSync(temp, out);
      return { file: out, bytes: statSync(out).size, pages: metadata.totalPages, revision, instances };
    } finally {
      if (copy.open) copy.close();
    }
  } finally {
    db.close();
    rmSync(temp, { force: true });
  }
}
