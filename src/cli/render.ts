// `rollcall render <nginx|haproxy|template>`: render the registry into a proxy config, once or following it.
// Rendering is local, with the same pure generators the HTTP render route uses, so templates work too.
import { readFileSync } from 'node:fs';
import { Argument, type Command, InvalidArgumentError, Option } from 'commander';
import { createClient, type Instance, type RollcallClient, type WatchView } from '../client/index.js';
import { RollcallError } from '../errors.js';
import { createShellRunner, describeFailure, type CommandRunner } from '../generators/run-command.js';
import { followSource, mergeSources, type FollowSource } from '../generators/follow.js';
import { isolateFailure } from '../generators/isolate-failure.js';
import { renderHaproxy } from '../generators/haproxy.js';
import { renderNginx } from '../generators/nginx.js';
import {
  BALANCE_VALUES,
  DEFAULT_BALANCE,
  DEFAULT_LISTEN,
  parseGeneratorOptions,
  type GeneratorOptions,
} from '../generators/options.js';
import { createHostResolver, type HostResolver } from '../generators/resolve-hosts.js';
import { instanceKey } from '../generators/snapshot.js';
import { compileTemplate } from '../generators/template.js';
import { writeConfig, type WriteConfigResult } from '../generators/write-config.js';
import { DNS_LABEL } from '../schemas/instance.js';
import { addRegistryOptions, clientOptions, collect, intParser, type RegistryFlags } from './options.js';
import { describeError, exitCodeFor } from './output.js';

const KINDS = ['nginx', 'haproxy', 'template'] as const;
type Kind = (typeof KINDS)[number];

interface RenderFlags extends RegistryFlags {
  namespace: string;
  service?: string[];
  listen: string;
  balance: string;
  template?: string;
  out?: string;
  watch?: boolean;
  check?: string;
  reload?: string;
  debounce: number;
  maxDelay: number;
  readyTimeout: number;
  resolve: boolean;
}

/** How long a one-shot waits for the registry's snapshot before giving up. */
const ONE_SHOT_READY_MS = 10_000;

function parseNamespace(value: string): string {
  if (!DNS_LABEL.test(value)) throw new InvalidArgumentError('must be a DNS-1123 label (a-z, 0-9, "-")');
  return value;
}

class UsageError extends Error {}

export function addRenderCommand(program: Command): void {
  const cmd = program
    .command('render')
    .description('render an nginx or HAProxy config (or your own template) from the registry, once or following it with --watch')
    .addArgument(new Argument('<kind>', 'what to render').choices(KINDS))
    .option('-n, --namespace <namespace>', 'namespace to render', parseNamespace, 'default')
    .option('--service <names>', 'only these services (comma list, repeatable)', collect)
    .option('--listen <listen>', 'where the proxy listens: PORT, ADDRESS:PORT or [IPV6]:PORT', DEFAULT_LISTEN)
    .addOption(new Option('--balance <algorithm>', 'load-balancing algorithm').choices(BALANCE_VALUES).default(DEFAULT_BALANCE))
    .option('--template <file>', 'Eta template to render (with kind "template"); data: it.namespace, it.instances, it.routable, it.services')
    .option('--out <file>', 'write here atomically (temp file + rename) instead of printing; unchanged content is not rewritten')
    .option('--watch', 'keep running: re-render on every registry change (debounced)')
    .option('--check <command>', 'shell command run after the new file is in place; on failure the previous file is restored and nothing reloads')
    .option('--reload <command>', 'shell command run after a changed file passed --check')
    .option(
      '--no-resolve',
      'nginx: keep instances whose hostname does not resolve here (by default they are left out with a warning, since nginx refuses a whole config over one unknown host)',
    )
    .option('--debounce <ms>', 'quiet period before rendering a burst of changes', intParser(0, 600_000), 250)
    .option('--max-delay <ms>', 'render at the latest this long after the first change of a burst', intParser(0, 600_000), 2000)
    .addOption(new Option('--ready-timeout <ms>', 'one-shot: how long to wait for the registry').argParser(intParser(1, 600_000)).default(ONE_SHOT_READY_MS).hideHelp());
  addRegistryOptions(cmd, { json: false }).action(async (kind: Kind, flags: RenderFlags) => {
    try {
      await runRender(kind, flags);
    } catch (err) {
      process.stderr.write(`rollcall: ${describeError(err)}\n`);
      // A RollcallError here comes from rendering (e.g. a template that throws on this data): bad input, like a flag.
      process.exitCode = err instanceof UsageError || err instanceof RollcallError ? 1 : exitCodeFor(err);
    }
  });
}

