// People commands for one service's instances, mirroring the REST routes:
//   register   PUT    …/instances/{id}
//   heartbeat  PUT    …/instances/{id}/heartbeat
//   deregister DELETE …/instances/{id}
//   patch      PATCH  …/instances/{id}   (and drain / undrain / weight, its everyday forms)
//   get        GET    …/instances/{id}
//   list       GET    …/services/{service}/instances
import { type Command, Option } from 'commander';
import type { Instance, InstanceStatus, PatchInput, RegisterInput } from '../client/index.js';
import {
  STATUSES,
  addRegistryOptions,
  collect,
  collectMeta,
  defaultAddress,
  intParser,
  type RegistryFlags,
} from './options.js';
import { hostPort, printJson, printTable, withRegistryClient } from './output.js';

interface NamespaceFlags extends RegistryFlags {
  namespace: string;
}

function withNamespace(cmd: Command): Command {
  return cmd.option('-n, --namespace <namespace>', 'namespace', 'default');
}


function name(i: Pick<Instance, 'namespace' | 'service' | 'id'>): string {
  return `${i.namespace}/${i.service}/${i.id}`;
}

function secondsLeft(iso: string): string {
  const ms = Date.parse(iso) - Date.now();
  return Number.isFinite(ms) ? `${Math.max(0, Math.round(ms / 1000))}s` : '?';
}

export function addRegisterCommand(program: Command): void {
  const cmd = program
    .command('register')
    .description('register an instance, or replace its registration (PUT)')
    .argument('<service>', 'service name')
    .argument('<id>', 'instance id')
    // Checked in the action, not by commander: a missing <service> or <id> must be reported before a missing --port.
    .option('--port <port>', 'port the instance serves on (required)', intParser(1, 65535))
    .option('--address <address>', 'address peers connect to (default: first non-loopback IPv4, else 127.0.0.1)')
    .addOption(new Option('--status <status>', 'initial status').choices(STATUSES))
    .option('--weight <weight>', 'relative weight, 0 = no new traffic', intParser(0, 256))
    .option('--zone <zone>', 'zone the instance runs in')
    .option('--tag <tag>', 'a tag (repeatable)', collect)
    .option('--meta <key=value>', 'a metadata entry (repeatable)', collectMeta)
    .option('--ttl <seconds>', 'lease length in seconds', intParser(1, 86400));
  withNamespace(addRegistryOptions(cmd)).action(
    async (
      service: string,
      id: string,
      flags: NamespaceFlags & {
        port?: number;
        address?: string;
        status?: InstanceStatus;
        weight?: number;
        zone?: string;
        tag?: string[];
        meta?: Record<string, string>;
        ttl?: number;
      },
    ) => {
      const port = flags.port ?? cmd.error("error: required option '--port <port>' not specified");
      await withRegistryClient(flags, async (client) => {
        const body: RegisterInput = { address: flags.address ?? defaultAddress(), port };
        if (flags.status !== undefined) body.status = flags.status;
        if (flags.weight !== undefined) body.weight = flags.weight;
        if (flags.zone !== undefined) body.zone = flags.zone;
        if (flags.tag !== undefined) body.tags = flags.tag;
        if (flags.meta !== undefined) body.metadata = flags.meta;
        if (flags.ttl !== undefined) body.ttlSeconds = flags.ttl;
        const { instance, created } = await client.putInstance(flags.namespace, service, id, body);
        if (flags.json) printJson(instance);
        else
          process.stdout.write(
            `${created ? 'registered' : 'replaced'} ${name(instance)} at ${hostPort(instance.address, instance.port)}` +
              ` (${instance.status}, weight ${instance.weight}, ttl ${instance.ttlSeconds}s: heartbeat before ${instance.expiresAt})\n`,
          );
      });
    },
  );
}

