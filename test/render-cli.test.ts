// `rollcall render` one-shot: stdout, --out with check/reload, templates, and one-line errors for bad flags.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { renderHaproxy } from '../src/generators/haproxy.js';
import { parseGeneratorOptions } from '../src/generators/options.js';
import { api, CHILD_ENV, CLI, PATIENCE_MS, startServer } from './helper.js';

function rollcall(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...CHILD_ENV, ...env }, timeout: 2 * PATIENCE_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('rollcall render one-shot', async (t) => {
  const server = await startServer(t);
  const put = (service: string, id: string, body: Record<string, unknown>) =>
    api(`${server.url}/v1/namespaces/shop/services/${service}/instances/${id}`, 'PUT', { address: '10.0.0.1', port: 8080, ttlSeconds: 3600, ...body });
  await put('api', 'api-1', { address: '10.0.0.1' });
  await put('api', 'api-2', { address: '10.0.0.2', status: 'draining' });
  await put('web', 'web-1', { address: '10.0.1.1', weight: 3 });
  const reg = ['--registry', server.url, '--namespace', 'shop'];

  await t.test('prints the same config as the generator, to stdout', async (t) => {
    const r = await rollcall(['render', 'haproxy', ...reg, '--listen', '9000', '--balance', 'random']);
    t.equal(r.code, 0, r.stderr);
    const expected = renderHaproxy(
      { namespace: 'shop', instances: server.registry.list({ namespace: 'shop' }).items },
      parseGeneratorOptions({ listen: '9000', balance: 'random' }),
    );
    t.equal(r.stdout, expected);
    const env = await rollcall(['render', 'haproxy', '--namespace', 'shop', '--listen', '9000', '--balance', 'random'], { ROLLCALL_URL: server.url });
    t.equal(env.stdout, expected, 'ROLLCALL_URL is the default registry');
    const one = await rollcall(['render', 'nginx', ...reg, '--service', 'web']);
    t.notOk(one.stdout.includes('api'), '--service narrows');
    t.match(one.stdout, /server 10\.0\.1\.1:8080 weight=3;/);
  });

  await t.test('template mode: Eta with instances and services as data', async (t) => {
    const dir = t.testdir();
    const tpl = join(dir, 'list.eta');
    await writeFile(tpl, '<% for (const s of it.services) { %><%= s.name %>(<%= s.host %>):<% for (const i of s.routable) { %> <%= i.address %>:<%= i.port %>*<%= i.weight %><% } %>\n<% } %>');
    const r = await rollcall(['render', 'template', ...reg, '--template', tpl]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, 'api(api.shop): 10.0.0.1:8080*1\nweb(web.shop): 10.0.1.1:8080*3\n');
    await writeFile(tpl, '<% if ( %>');
    const bad = await rollcall(['render', 'template', ...reg, '--template', tpl]);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /^rollcall: .*list\.eta: Bad template syntax: Unexpected token 'if'\n$/);
  });

  await t.test('--out with --check and --reload; a failing check exits non-zero and restores', async (t) => {
    const dir = t.testdir();
    const out = join(dir, 'haproxy.cfg');
    const log = join(dir, 'log');
    const args = ['render', 'haproxy', ...reg, '--out', out, '--check', `echo check >> ${log}`, '--reload', `echo reload >> ${log}`];
    const first = await rollcall(args);
    t.equal(first.code, 0, first.stderr);
    t.equal(first.stdout, '', 'nothing on stdout with --out');
    t.match(first.stderr, /wrote .*haproxy\.cfg at revision \d+, reloaded/);
    const written = await readFile(out, 'utf8');
    const second = await rollcall(args);
    t.match(second.stderr, /unchanged/);
    t.equal(await readFile(log, 'utf8'), 'check\nreload\n', 'unchanged → no check, no reload');

    await put('web', 'web-2', { address: '10.0.1.2' });
    const failing = await rollcall(['render', 'haproxy', ...reg, '--out', out, '--check', 'echo "[ALERT] config invalid" >&2; exit 7', '--reload', `echo reload >> ${log}`]);
    t.equal(failing.code, 1, 'non-zero exit');
    t.equal(
      failing.stderr,
      'rollcall render: check "echo \\"[ALERT] config invalid\\" >&2; exit 7" exited with 7: [ALERT] config invalid; looking for the instance that breaks it\n' +
        'rollcall render: no instance or service explains the failed check; previous config restored, not reloaded\n',
    );
    t.equal(await readFile(out, 'utf8'), written, 'previous file back');
    t.equal(await readFile(log, 'utf8'), 'check\nreload\n', 'no reload');
  });

  await t.test('bad flags: one line, non-zero exit, before any request', async (t) => {
    const cases: [string[], RegExp][] = [
      [['render', 'caddy'], /'caddy' is invalid for argument 'kind'. Allowed choices are nginx, haproxy, template/],
      [['render', 'nginx', '--balance', 'first'], /argument 'first' is invalid. Allowed choices are round_robin, least_conn, random/],
      [['render', 'nginx', '--listen', 'x:y'], /^rollcall: listen "x:y" is not valid/],
      [['render', 'nginx', '--service', 'Bad_Name'], /^rollcall: service "Bad_Name" is not a DNS-1123 label/],
      [['render', 'nginx', '--namespace', 'NS!'], /--namespace.*must be a DNS-1123 label/],
      [['render', 'nginx', '--check', 'true'], /^rollcall: --check and --reload need --out FILE/],
      [['render', 'nginx', '--template', 'x.eta'], /^rollcall: --template only goes with "render template"/],
      [['render', 'template'], /^rollcall: "render template" needs --template FILE/],
      [['render', 'template', '--template', '/nonexistent/x.eta'], /^rollcall: cannot read template \/nonexistent\/x\.eta: ENOENT/],
      [['render', 'nginx', '--debounce', '500', '--max-delay', '100'], /^rollcall: --max-delay \(100\) must be at least --debounce \(500\)/],
      [['render', 'nginx', '--debounce', 'soon'], /--debounce.*must be an integer/],
      [['render', 'nginx', '--registry', 'ftp://x'], /--registry.*must be an http/],
    ];
    const results = await Promise.all(cases.map(([args]) => rollcall(args, { ROLLCALL_URL: 'http://127.0.0.1:1' })));
    for (const [i, [args, pattern]] of cases.entries()) {
      const r = results[i] ?? { code: 0, stdout: '', stderr: '' };
      t.not(r.code, 0, `${args.join(' ')}: non-zero exit`);
      t.match(r.stderr, pattern, `${args.join(' ')}: ${r.stderr.trim().split('\n')[0]}`);
      t.equal(r.stdout, '', 'nothing on stdout');
    }
  });

  await t.test('unreachable registry: one line, exit 2', async (t) => {
    const r = await rollcall(['render', 'nginx', '--registry', 'http://127.0.0.1:1']);
    t.equal(r.code, 2);
    t.match(r.stderr, /^rollcall: Cannot reach the registry at http:\/\/127\.0\.0\.1:1.*\n$/);
  });
});
