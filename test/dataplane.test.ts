// The pure half of `rollcall proxy`: desired state, the nftables ruleset (golden + `nft -c`), the applier's diffing
// and failure handling, name resolution, and the control loop's debounced passes.
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { startControlLoop } from '../src/dataplane/control-loop.js';
import type { DataPlane } from '../src/dataplane/data-plane.js';
import { computeDesiredState, type DesiredState, type ServiceRecord } from '../src/dataplane/desired-state.js';
import { createProxyMetrics } from '../src/dataplane/metrics.js';
import { createNftApplier, nftUnavailable, transaction } from '../src/dataplane/nftables/apply.js';
import type { NftResult, NftRunner } from '../src/dataplane/nftables/nft.js';
import { renderDelta, renderNftables } from '../src/dataplane/nftables/render.js';
import { resolveBackends } from '../src/dataplane/nftables/resolve.js';
import type { Instance } from '../src/schemas/instance.js';
import { INSTANCES, SERVICES, svc } from './dataplane-fixtures.js';
import { inst } from './generators-fixtures.js';
import { waitFor } from './helper.js';

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), '../../test/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

async function golden(t: Test, name: string, actual: string): Promise<void> {
  const file = join(GOLDEN, name);
  if (UPDATE) await writeFile(file, actual);
  t.equal(actual, await readFile(file, 'utf8'), `${name} matches the golden file (UPDATE_GOLDEN=1 rewrites it)`);
}

t.test('desired state: routable instances per service port, targetPort, namespaces, order', async (t) => {
  const state = computeDesiredState(SERVICES, INSTANCES);
  t.same(
    state.ports.map((p) => p.key),
    ['other/api/80', 'shop/api/80', 'shop/db/5432', 'shop/web/80', 'shop/web/8081'],
    'one entry per service port, sorted; registered instances without a Service get nothing',
  );
  const get = (key: string) => state.ports.find((p) => p.key === key)!;
  t.same(
    get('shop/api/80').backends.map((b) => [b.id, b.address, b.port, b.weight]),
    [
      ['api-1', '10.0.0.1', 8080, 1],
      ['api-2', '10.0.0.2', 8080, 3],
    ],
    'draining and down instances are left out; targetPort defaults to the instance port',
  );
  t.same(get('shop/web/8081').backends.map((b) => b.port), [9090, 9090], 'targetPort wins over the instance port');
  t.equal(get('shop/web/80').portName, 'http');
  t.same(get('shop/db/5432').backends, [], 'weight 0 is not routable');
  t.same(get('other/api/80').backends, [], "another namespace's instances never leak in");
  t.same(computeDesiredState([...SERVICES].reverse(), [...INSTANCES].reverse()), state, 'input order does not matter');
});

t.test('desired state: --zone prefers the zone and falls back to every zone when it has no routable instance', async (t) => {
  const api = (zone: string) => computeDesiredState(SERVICES, INSTANCES, { zone }).ports.find((p) => p.key === 'shop/api/80')!.backends.map((b) => b.id);
  t.same(api('a'), ['api-1']);
  t.same(api('b'), ['api-2']);
  t.same(api('c'), ['api-1', 'api-2'], 'no instance in zone c: all zones');
  // Zone a has api-3 too, but it is draining: only routable instances count for the preference.
  const onlyDrainingInA = INSTANCES.filter((i) => i.id !== 'api-1');
  t.same(
    computeDesiredState(SERVICES, onlyDrainingInA, { zone: 'a' }).ports.find((p) => p.key === 'shop/api/80')!.backends.map((b) => b.id),
    ['api-2'],
  );
});

