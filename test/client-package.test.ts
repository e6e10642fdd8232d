// The client ships as its own package (packages/client, @rollcall/client) built from src/client: packed, installed
// offline into an empty project, it brings only ws (no fastify, no better-sqlite3 to build), its types check
// without zod, and it talks to a real registry.
import { execFile } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { api, CHILD_ENV, PATIENCE_MS, startServer } from './helper.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const PACKAGE = join(ROOT, 'packages/client');
const run = promisify(execFile);
const opts = (cwd: string) => ({ cwd, env: CHILD_ENV, timeout: 5 * PATIENCE_MS, maxBuffer: 16 * 1024 * 1024 });

t.test('npm pack → npm install --offline into an empty project → import and use', async (t) => {
  const dir = t.testdir();
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], opts(PACKAGE));
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = (info?.files ?? []).map((f) => f.path).sort();
  t.ok(files.includes('dist/client/index.js') && files.includes('dist/client/index.d.ts'), 'the built client is in the tarball');
  t.ok(files.includes('dist/schemas/instance.d.ts') && files.includes('dist/schemas/service.d.ts'), 'with the schema types it uses');
  t.same(files.filter((f) => !/^(dist\/client\/[\w-]+\.(js|d\.ts)|dist\/schemas\/(instance|service)\.d\.ts|package\.json)$/.test(f)), [], 'and nothing else');

  const consumer = join(dir, 'consumer');
  await run('mkdir', ['-p', consumer]);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // --offline, so nothing is downloaded and nothing compiled. npm's cache need not hold ws's registry metadata (this
  // lockfile carries no `resolved` URLs), so ws is handed over as a tarball packed from the copy npm ci installed.
  const ws = await run('npm', ['pack', '--json', '--pack-destination', dir], opts(join(ROOT, 'node_modules/ws')));
  const wsTarball = (JSON.parse(ws.stdout) as Array<{ filename: string }>)[0]?.filename ?? '';
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(dir, wsTarball), join(dir, info?.filename ?? '')], opts(consumer));
  const installed = readdirSync(join(consumer, 'node_modules')).filter((n) => !n.startsWith('.')).sort();
  t.same(installed, ['@rollcall', 'ws'], 'the install brings the client and ws only');

  // Its own data dir: startServer's default (t.testdir()) would empty this test's directory.
  const server = await startServer(t, { dataDir: join(dir, 'registry') });
  writeFileSync(
    join(consumer, 'use.mjs'),
    `import { createClient } from '@rollcall/client';
const client = createClient({ url: ${JSON.stringify(server.url)} });
const reg = await client.register({ service: 'web', id: 'pkg-1', address: '127.0.0.1', port: 8080, ttlSeconds: 3600 });
const view = client.watch({ service: 'web' });
await view.ready;
console.log(JSON.stringify({ registered: reg.registered, ids: view.instances().map((i) => i.id), picked: view.pick()?.id }));
client.close();
`,
  );
  const used = await run(process.execPath, ['use.mjs'], opts(consumer));
  t.same(JSON.parse(used.stdout), { registered: true, ids: ['pkg-1'], picked: 'pkg-1' }, 'registers, watches and picks');
  t.equal((await api(`${server.url}/v1/namespaces/default/services/web/instances/pkg-1`)).status, 200);

  // A TypeScript consumer, strict and without skipLibCheck: the shipped declarations stand on their own (no zod).
  writeFileSync(
    join(consumer, 'use.ts'),
    `import { createClient, type Instance, type InstanceStatus } from '@rollcall/client';
const client = createClient({ url: 'http://127.0.0.1:7400' });
const status: InstanceStatus = 'draining';
export function describe(i: Instance): string {
  return \`\${i.service}/\${i.id} \${i.address}:\${i.port} \${i.status === status ? 'draining' : i.status}\`;
}
client.close();
`,
  );
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const typeRoots = join(ROOT, 'node_modules/@types');
  const checked = await run(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--skipLibCheck', 'false', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--typeRoots', typeRoots, '--types', 'node', 'use.ts'],
    opts(consumer),
  ).catch((err: { stdout?: string; code?: number }) => ({ stdout: `exit ${err.code}: ${err.stdout ?? ''}`, stderr: '' }));
  t.equal(checked.stdout, '', 'the consumer type-checks');
});