export function addHeartbeatCommand(program: Command): void {
  const cmd = program
    .command('heartbeat')
    .description('renew an instance\'s lease (exit 3 when the registry no longer knows it)')
    .argument('<service>', 'service name')
    .argument('<id>', 'instance id');
  withNamespace(addRegistryOptions(cmd)).action(async (service: string, id: string, flags: NamespaceFlags) => {
    await withRegistryClient(flags, async (client) => {
      const instance = await client.heartbeat(flags.namespace, service, id);
      if (flags.json) printJson(instance);
      else process.stdout.write(`renewed ${name(instance)} until ${instance.expiresAt}\n`);
    });
  });
}

export function addDeregisterCommand(program: Command): void {
  const cmd = program
    .command('deregister')
    .description('remove an instance (exit 3 when it is not registered)')
    .argument('<service>', 'service name')
    .argument('<id>', 'instance id');
  withNamespace(addRegistryOptions(cmd)).action(async (service: string, id: string, flags: NamespaceFlags) => {
    await withRegistryClient(flags, async (client) => {
      await client.deleteInstance(flags.namespace, service, id);
      if (flags.json) printJson({ deregistered: true, namespace: flags.namespace, service, id });
      else process.stdout.write(`deregistered ${flags.namespace}/${service}/${id}\n`);
    });
  });
}

interface PatchFlags extends NamespaceFlags {
  status?: InstanceStatus;
  weight?: number;
  zone?: string;
  tag?: string[];
  meta?: Record<string, string>;
  ttl?: number;
}

/** PATCH and print the result: the one way every state change from the CLI reaches the registry. */
async function patchAndPrint(flags: NamespaceFlags, service: string, id: string, body: PatchInput): Promise<void> {
  await withRegistryClient(flags, async (client) => {
    const i = await client.patchInstance(flags.namespace, service, id, body);
    if (flags.json) printJson(i);
    else
      process.stdout.write(
        `updated ${name(i)}: ${i.status}, weight ${i.weight}, zone ${i.zone ?? '-'}, ttl ${i.ttlSeconds}s (revision ${i.revision})\n`,
      );
  });
}

export function addPatchCommands(program: Command): void {
  const cmd = program
    .command('patch')
    .description('change some fields of a registered instance (PATCH; renews its lease; exit 3 when it is not registered)')
    .argument('<service>', 'service name')
    .argument('<id>', 'instance id')
    .addOption(new Option('--status <status>', 'new status').choices(STATUSES))
    .option('--weight <weight>', 'relative weight, 0 = no new traffic', intParser(0, 256))
    .option('--zone <zone>', 'zone the instance runs in ("" clears it)')
    .option('--tag <tag>', 'the tags, replacing the current ones (repeatable)', collect)
    .option('--meta <key=value>', 'the metadata, replacing the current entries (repeatable)', collectMeta)
    .option('--ttl <seconds>', 'lease length in seconds', intParser(1, 86400));
  withNamespace(addRegistryOptions(cmd)).action(async (service: string, id: string, flags: PatchFlags) => {
    const body: PatchInput = {};
    if (flags.status !== undefined) body.status = flags.status;
    if (flags.weight !== undefined) body.weight = flags.weight;
    if (flags.zone !== undefined) body.zone = flags.zone === '' ? null : flags.zone;
    if (flags.tag !== undefined) body.tags = flags.tag;
    if (flags.meta !== undefined) body.metadata = flags.meta;
    if (flags.ttl !== undefined) body.ttlSeconds = flags.ttl;
    if (Object.keys(body).length === 0) return cmd.error('error: nothing to change: give at least one of --status, --weight, --zone, --tag, --meta, --ttl');
    await patchAndPrint(flags, service, id, body);
  });

  for (const [verb, status, what] of [
    ['drain', 'draining', 'stop sending it new traffic; open connections finish (status draining)'],
    ['undrain', 'up', 'route traffic to it again (status up)'],
  ] as const) {
    const c = program.command(verb).description(what).argument('<service>', 'service name').argument('<id>', 'instance id');
    withNamespace(addRegistryOptions(c)).action(async (service: string, id: string, flags: NamespaceFlags) => {
      await patchAndPrint(flags, service, id, { status });
    });
  }

  const w = program
    .command('weight')
    .description('set the relative weight of an instance (0 = no new traffic)')
    .argument('<service>', 'service name')
    .argument('<id>', 'instance id')
    .argument('<weight>', 'an integer from 0 to 256', intParser(0, 256));
  withNamespace(addRegistryOptions(w)).action(async (service: string, id: string, weight: number, flags: NamespaceFlags) => {
    await patchAndPrint(flags, service, id, { weight });
  });
}