t.test('nftables ruleset: golden files', async (t) => {
  const state = computeDesiredState(SERVICES, INSTANCES);
  const { ruleset, skipped } = renderNftables(state);
  t.same(skipped, []);
  await golden(t, 'nftables-shop.nft', ruleset);
  await golden(t, 'nftables-empty.nft', renderNftables({ ports: [] }).ruleset);
  t.match(ruleset, /chain svc-shop\/api\/80 \{\n\t\tmeta l4proto tcp dnat ip to numgen random mod 4 map \{ 0 : 10\.0\.0\.1 \. 8080, 1-3 : 10\.0\.0\.2 \. 8080 \}/, 'weights 1 and 3 own 1 and 3 of 4 values');
  t.match(ruleset, /127\.77\.0\.3 \. tcp \. 5432 : goto reject-chain/, 'db has no routable instance: rejected');
  t.notMatch(ruleset, /svc-shop\/db/, 'and gets no service chain');
});

t.test('nftables ruleset: what nftables cannot express is skipped and said', async (t) => {
  const state = computeDesiredState(
    [svc('v6', 'fd00::1', [{ port: 80, protocol: 'tcp' }]), svc('mixed', '127.77.0.5', [{ port: 80, protocol: 'tcp' }])],
    [inst('mixed', 'm-1', { address: '::1' }), inst('mixed', 'm-2', { address: '127.0.0.1' }), inst('mixed', 'm-3', { address: '127.0.0.1', weight: 2 })],
  );
  const { ruleset, skipped } = renderNftables(state);
  t.same(skipped, [
    'shop/mixed/80: instance m-1 address ::1 is not an IPv4 address',
    'shop/v6/80: virtual IP fd00::1 is not IPv4 (the nftables table is "ip")',
  ]);
  t.match(ruleset, /chain svc-shop\/mixed\/80 \{\n\t\tmeta l4proto tcp dnat ip to 127\.0\.0\.1:8080\n/, 'two instances on one address:port are one endpoint');
});

const nftMissing = spawnSync('nft', ['--version']).error !== undefined;
const nftSkip = nftMissing && process.env.CI !== 'true' ? 'nft is not installed (apt-get install nftables): SKIPPED, not proven here' : false;

t.test('nftables ruleset passes `nft -c` (the real parser and kernel check)', { skip: nftSkip }, async (t) => {
  for (const state of [computeDesiredState(SERVICES, INSTANCES), { ports: [] } as DesiredState, bigState(50, 10)]) {
    const text = transaction(renderNftables(state).ruleset);
    const res = spawnSync('nft', ['-c', '-f', '-'], { input: text, encoding: 'utf8' });
    t.equal(res.status, 0, `nft -c accepts ${state.ports.length} service ports: ${res.stderr}`);
  }
  const broken = spawnSync('nft', ['-c', '-f', '-'], { input: transaction('table ip rollcall { chain x { bogus } }'), encoding: 'utf8' });
  t.not(broken.status, 0, 'and the check is real: it refuses nonsense');
});

t.test('a delta applied by the real nft leaves the same table as a whole re-create (in a network namespace)', { skip: nftSkip || netnsSkip() }, async (t) => {
  const dir = t.testdir();
  const a = renderNftables(computeDesiredState(SERVICES, INSTANCES));
  const bState = computeDesiredState(
    SERVICES.filter((s) => s.name !== 'api').concat([svc('new', '127.77.0.4', [{ port: 443, protocol: 'tcp' }])]),
    INSTANCES.filter((i) => i.id !== 'web-2').concat([inst('db', 'db-2', { address: '10.0.2.2', port: 5432 }), inst('new', 'n-1', { address: '10.0.4.1' })]),
  );
  const b = renderNftables(bState);
  await writeFile(join(dir, 'a.nft'), transaction(a.ruleset));
  await writeFile(join(dir, 'delta.nft'), renderDelta(a.model, b.model));
  await writeFile(join(dir, 'b.nft'), transaction(b.ruleset));
  const list = (script: string) => spawnSync('unshare', ['-n', 'sh', '-c', `${script} && nft list table ip rollcall`], { encoding: 'utf8' });
  const viaDelta = list(`nft -f ${dir}/a.nft && nft -f ${dir}/delta.nft`);
  const whole = list(`nft -f ${dir}/b.nft`);
  t.equal(viaDelta.status, 0, viaDelta.stderr);
  t.equal(whole.status, 0, whole.stderr);
  // Element order in a listing follows the kernel's set layout, not insertion: compare sorted lines.
  const norm = (text: string) => text.split('\n').map((l) => l.trim()).sort().join('\n');
  t.equal(norm(viaDelta.stdout), norm(whole.stdout));
});

function netnsSkip(): string | false {
  const ok = spawnSync('unshare', ['-n', 'true']).status === 0;
  return ok || process.env.CI === 'true' ? false : 'cannot create a network namespace (unshare -n): SKIPPED, not proven here';
}

function bigState(services: number, perService: number): DesiredState {
  const svcs: ServiceRecord[] = [];
  const insts: Instance[] = [];
  for (let s = 0; s < services; s++) {
    svcs.push(svc(`s${s}`, `127.77.${Math.floor(s / 250)}.${(s % 250) + 1}`, [{ port: 80, protocol: 'tcp' }]));
    for (let i = 0; i < perService; i++) insts.push(inst(`s${s}`, `i${i}`, { address: `10.${s % 250}.${Math.floor(s / 250)}.${i + 1}`, weight: 1 + (i % 3) }));
  }
  return computeDesiredState(svcs, insts);
}

function fakeNft(answers: Partial<NftResult>[] = []): { run: NftRunner; calls: { args: string[]; input: string | undefined }[] } {
  const calls: { args: string[]; input: string | undefined }[] = [];
  return {
    calls,
    run: async (args, input) => {
      calls.push({ args, input });
      return { code: 0, stderr: '', stdout: '', ...answers.shift() };
    },
  };
}

t.test('applier: whole table first, then only the delta; a refused delta falls back to a re-create; refused twice keeps the previous', async (t) => {
  const one = renderNftables(computeDesiredState(SERVICES, INSTANCES));
  const two = renderNftables(computeDesiredState(SERVICES, INSTANCES.filter((i) => i.id !== 'web-2')));
  const three = renderNftables(computeDesiredState(SERVICES, []));
  const nft = fakeNft([{}, {}, { code: 1, stderr: 'Error: No such file or directory' }, {}, { code: 1, stderr: 'x' }, { code: 1, stderr: 'Error: refused\nmore' }]);
  const applier = createNftApplier(nft.run);
  t.match(await applier.apply(one), { status: 'applied', kind: 'full' });
  t.same(nft.calls[0], { args: ['-f', '-'], input: transaction(one.ruleset) });
  t.same(await applier.apply(one), { status: 'unchanged' });
  t.equal(nft.calls.length, 1, 'nothing sent when nothing changed');

  t.match(await applier.apply(two), { status: 'applied', kind: 'delta' });
  t.equal(nft.calls[1]!.input, renderDelta(one.model, two.model), 'a change sends only the delta');
  t.equal(applier.current, two.ruleset);

  const fallback = await applier.apply(three);
  t.match(fallback, { status: 'applied', kind: 'full', deltaRefused: 'Error: No such file or directory' }, 'delta refused: re-created whole');
  t.equal(nft.calls[3]!.input, transaction(three.ruleset));

  const refused = await applier.apply(one);
  t.match(refused, { status: 'refused', reason: 'Error: refused | more' });
  t.equal(applier.current, three.ruleset, 'the previous ruleset is still the one in force');
  await applier.remove();
  t.equal(nft.calls.at(-1)!.input, 'add table ip rollcall\ndelete table ip rollcall\n', 'remove deletes the table, present or not');
  t.equal(applier.current, undefined);
});

t.test('renderDelta: only the service ports that changed', async (t) => {
  const before = renderNftables(computeDesiredState(SERVICES, INSTANCES)).model;
  const moved = INSTANCES.filter((i) => i.id !== 'web-2' && i.service !== 'api').concat([inst('db', 'db-2', { address: '10.0.2.2', port: 5432 })]);
  const after = renderNftables(
    computeDesiredState(
      SERVICES.filter((s) => s.namespace !== 'other').concat([svc('new', '127.77.0.4', [{ port: 443, protocol: 'tcp' }])]),
      moved.concat([inst('new', 'n-1', { address: '10.0.4.1', port: 8443 })]),
    ),
  ).model;
  await golden(t, 'nftables-delta.nft', renderDelta(before, after));
  t.equal(renderDelta(after, after), '', 'no change, no commands');
});

t.test('nftUnavailable: says plainly why --mode nftables cannot run', async (t) => {
  const enoent = Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' });
  t.match(await nftUnavailable(fakeNft([{ code: null, spawnError: enoent }]).run), /needs the nft command/);
  t.match(await nftUnavailable(fakeNft([{ code: 1, stderr: 'Error: Operation not permitted' }]).run), /needs root or CAP_NET_ADMIN/);
  t.equal(await nftUnavailable(fakeNft([{ code: 0 }]).run), undefined);
});

t.test('resolveBackends: names become IPv4 addresses; a name that does not resolve is left out and reported', async (t) => {
  const state = computeDesiredState(
    [svc('web', '127.77.0.2', [{ port: 80, protocol: 'tcp' }])],
    [inst('web', 'a', { address: 'demo-1' }), inst('web', 'b', { address: 'nowhere' }), inst('web', 'c', { address: '10.0.0.7' })],
  );
  const lookups: string[] = [];
  const { state: resolved, unresolved } = await resolveBackends(state, async (host) => {
    lookups.push(host);
    if (host === 'demo-1') return '172.18.0.5';
    throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  });
  t.same(resolved.ports[0]!.backends.map((b) => [b.id, b.address]), [
    ['a', '172.18.0.5'],
    ['c', '10.0.0.7'],
  ]);
  t.same(unresolved, ['nowhere (ENOTFOUND)']);
  t.same(lookups.sort(), ['demo-1', 'nowhere'], 'literals are not looked up');
});

class FakeCatalog extends EventEmitter {
  revision = 1;
  constructor(
    public svcs: ServiceRecord[],
    public insts: Instance[],
  ) {
    super();
  }
  services() {
    return this.svcs;
  }
  instances() {
    return this.insts;
  }
  change(insts: Instance[]) {
    this.insts = insts;
    this.revision++;
    this.emit('change');
  }
}

t.test('control loop: first pass at once, bursts debounced into one pass, namespace filter, metrics', async (t) => {
  const catalog = new FakeCatalog(SERVICES, INSTANCES);
  const applied: DesiredState[] = [];
  const plane: DataPlane = {
    apply: async (state) => {
      applied.push(state);
      return 'applied';
    },
    close: async () => {},
  };
  const metrics = createProxyMetrics();
  const passes: number[] = [];
  const loop = startControlLoop({
    source: catalog,
    dataPlane: plane,
    namespace: 'shop',
    debounceMs: 50,
    maxDelayMs: 1000,
    metrics,
    log: () => {},
    onPass: (_s, _o, revision) => passes.push(revision),
  });
  t.teardown(() => loop.stop());
  await loop.idle();
  t.equal(applied.length, 1, 'the first pass runs at once');
  t.same(applied[0]!.ports.map((p) => p.key), ['shop/api/80', 'shop/db/5432', 'shop/web/80', 'shop/web/8081'], 'only --namespace shop');
  for (let n = 0; n < 5; n++) catalog.change(INSTANCES.slice(n));
  await waitFor(() => passes.length === 2, 5000, 'the debounced pass');
  await loop.idle();
  t.equal(applied.length, 2, 'five changes in a burst: one more pass');
  t.same(passes, [1, 6], 'the pass sees the latest revision');
  const text = await metrics.registry.metrics();
  t.match(text, /rollcall_proxy_rule_applies_total\{result="applied"\} 2/);
  t.match(text, /rollcall_proxy_view_revision 6/);
  t.match(text, /rollcall_proxy_backends\{namespace="shop",service="db",port="5432"\} 0/);
});

t.test('control loop: a failing data plane is logged and the next change tries again', async (t) => {
  const catalog = new FakeCatalog(SERVICES, INSTANCES);
  let fail = true;
  const logs: string[] = [];
  const outcomes: string[] = [];
  const loop = startControlLoop({
    source: catalog,
    dataPlane: {
      apply: async () => {
        if (fail) throw new Error('boom');
        return 'applied';
      },
      close: async () => {},
    },
    debounceMs: 0,
    maxDelayMs: 0,
    metrics: createProxyMetrics(),
    log: (l) => logs.push(l),
    onPass: (_s, o) => outcomes.push(o),
  });
  t.teardown(() => loop.stop());
  await loop.idle();
  fail = false;
  catalog.change(INSTANCES);
  await waitFor(() => outcomes.length === 2);
  t.same(outcomes, ['failed', 'applied']);
  t.match(logs[0], /data plane update at revision 1 failed: boom; the previous state stays in force/);
});
