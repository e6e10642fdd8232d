// write-config: no write when unchanged, atomic replacement, check → rollback, reload only after a pass.
import { readdir, readFile, stat, writeFile, chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { nodeConfigFs, writeFileAtomic, type ConfigFs } from '../src/generators/atomic-file.js';
import { createShellRunner, describeFailure, type CommandResult, type CommandRunner } from '../src/generators/run-command.js';
import { writeConfig } from '../src/generators/write-config.js';

const ok: CommandResult = { code: 0, signal: null, timedOut: false, output: '' };

/** A fake runner: records the commands, answers from a table, and can look at the file while a command "runs". */
function fakeRunner(answers: Record<string, CommandResult>, onRun?: (cmd: string) => Promise<void>): CommandRunner & { calls: string[] } {
  const calls: string[] = [];
  const run = async (cmd: string) => {
    calls.push(cmd);
    await onRun?.(cmd);
    return answers[cmd] ?? ok;
  };
  return Object.assign(run, { calls });
}

t.test('first write creates the file, runs check then reload', async (t) => {
  const path = join(t.testdir(), 'proxy.conf');
  let seenByCheck = '';
  const run = fakeRunner({}, async (cmd) => {
    if (cmd === 'check') seenByCheck = await readFile(path, 'utf8');
  });
  const result = await writeConfig({ path, content: 'v1\n', check: 'check', reload: 'reload' }, { run });
  t.same(result, { status: 'written', changed: true, reloaded: true });
  t.same(run.calls, ['check', 'reload']);
  t.equal(seenByCheck, 'v1\n', 'the check sees the new file in place');
  t.equal(await readFile(path, 'utf8'), 'v1\n');
});

t.test('unchanged content: no write, no check, no reload', async (t) => {
  const path = join(t.testdir(), 'proxy.conf');
  await writeFile(path, 'same\n');
  const before = await stat(path);
  const run = fakeRunner({});
  const result = await writeConfig({ path, content: 'same\n', check: 'check', reload: 'reload' }, { run });
  t.same(result, { status: 'unchanged', changed: false });
  t.same(run.calls, []);
  const after = await stat(path);
  t.equal(after.ino, before.ino, 'same inode: the file was not replaced');
  t.equal(after.mtimeMs, before.mtimeMs);
});

t.test('failing check restores the previous file atomically and does not reload', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'proxy.conf');
  await writeFile(path, 'good\n');
  await chmod(path, 0o640);
  const run = fakeRunner({ check: { code: 1, signal: null, timedOut: false, output: 'line 1\nnginx: [emerg] unknown directive "bad" in proxy.conf:1\nnginx: test failed\n' } });
  const result = await writeConfig({ path, content: 'bad\n', check: 'check', reload: 'reload' }, { run });
  t.equal(result.status, 'check_failed');
  t.match(result, { changed: false, restored: 'previous', reason: 'check "check" exited with 1: nginx: [emerg] unknown directive "bad" in proxy.conf:1' });
  t.same(run.calls, ['check'], 'no reload');
  t.equal(await readFile(path, 'utf8'), 'good\n', 'previous content back');
  t.equal((await stat(path)).mode & 0o777, 0o640, 'previous mode kept');
  t.same((await readdir(dir)).sort(), ['proxy.conf'], 'no temp file left');
});

t.test('failing check with no previous file removes the new one', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'proxy.conf');
  const run = fakeRunner({ check: { code: 2, signal: null, timedOut: false, output: '' } });
  const result = await writeConfig({ path, content: 'bad\n', check: 'check', reload: 'reload' }, { run });
  t.match(result, { status: 'check_failed', restored: 'removed', reason: 'check "check" exited with 2' });
  t.same(await readdir(dir), []);
});

t.test('failing reload keeps the checked file and says so', async (t) => {
  const path = join(t.testdir(), 'proxy.conf');
  const run = fakeRunner({ reload: { code: null, signal: 'SIGKILL', timedOut: true, output: '' } });
  const result = await writeConfig({ path, content: 'v1\n', reload: 'reload' }, { run });
  t.same(result, { status: 'reload_failed', changed: true, reason: 'reload "reload" timed out' });
  t.equal(await readFile(path, 'utf8'), 'v1\n');
});

