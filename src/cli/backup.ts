import type { Command } from 'commander';
import { join } from 'node:path';
import { backupDatabase } from '../store/backup.js';
import { fail } from './fail.js';

export function addBackupCommand(program: Command) {
  program
    .command('backup')
    .description("copy the registry's database consistently while the server runs (SQLite backup API)")
    .requiredOption('--data-dir <dir>', 'the data dir of the registry (env: ROLLCALL_DATA_DIR)', process.env.ROLLCALL_DATA_DIR)
    .requiredOption('--out <file>', 'where to write the copy (replaced atomically if it exists)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { dataDir: string; out: string; json?: boolean }) => {
      try {
        const result = await backupDatabase(join(opts.dataDir, 'rollcall.db'), opts.out);
        if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else {
          process.stdout.write(
            `backed up ${result.instances} instances at revision ${result.revision} to ${result.file} (${result.bytes} bytes)\n`,
          );
        }
      } catch (err) {
        fail(`backup failed: ${(err as Error).message}`);
      }
    });
}