/** Renders the instances, leaving out those in leaveOut (key: instanceKey → why, written into the config). */
type Renderer = (instances: Instance[], leaveOut: ReadonlyMap<string, string>) => string;

/** Flag combinations are checked before anything touches the network, each with one line saying what to do. */
function buildRenderer(kind: Kind, flags: RenderFlags): Renderer {
  if (flags.template !== undefined && kind !== 'template') throw new UsageError(`--template only goes with "render template", not "${kind}"`);
  if (kind === 'template' && flags.template === undefined) throw new UsageError('"render template" needs --template FILE');
  if ((flags.check !== undefined || flags.reload !== undefined) && flags.out === undefined) {
    throw new UsageError('--check and --reload need --out FILE (they act on the written file)');
  }
  if (flags.maxDelay < flags.debounce) throw new UsageError(`--max-delay (${flags.maxDelay}) must be at least --debounce (${flags.debounce})`);
  let options: GeneratorOptions;
  try {
    options = parseGeneratorOptions({ listen: flags.listen, balance: flags.balance, ...(flags.service ? { service: flags.service } : {}) });
  } catch (err) {
    throw new UsageError(describeError(err));
  }
  const namespace = flags.namespace;
  switch (kind) {
    case 'nginx':
      return (instances, leaveOut) => renderNginx({ namespace, instances, leaveOut }, options);
    case 'haproxy':
      return (instances, leaveOut) => renderHaproxy({ namespace, instances, leaveOut }, options);
    case 'template': {
      const file = flags.template ?? '';
      let source: string;
      try {
        source = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read template ${file}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`);
      }
      let compiled: ReturnType<typeof compileTemplate>;
      try {
        compiled = compileTemplate(source, file);
      } catch (err) {
        throw new UsageError(describeError(err));
      }
      return (instances, leaveOut) =>
        compiled({ namespace, instances: instances.filter((i) => !leaveOut.has(instanceKey(i))) }, options.services);
    }
  }
}

async function runRender(kind: Kind, flags: RenderFlags): Promise<void> {
  const render = buildRenderer(kind, flags);
  // Only nginx needs it: HAProxy starts with unresolvable servers (init-addr last,libc,none) and templates are the
  // user's business.
  const resolver = kind === 'nginx' && flags.resolve ? createHostResolver() : undefined;
  const client = createClient(clientOptions(flags));
  try {
    const prepare = preparer(render, resolver);
    if (flags.watch) await follow(client, prepare, resolver, flags);
    else await renderOnce(client, prepare, flags);
  } finally {
    resolver?.close();
    client.close();
  }
}

/** One render: the instances it saw, what it left out and why, and how to render again without more of them. */
interface Rendered {
  content: string;
  instances: Instance[];
  leaveOut: ReadonlyMap<string, string>;
  renderWithout(leaveOut: ReadonlyMap<string, string>): string;
}

type Prepare = (instances: Instance[]) => Promise<Rendered>;

function preparer(render: Renderer, resolver: HostResolver | undefined): Prepare {
  let lastUnresolved = '';
  return async (instances) => {
    const leaveOut = new Map<string, string>();
    if (resolver) {
      const unresolved = await resolver.unresolved(instances.map((i) => i.address));
      const hit = instances.filter((i) => unresolved.has(i.address.toLowerCase()));
      for (const i of hit) leaveOut.set(instanceKey(i), `hostname ${i.address} does not resolve here`);
      // Said when the set changes, not on every render: a name that never resolves would flood the log.
      const line = hit.map((i) => `${instanceKey(i)} (${i.address})`).join(', ');
      if (line !== lastUnresolved) {
        log(
          hit.length > 0
            ? `WARNING: left out ${hit.length} instance(s) whose hostname does not resolve here (nginx would refuse the whole config): ${line}`
            : 'every hostname resolves again',
        );
      }
      lastUnresolved = line;
    }
    return { content: render(instances, leaveOut), instances, leaveOut, renderWithout: (more) => render(instances, more) };
  };
}

/** One service → a watch of that service only; several or all → the namespace, filtered here. */
function openView(client: RollcallClient, flags: RenderFlags): { view: WatchView; instances: () => Instance[] } {
  const wanted = flags.service ? parseGeneratorOptions({ service: flags.service }).services : undefined;
  const view = client.watch(
    wanted && wanted.length === 1 ? { namespace: flags.namespace, service: wanted[0] as string } : { namespace: flags.namespace },
  );
  const keep = wanted ? new Set(wanted) : undefined;
  return { view, instances: () => (keep ? view.instances().filter((i) => keep.has(i.service)) : view.instances()) };
}

async function renderOnce(client: RollcallClient, prepare: Prepare, flags: RenderFlags): Promise<void> {
  // A plain request first: an unreachable registry fails fast with a clear line instead of a silent retry loop.
  await client.listServices(flags.namespace);
  // Then one snapshot, taken at a single revision, so the config is consistent across services.
  const { view, instances } = openView(client, flags);
  view.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      view.ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no snapshot from ${flags.registry.join(',')} within ${flags.readyTimeout} ms`)), flags.readyTimeout);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  const snapshot = instances();
  view.close();
  const rendered = await prepare(snapshot);
  if (flags.out === undefined) {
    process.stdout.write(rendered.content);
    return;
  }
  const outcome = await applyToFile(flags.out, rendered, flags, createShellRunner(), undefined);
  report(flags.out, outcome.result, view.revision, rendered.leaveOut.size + (outcome.isolated?.culprits.length ?? 0));
  // A config applied without the instances that broke the check is still a failure to report to a script.
  if (outcome.result.status === 'check_failed' || outcome.result.status === 'reload_failed' || outcome.isolated) process.exitCode = 1;
}

