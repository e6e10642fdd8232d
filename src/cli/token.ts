// rollcall token create: a new random token, shown once, and the auth file line that holds only its SHA-256.
import { type Command, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { ROLES } from '../auth/access.js';
import { sha256Hex } from '../auth/credentials.js';
import { collect } from './options.js';
import { fail } from './fail.js';

/** 32 random bytes: guessing is hopeless, and the prefix makes a leaked token easy to grep for. */
export function newToken(): string {
  return `rc_${randomBytes(32).toString('base64url')}`;
}

export function addTokenCommand(program: Command) {
  const token = program.command('token').description('make credentials for --auth-file');
  token
    .command('create')
    .description('print a new random token (once) and the line to paste under `tokens:` in the auth file')
    .requiredOption('--name <name>', 'who holds it: shown in logs and 403 messages, never the token')
    .addOption(new Option('--role <role>', 'read, write or admin').choices(ROLES).makeOptionMandatory())
    .option('--namespace <glob>', 'a namespace or glob (team-*), repeatable; "*" is every namespace', collect, [])
    .option('--cn <cn>', 'also accept a client certificate with this subject CN (mutual TLS)')
    .addHelpText(
      'after',
      `
stdout: line 1 the token, line 2 the auth file entry. Example:
  rollcall token create --name deployer --role write --namespace team-a > new.txt
  tail -n 1 new.txt >> /etc/rollcall/auth.yaml && kill -HUP $(pidof rollcall)`,
    )
    .action(async (opts: { name: string; role: string; namespace: string[]; cn?: string }) => {
      if (opts.namespace.length === 0) fail('token create: give --namespace at least once (a name, a glob like team-*, or "*")');
      // Loaded on demand: YAML and zod would slow every other command's start.
      const { authEntry, entryLine } = await import('../auth/auth-file.js');
      const value = newToken();
      const parsed = authEntry.safeParse({
        name: opts.name,
        role: opts.role,
        namespaces: opts.namespace,
        sha256: sha256Hex(value),
        ...(opts.cn === undefined ? {} : { cn: opts.cn }),
      });
      if (!parsed.success) {
        fail(`token create: ${parsed.error.issues.map((i) => `--${i.path[0] === 'namespaces' ? 'namespace' : String(i.path[0])}: ${i.message}`).join('; ')}`);
      }
      process.stdout.write(`${value}\n${entryLine(parsed.data)}\n`);
      process.stderr.write('The token is shown only now; the auth file holds its SHA-256. Paste line 2 under `tokens:` and send the registry SIGHUP.\n');
    });
}