t.test('a write that fails midway leaves the old file whole (injected fs)', async (t) => {
  const path = join(t.testdir(), 'proxy.conf');
  await writeFile(path, 'old\n');
  const failing: ConfigFs = { ...nodeConfigFs, writeAtomic: async () => Promise.reject(new Error('ENOSPC: no space left on device')) };
  await t.rejects(writeConfig({ path, content: 'new\n', reload: 'reload' }, { fs: failing, run: fakeRunner({}) }), /ENOSPC/);
  t.equal(await readFile(path, 'utf8'), 'old\n');
});

t.test('writeFileAtomic: readers never see a partial file; temp files stay in the folder and are cleaned', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'big.conf');
  const a = 'a'.repeat(512 * 1024);
  const b = 'b'.repeat(512 * 1024);
  await writeFileAtomic(path, a);
  let reading = true;
  let reads = 0;
  const torn: string[] = [];
  const reader = (async () => {
    while (reading) {
      const text = await readFile(path, 'utf8');
      reads++;
      if (text !== a && text !== b) torn.push(`${text.length} bytes`);
    }
  })();
  for (let i = 0; i < 40; i++) await writeFileAtomic(path, i % 2 === 0 ? b : a);
  reading = false;
  await reader;
  t.ok(reads > 0, `reader ran (${reads} reads)`);
  t.same(torn, [], 'every read saw a whole version');
  t.same(await readdir(dir), ['big.conf'], 'no temp files left');

  // A rename that cannot happen (target is a directory) must not leave the temp file behind.
  const blocked = join(dir, 'blocked');
  await mkdir(blocked);
  await t.rejects(writeFileAtomic(blocked, 'x'));
  t.same((await readdir(dir)).sort(), ['big.conf', 'blocked']);
});

t.test('shell runner: sh -c, exit codes, output, timeout', async (t) => {
  // A generous timeout for commands that must finish; a short one only where running out is the point.
  const run = createShellRunner({ timeoutMs: 120_000 });
  const okRun = await run('echo out; echo err >&2; exit 0');
  t.equal(okRun.code, 0);
  t.match(okRun.output, /out/);
  t.match(okRun.output, /err/);
  const failed = await run('echo "nginx: [emerg] bad"; exit 3');
  t.equal(failed.code, 3);
  t.equal(describeFailure('nginx -t', failed), '"nginx -t" exited with 3: nginx: [emerg] bad');
  const slow = await createShellRunner({ timeoutMs: 500 })('sleep 600');
  t.equal(slow.timedOut, true);
  t.equal(describeFailure('sleep 600', slow), '"sleep 600" timed out');
  // The command exits at once but leaves a child holding its output pipes: run() must answer while that child
  // still lives (it would take 10 minutes to end by itself).
  const daemon = await run('sleep 600 & echo $!');
  t.equal(daemon.code, 0);
  const pid = Number(daemon.output.trim());
  t.doesNotThrow(() => process.kill(pid, 0), 'answered while the background child still runs');
  process.kill(pid, 'SIGKILL');
});

t.test('real commands: a failing check restores, a passing one reloads', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'app.conf');
  const reloads = join(dir, 'reloads');
  // The "proxy" accepts configs that start with "ok".
  const check = `grep -q '^ok' ${path} || { echo "config invalid: $(head -c 20 ${path})" >&2; exit 1; }`;
  const reload = `echo reload >> ${reloads}`;
  t.match(await writeConfig({ path, content: 'ok 1\n', check, reload }), { status: 'written', reloaded: true });
  t.match(await writeConfig({ path, content: 'broken\n', check, reload }), { status: 'check_failed', restored: 'previous', reason: /config invalid: broken/ });
  t.equal(await readFile(path, 'utf8'), 'ok 1\n');
  t.match(await writeConfig({ path, content: 'ok 1\n', check, reload }), { status: 'unchanged' });
  t.match(await writeConfig({ path, content: 'ok 2\n', check, reload }), { status: 'written' });
  t.equal(await readFile(reloads, 'utf8'), 'reload\nreload\n', 'two reloads for two changes');
});