async function follow(client: RollcallClient, prepare: Prepare, resolver: HostResolver | undefined, flags: RenderFlags): Promise<void> {
  const { view, instances } = openView(client, flags);
  let lastError = '';
  view.on('error', (err) => {
    // A registry restart produces the same failure on every retry; say it once until something else happens.
    const line = describeError(err);
    if (line !== lastError) log(`watch: ${line}`);
    lastError = line;
  });
  view.on('change', () => {
    lastError = '';
  });
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const ready = await Promise.race([view.ready.then(() => 'ready' as const), stopSignal]);
  if (ready !== 'ready') return;

  const apply = flags.out === undefined ? printer() : fileApplier(flags.out, flags, () => view.revision);
  // A hostname that starts or stops resolving is a change too.
  const source: FollowSource = resolver ? mergeSources(view, resolver) : view;
  const follower = followSource<Rendered>({
    source,
    render: () => prepare(instances()),
    apply,
    debounceMs: flags.debounce,
    maxDelayMs: flags.maxDelay,
    onError: (err) => log(`render failed: ${describeError(err)}`),
  });
  log(`following namespace ${flags.namespace} at ${flags.registry.join(',')}`);
  const signal = await stopSignal;
  await follower.stop();
  view.close();
  log(`${signal}: stopped`);
}

function printer(): (rendered: Rendered) => Promise<void> {
  let last: string | undefined;
  return async ({ content }) => {
    if (content === last) return;
    last = content;
    process.stdout.write(content);
  };
}

interface Applied {
  result: WriteConfigResult;
  /** Set when the check refused the full config and a config without these instances was applied instead. */
  isolated?: { culprits: string[]; leaveOut: Map<string, string> };
}

/**
 * Write, check, reload; when the check refuses the config, look for the instances that make it fail and apply the
 * config without them, so every other service stays current. `hint`: what the previous isolation left out.
 */
