// People commands for explicit Services (stable virtual IPs), mirroring the REST routes:
//   service create NAME  PUT    /v1/namespaces/{ns}/services/{name}
//   service get NAME     GET    …/services/{name}
//   service delete NAME  DELETE …/services/{name}
//   service list         GET    /v1/namespaces/{ns}/services
// and `rollcall env`, which prints the Kubernetes-style variables for a namespace's Services.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { RollcallClientError, type PutServiceInput, type Service } from '../client/index.js';
import { addRegistryOptions, type RegistryFlags } from './options.js';
import { printJson, printTable, withRegistryClient } from './output.js';
import { ENV_FORMATS, fetchEnvServices, formatEnv, parseServiceSelection, selectServices, serviceEnv, type EnvFormat } from './service-env.js';

interface NamespaceFlags extends RegistryFlags {
  namespace: string;
}

type PortInput = PutServiceInput['ports'][number];

const PORT_SPEC = /^(\d{1,5})(?::(\d{1,5}))?(?:\/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?))?$/;

/** `80`, `80:8080`, `80/http` or `80:8080/http`: the Service port, the instances' port, the port's name. */
export function parsePortSpec(value: string): PortInput {
  const m = PORT_SPEC.exec(value);
  const inRange = (n: string | undefined) => n === undefined || (Number(n) >= 1 && Number(n) <= 65535);
  if (!m || !inRange(m[1]) || !inRange(m[2])) {
    throw new InvalidArgumentError('must be PORT[:TARGET_PORT][/NAME], ports 1-65535 and NAME a DNS label, e.g. 80:8080/http');
  }
  const port: PortInput = { port: Number(m[1]) };
  if (m[2] !== undefined) port.targetPort = Number(m[2]);
  if (m[3] !== undefined) port.name = m[3];
  return port;
}

function collectPort(value: string, previous: PortInput[] = []): PortInput[] {
  return [...previous, parsePortSpec(value)];
}

function describePorts(ports: Service['ports']): string {
  return ports
    .map((p) => `${p.port}${p.targetPort === null ? '' : `:${p.targetPort}`}${p.name === null ? '' : `/${p.name}`}`)
    .join(',');
}

function withNamespace(cmd: Command): Command {
  return cmd.option('-n, --namespace <namespace>', 'namespace', 'default');
}

function addCreate(group: Command): void {
  const cmd = group
    .command('create')
    .description('create a Service (a stable virtual IP), or replace its ports (PUT)')
    .argument('<name>', 'service name')
    .requiredOption('--port <port[:target][/name]>', 'a port (repeatable): virtual port, instances\' port (default: each one\'s registered port), name', collectPort)
    .option('--virtual-ip <ip>', 'ask for this address inside the registry\'s --service-cidr (default: allocated)');
  withNamespace(addRegistryOptions(cmd)).action(async (name: string, flags: NamespaceFlags & { port: PortInput[]; virtualIp?: string }) => {
    await withRegistryClient(flags, async (client) => {
      const body: PutServiceInput = { ports: flags.port };
      if (flags.virtualIp !== undefined) body.virtualIP = flags.virtualIp;
      const { service, created } = await client.services.put(flags.namespace, name, body);
      if (flags.json) printJson(service);
      else
        process.stdout.write(
          `${created ? 'created' : 'replaced'} service ${service.namespace}/${service.name} at ${service.virtualIP} (ports ${describePorts(service.ports)}, revision ${service.revision})\n`,
        );
    });
  });
}

function addGet(group: Command): void {
  const cmd = group.command('get').description('show a Service (exit 3 when it does not exist)').argument('<name>', 'service name');
  withNamespace(addRegistryOptions(cmd)).action(async (name: string, flags: NamespaceFlags) => {
    await withRegistryClient(flags, async (client) => {
      const s = await client.services.get(flags.namespace, name);
      if (flags.json) {
        printJson(s);
        return;
      }
      process.stdout.write(`service:     ${s.namespace}/${s.name}\nvirtual IP:  ${s.virtualIP}\ncreated:     ${s.createdAt}\nrevision:    ${s.revision} (created at ${s.createRevision})\n`);
      printTable(
        ['PORT', 'NAME', 'TARGET PORT', 'PROTOCOL'],
        s.ports.map((p) => [p.port, p.name ?? '-', p.targetPort === null ? 'registered port' : String(p.targetPort), p.protocol]),
      );
    });
  });
}

function addDelete(group: Command): void {
  const cmd = group
    .command('delete')
    .description('delete a Service and release its virtual IP; its instances stay registered (exit 3 when it does not exist)')
    .argument('<name>', 'service name');
  withNamespace(addRegistryOptions(cmd)).action(async (name: string, flags: NamespaceFlags) => {
    await withRegistryClient(flags, async (client) => {
      await client.services.delete(flags.namespace, name);
      if (flags.json) printJson({ deleted: true, namespace: flags.namespace, name });
      else process.stdout.write(`deleted service ${flags.namespace}/${name}\n`);
    });
  });
}

function addList(group: Command): void {
  const cmd = group.command('list').description('list the services of a namespace: virtual IP, ports and instance counts');
  withNamespace(addRegistryOptions(cmd)).action(async (flags: NamespaceFlags) => {
    await withRegistryClient(flags, async (client) => {
      const list = await client.services.list(flags.namespace);
      if (flags.json) printJson(list);
      else if (list.items.length === 0) process.stdout.write(`no services in namespace ${flags.namespace}\n`);
      else
        printTable(
          ['SERVICE', 'VIRTUAL IP', 'PORTS', 'INSTANCES', 'UP'],
          list.items.map((s) => [s.name, s.virtualIP ?? '-', s.ports ? describePorts(s.ports) : '-', s.instances, s.up]),
        );
    });
  });
}

export function addServiceCommands(program: Command): void {
  const group = program.command('service').description('explicit Services: stable virtual IPs (create, get, delete, list)');
  addCreate(group);
  addGet(group);
  addDelete(group);
  addList(group);
}

function selectionArg(value: string): 'all' | string[] {
  const selection = parseServiceSelection(value);
  if (typeof selection === 'string') throw new InvalidArgumentError(selection);
  return selection;
}

export function addEnvCommand(program: Command): void {
  const cmd = program
    .command('env')
    .description('print <SVC>_SERVICE_HOST / _SERVICE_PORT / _SERVICE_PORT_<NAME> for the Services of a namespace')
    .addOption(new Option('--format <format>', 'sh (export, quoted), dotenv (systemd EnvironmentFile=, compose env_file) or json').choices(ENV_FORMATS).default('sh'))
    .option('--services <all|a,b>', 'which Services: all, or a comma-separated list (a missing one is an error, exit 3)', selectionArg, 'all' as const);
  withNamespace(addRegistryOptions(cmd, { json: false })).action(async (flags: NamespaceFlags & { format: EnvFormat; services: 'all' | string[] }) => {
    await withRegistryClient({ ...flags, json: false }, async (client) => {
      const chosen = selectServices(await fetchEnvServices(client, flags.namespace), flags.services, flags.namespace);
      // A named Service that does not exist is "not found" (exit 3), like a 404 from the registry.
      if (typeof chosen === 'string') throw new RollcallClientError('service_not_found', chosen, { status: 404 });
      for (const name of chosen.skipped) process.stderr.write(`rollcall: skipped service "${name}": a name starting with a digit cannot be a variable\n`);
      process.stdout.write(formatEnv(serviceEnv(chosen.services), flags.format));
    });
  });
}