export function addGetCommand(program: Command): void {
  const cmd = program
    .command('get')
    .description('show one instance (exit 3 when it is not registered)')
    .argument('<service>', 'service name')
    .argument('<id>', 'instance id');
  withNamespace(addRegistryOptions(cmd)).action(async (service: string, id: string, flags: NamespaceFlags) => {
    await withRegistryClient(flags, async (client) => {
      const i = await client.getInstance(flags.namespace, service, id);
      if (flags.json) {
        printJson(i);
        return;
      }
      const rows: Array<[string, string]> = [
        ['instance', name(i)],
        ['address', hostPort(i.address, i.port)],
        ['status', i.status],
        ['weight', String(i.weight)],
        ['zone', i.zone ?? '-'],
        ['tags', i.tags.length > 0 ? i.tags.join(',') : '-'],
        ['metadata', Object.keys(i.metadata).length > 0 ? Object.entries(i.metadata).map(([k, v]) => `${k}=${v}`).join(',') : '-'],
        ['ttl', `${i.ttlSeconds}s`],
        ['registered', i.registeredAt],
        ['last heartbeat', i.lastHeartbeatAt],
        ['expires', `${i.expiresAt} (in ${secondsLeft(i.expiresAt)})`],
        ['revision', `${i.revision} (created at ${i.createRevision})`],
      ];
      const width = Math.max(...rows.map(([k]) => k.length));
      process.stdout.write(rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n') + '\n');
    });
  });
}

export function addListCommand(program: Command): void {
  const cmd = program
    .command('list')
    .description('list the instances of a service (an unknown service lists empty)')
    .argument('<service>', 'service name')
    .addOption(new Option('--status <status>', 'only instances with this status').choices(STATUSES))
    .option('--zone <zone>', 'only instances in this zone')
    .option('--tag <tag>', 'only instances with this tag');
  withNamespace(addRegistryOptions(cmd)).action(
    async (service: string, flags: NamespaceFlags & { status?: InstanceStatus; zone?: string; tag?: string }) => {
      await withRegistryClient(flags, async (client) => {
        const filter: { status?: InstanceStatus; zone?: string; tag?: string } = {};
        if (flags.status !== undefined) filter.status = flags.status;
        if (flags.zone !== undefined) filter.zone = flags.zone;
        if (flags.tag !== undefined) filter.tag = flags.tag;
        const list = await client.listInstances(flags.namespace, service, filter);
        if (flags.json) {
          printJson(list);
          return;
        }
        if (list.items.length === 0) {
          process.stdout.write(`no instances of ${flags.namespace}/${service} (revision ${list.revision})\n`);
          return;
        }
        printTable(
          ['ID', 'ADDRESS', 'STATUS', 'WEIGHT', 'ZONE', 'TAGS', 'EXPIRES IN'],
          list.items.map((i) => [
            i.id,
            hostPort(i.address, i.port),
            i.status,
            i.weight,
            i.zone ?? '-',
            i.tags.length > 0 ? i.tags.join(',') : '-',
            secondsLeft(i.expiresAt),
          ]),
        );
      });
    },
  );
}

export function addInstanceCommands(program: Command): void {
  addRegisterCommand(program);
  addHeartbeatCommand(program);
  addDeregisterCommand(program);
  addPatchCommands(program);
  addGetCommand(program);
  addListCommand(program);
}