async function applyToFile(
  out: string,
  rendered: Rendered,
  flags: RenderFlags,
  run: CommandRunner,
  hint: ReadonlyMap<string, string> | undefined,
): Promise<Applied> {
  const result = await writeConfig({ path: out, content: rendered.content, ...commands(flags) }, { run });
  if (result.status !== 'check_failed' || flags.check === undefined) return { result };
  log(`${result.reason}; looking for the instance that breaks it`);
  const check = flags.check;
  // Held in an object: the attempts assign it from a callback, which TypeScript's narrowing does not follow.
  const latest: { result: WriteConfigResult } = { result };
  const isolated = await isolateFailure({
    instances: rendered.instances.filter((i) => !rendered.leaveOut.has(instanceKey(i))),
    leaveOut: rendered.leaveOut,
    output: result.output,
    ...(hint ? { hint } : {}),
    attempt: async (leaveOut) => {
      const r = await writeConfig({ path: out, content: rendered.renderWithout(leaveOut), check }, { run });
      latest.result = r;
      return { passed: r.status !== 'check_failed', output: r.status === 'check_failed' ? r.output : '' };
    },
  });
  // The reason was said above; the report line that follows says what became of the file.
  if (!isolated) return { result: { ...result, reason: 'no instance or service explains the failed check' } };
  const why = isolated.culprits.map((k) => `${k} (${isolated.leaveOut.get(k) ?? ''})`).join(', ');
  log(`WARNING: the check refused the config because of ${why}; applying every other service without them (${isolated.attempts} check run(s))`);
  // The accepted file is in place (or was already); reload it unless it is the one the proxy already runs.
  const last = latest.result;
  if (last.status === 'written' && flags.reload !== undefined) {
    const reload = await run(flags.reload);
    const applied: WriteConfigResult =
      reload.code === 0 ? { status: 'written', changed: true, reloaded: true } : { status: 'reload_failed', changed: true, reason: `reload ${describeFailure(flags.reload, reload)}` };
    return { result: applied, isolated };
  }
  return { result: last.status === 'check_failed' ? result : last, isolated };
}

function fileApplier(out: string, flags: RenderFlags, revision: () => number): (rendered: Rendered) => Promise<void> {
  const run = createShellRunner();
  // A reload that failed is owed until one succeeds: the file on disk already matches, so the next render would
  // otherwise see "unchanged" and leave the proxy on the old config for good.
  let reloadOwed = false;
  // What the last isolation left out: tried first next time, since a bad registration usually stays a while.
  let hint: ReadonlyMap<string, string> | undefined;
  return async (rendered) => {
    const { result, isolated } = await applyToFile(out, rendered, flags, run, hint);
    hint = isolated?.leaveOut;
    if (result.status === 'unchanged' && reloadOwed && flags.reload !== undefined) {
      const retry = await run(flags.reload);
      reloadOwed = retry.code !== 0;
      log(reloadOwed ? `reload ${JSON.stringify(flags.reload)} failed again` : `${out} unchanged; owed reload done`);
      return;
    }
    if (result.status === 'reload_failed') reloadOwed = true;
    else if (result.status === 'written') reloadOwed = false;
    report(out, result, revision(), rendered.leaveOut.size + (isolated?.culprits.length ?? 0));
  };
}

function commands(flags: RenderFlags): { check?: string; reload?: string } {
  return {
    ...(flags.check !== undefined ? { check: flags.check } : {}),
    ...(flags.reload !== undefined ? { reload: flags.reload } : {}),
  };
}

function report(out: string, result: WriteConfigResult, revision: number, leftOut = 0): void {
  // The count of instances left out (unresolvable, or breaking the check) rides on every line: a number to alert on.
  const without = leftOut > 0 ? ` (${leftOut} instance(s) left out)` : '';
  switch (result.status) {
    case 'unchanged':
      log(`${out} unchanged at revision ${revision}${without}`);
      return;
    case 'written':
      log(`wrote ${out} at revision ${revision}${result.reloaded ? ', reloaded' : ''}${without}`);
      return;
    case 'check_failed':
      log(`${result.reason}; ${result.restored === 'previous' ? 'previous config restored' : 'new file removed'}, not reloaded`);
      return;
    case 'reload_failed':
      log(`wrote ${out} at revision ${revision}, but ${result.reason}`);
      return;
  }
}

function log(line: string): void {
  process.stderr.write(`rollcall render: ${line}\n`);
}
