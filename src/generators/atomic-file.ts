// Replaces a file so readers see the old content or the new one, never a mix, even across a crash:
// temp file in the same folder (rename is atomic only within one filesystem), fsync, rename, fsync the folder.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The file operations write-config needs; injectable so tests can make any step fail. */
export interface ConfigFs {
  /** null when the file does not exist. */
  read(path: string): Promise<{ content: string; mode: number } | null>;
  writeAtomic(path: string, content: string, mode?: number): Promise<void>;
  remove(path: string): Promise<void>;
}

export async function readIfExists(path: string): Promise<{ content: string; mode: number } | null> {
  try {
    const [content, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { content, mode: info.mode & 0o7777 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function writeFileAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  // Dot-prefixed so globs like conf.d/*.conf never pick up a half-written temp file.
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(content, 'utf8');
      // open(mode) is filtered by the umask; chmod makes the result match the file it replaces.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    renamed = true;
    await syncDir(dir);
  } finally {
    if (!renamed) await rm(temp, { force: true });
  }
}

export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable. Some platforms refuse fsync on a directory; the rename is still atomic there.
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    /* best effort, see above */
  }
}

export const nodeConfigFs: ConfigFs = { read: readIfExists, writeAtomic: writeFileAtomic, remove: removeFile };
