// People commands for the catalog: `rollcall services` (GET /v1/namespaces/{ns}/services) and
// `rollcall namespaces` (GET /v1/namespaces).
import type { Command } from 'commander';
import { addRegistryOptions, type RegistryFlags } from './options.js';
import { printJson, printTable, withRegistryClient } from './output.js';


export function addServicesCommand(program: Command): void {
  const cmd = program
    .command('services')
    .description('list the services of a namespace with their instance counts')
    .option('-n, --namespace <namespace>', 'namespace', 'default');
  addRegistryOptions(cmd).action(async (flags: RegistryFlags & { namespace: string }) => {
    await withRegistryClient(flags, async (client) => {
      const list = await client.listServices(flags.namespace);
      if (flags.json) printJson(list);
      else if (list.items.length === 0) process.stdout.write(`no services in namespace ${flags.namespace}\n`);
      else printTable(['SERVICE', 'INSTANCES', 'UP'], list.items.map((s) => [s.name, s.instances, s.up]));
    });
  });
}

export function addNamespacesCommand(program: Command): void {
  const cmd = program.command('namespaces').description('list the namespaces with their service and instance counts');
  addRegistryOptions(cmd).action(async (flags: RegistryFlags) => {
    await withRegistryClient(flags, async (client) => {
      const list = await client.listNamespaces();
      if (flags.json) printJson(list);
      else if (list.items.length === 0) process.stdout.write('no namespaces (nothing is registered)\n');
      else printTable(['NAMESPACE', 'SERVICES', 'INSTANCES'], list.items.map((n) => [n.name, n.services, n.instances]));
    });
  });
}

export function addNamespaceCommands(program: Command): void {
  addServicesCommand(program);
  addNamespacesCommand(program);
}
