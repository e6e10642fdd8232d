// consul-template's loop for one rendered config: compare with the file on disk, write atomically only when it
// changed, check the new file in place, put the previous one back when the check fails, reload only after a pass.
import { nodeConfigFs, type ConfigFs } from './atomic-file.js';
import { createShellRunner, describeFailure, type CommandRunner } from './run-command.js';

export interface WriteConfigRequest {
  path: string;
  content: string;
  /** Shell command run after the new file is in place (e.g. `nginx -t`); failure → previous file restored. */
  check?: string;
  /** Shell command run after a passing check (e.g. `nginx -s reload`). */
  reload?: string;
}

export type WriteConfigResult =
  /** Same bytes already on disk: nothing written, nothing run. */
  | { status: 'unchanged'; changed: false }
  /** New file in place, check (if any) passed; reloaded says whether a reload command ran and succeeded. */
  | { status: 'written'; changed: true; reloaded: boolean }
  /** The check failed: the previous file is back (or the new one removed when there was none); no reload. */
  | { status: 'check_failed'; changed: false; restored: 'previous' | 'removed'; reason: string; output: string }
  /** The check passed and the new file stays, but the reload failed: the proxy still runs the old config. */
  | { status: 'reload_failed'; changed: true; reason: string };

export interface WriteConfigDeps {
  fs?: ConfigFs;
  run?: CommandRunner;
}

export async function writeConfig(req: WriteConfigRequest, deps: WriteConfigDeps = {}): Promise<WriteConfigResult> {
  const fs = deps.fs ?? nodeConfigFs;
  const run = deps.run ?? createShellRunner();
  const previous = await fs.read(req.path);
  if (previous !== null && previous.content === req.content) return { status: 'unchanged', changed: false };

  await fs.writeAtomic(req.path, req.content, previous?.mode);

  if (req.check) {
    const result = await run(req.check);
    if (result.code !== 0) {
      // The check reads the live path (that is how `nginx -t` works), so the new file had to be in place; now undo
      // it the same atomic way, so a proxy that restarts meanwhile still finds a config it accepted before.
      if (previous !== null) await fs.writeAtomic(req.path, previous.content, previous.mode);
      else await fs.remove(req.path);
      return {
        status: 'check_failed',
        changed: false,
        restored: previous !== null ? 'previous' : 'removed',
        reason: `check ${describeFailure(req.check, result)}`,
        // Everything the check said, so a caller can find what in the config it refused.
        output: result.output,
      };
    }
  }

  if (req.reload) {
    const result = await run(req.reload);
    if (result.code !== 0) return { status: 'reload_failed', changed: true, reason: `reload ${describeFailure(req.reload, result)}` };
    return { status: 'written', changed: true, reloaded: true };
  }
  return { status: 'written', changed: true, reloaded: false };
}
