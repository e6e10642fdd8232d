// The dashboard in a real browser (Debian's chromium via playwright-core) against a real registry process.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chromiumMissing, launchBrowser, watchPageHealth } from './browser.js';
import { writeAuthFile } from './auth-fixtures.js';
import { api, freePort, startServer, startServerProcess, waitFor } from './helper.js';

const missing = chromiumMissing();
if (missing !== null) {
  if (process.env.CI === 'true') {
    t.fail(`the dashboard tests need chromium under CI: ${missing}`);
  } else {
    console.error(`\n!!! SKIPPING the dashboard browser tests: ${missing}\n`);
    t.test(`dashboard browser tests: ${missing}`, { skip: missing }, () => {});
  }
} else {
  // Generous bounds: the machine is shared. Speed is measured in bench/ui.ts, not here.
  const SOON = 15_000;
  const instanceUrl = (base: string, ns: string, svc: string, id: string) => `${base}/v1/namespaces/${ns}/services/${svc}/instances/${id}`;
  const register = (base: string, ns: string, svc: string, id: string, body: Record<string, unknown> = {}) =>
    api(instanceUrl(base, ns, svc, id), 'PUT', { address: '10.0.0.1', port: 8080, ttlSeconds: 3600, ...body });

  t.test('overview, live changes, actions, expiry, restart with resume, screenshot', async (t) => {
    const dataDir = t.testdir();
    const port = await freePort();
    let server = await startServerProcess(t, { dataDir, port });
    const base = server.url;
    t.equal((await register(base, 'default', 'web', 'web-1', { address: '10.0.0.11', zone: 'eu-1a', tags: ['http'], metadata: { version: '2.4.1' } })).status, 201);
    t.equal((await register(base, 'default', 'web', 'web-2', { address: '10.0.0.12', zone: 'eu-1b' })).status, 201);
    t.equal((await register(base, 'prod', 'api', 'api-1', { address: '10.1.0.1', status: 'starting' })).status, 201);
    const created = await api(`${base}/v1/namespaces/default/services/web`, 'PUT', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    t.equal(created.status, 201);
    const virtualIP = created.body.virtualIP as string;

    const browser = await launchBrowser();
    t.teardown(() => browser.close());
    const { page } = browser;
    const health = watchPageHealth(page);

    // / redirects to /ui, which lists what is registered.
    await page.goto(`${base}/`);
    t.match(page.url(), /\/ui\/?$/);
    await page.waitForSelector('body[data-connection="live"]', { timeout: SOON });
    const web = page.locator('tr[data-service="default/web"]');
    await web.waitFor({ timeout: SOON });
    t.equal(await web.locator('[data-count="total"]').textContent(), '2');
    t.equal(await web.locator('[data-count="up"]').textContent(), '2');
    t.equal(await web.locator('td.mono').first().textContent(), virtualIP, 'the Service virtual IP is listed');
    t.equal(await page.locator('tr[data-service="prod/api"] [data-count="starting"]').textContent(), '1');
    t.equal(await page.locator('[data-total="instances"]').textContent(), '3');
    t.equal(await page.locator('[data-total="namespaces"]').textContent(), '2');
    const ready = (await api(`${base}/readyz`)).body;
    await waitFor(async () => (await page.locator('[data-stat="revision"]').textContent()) === String(ready.revision), SOON, 'the revision in the header');
    await waitFor(async () => (await page.locator('[data-stat="ready"]').textContent()) === 'ready', SOON, 'readiness in the header');
    t.equal(await page.locator('[data-stat="history"]').textContent(), `revision ${ready.compactedRevision}`);
    t.ok(Number(await page.locator('[data-stat="watchers"]').textContent()) >= 1, 'the page itself is a watcher');

    // The search box filters by zone, tag, metadata or address.
    await page.fill('#search', 'version=2.4');
    await page.locator('table.matches tr[data-id="web-1"]').waitFor({ timeout: SOON });
    t.equal(await page.locator('table.services tbody tr').count(), 1, 'only the service holding the match');
    t.equal(await page.locator('table.matches tbody tr').count(), 1);
    await page.fill('#search', '10.1.0.1');
    await page.locator('tr[data-service="prod/api"]').waitFor({ timeout: SOON });
    t.equal(await page.locator('table.services tbody tr').count(), 1);
    await page.fill('#search', '');

    // A registration through the API appears without a reload.
    const before = Date.now();
    await register(base, 'default', 'web', 'web-3', { address: '10.0.0.13' });
    await waitFor(async () => (await web.locator('[data-count="total"]').textContent()) === '3', SOON, 'web-3 counted on the overview');
    t.comment(`registration visible on the overview after ${Date.now() - before} ms (bounded by ${SOON} ms here; timed in bench/ui.ts)`);
    await page.locator('#timeline li[data-reason="registered"]', { hasText: 'default/web/web-3' }).waitFor({ timeout: SOON });

    // Service view: instances, the Service object, leases counting down. Keyboard: the link is reachable and opens it.
    await page.locator('a[href="#/s/default/web"]').focus();
    await page.keyboard.press('Enter');
    await page.locator('table.instances tr[data-id="web-1"]').waitFor({ timeout: SOON });
    t.equal(await page.locator('[data-field="virtual-ip"]').textContent(), virtualIP);
    t.equal(await page.locator('table.instances tbody tr').count(), 3);
    const row1 = page.locator('tr[data-id="web-1"]');
    t.equal(await row1.locator('td').first().textContent(), '10.0.0.11:8080');
    t.match(await row1.locator('.status-cell').textContent(), /up/, 'status is a word, not only a colour');
    t.match(await row1.locator('td.meta').textContent(), /version=2\.4\.1/);
    const lease1 = Number((await row1.locator('td.lease').textContent())!.replace(' s', ''));
    t.ok(lease1 > 3500 && lease1 <= 3600, `lease left ${lease1} s of 3600`);
    await waitFor(async () => Number((await row1.locator('td.lease').textContent())!.replace(' s', '')) < lease1, SOON, 'the lease countdown to tick');

    // Drain from the page: confirm, and the API says draining.
    await row1.locator('button[data-action="drain"]').click();
    await page.locator('dialog[open] button[type="submit"]').click();
    await waitFor(async () => (await api(instanceUrl(base, 'default', 'web', 'web-1'))).body.status === 'draining', SOON, 'web-1 draining in the API');
    await page.locator('tr[data-id="web-1"][data-status="draining"]').waitFor({ timeout: SOON });
    t.equal(await row1.locator('button[data-action="drain"]').textContent(), 'Undrain');

    // A refused action shows the API's own message.
    const refusal = await api(instanceUrl(base, 'default', 'web', 'web-2'), 'PATCH', { weight: 999 });
    t.equal(refusal.status, 400);
    await health.expecting(/400|PATCH/, async () => {
      await page.locator('tr[data-id="web-2"] button[data-action="weight"]').click();
      await page.fill('dialog[open] input', '999');
      await page.locator('dialog[open] button[type="submit"]').click();
      const shown = await page.locator('dialog[open] .dialog-error').textContent({ timeout: SOON });
      await waitFor(async () => ((await page.locator('dialog[open] .dialog-error').textContent()) ?? '').length > 0, SOON, 'the error in the dialog');
      const text = (await page.locator('dialog[open] .dialog-error').textContent())!;
      t.ok(text.includes(refusal.body.message), `the dialog shows the API's message: ${text || shown}`);
      t.match(text, /validation_failed/);
    });
    await page.keyboard.press('Escape');
    await page.locator('dialog[open]').waitFor({ state: 'detached', timeout: SOON });
    t.equal((await api(instanceUrl(base, 'default', 'web', 'web-2'))).body.weight, 1, 'nothing changed');

    // Deregister from the page (with its confirmation) and an expiry: both leave, each with its reason.
    await page.locator('tr[data-id="web-3"] button[data-action="deregister"]').click();
    await page.locator('dialog[open] button[type="submit"]').click();
    await page.locator('tr[data-id="web-3"]').waitFor({ state: 'detached', timeout: SOON });
    t.equal((await api(instanceUrl(base, 'default', 'web', 'web-3'))).status, 404);
    await page.locator('#timeline li[data-reason="deregistered"]', { hasText: 'default/web/web-3' }).waitFor({ timeout: SOON });
    await register(base, 'default', 'web', 'short-1', { ttlSeconds: 1, address: '10.0.0.99' });
    await page.locator('tr[data-id="short-1"]').waitFor({ timeout: SOON });
    await page.locator('tr[data-id="short-1"]').waitFor({ state: 'detached', timeout: SOON });
    const expired = page.locator('#timeline li[data-reason="expired"]', { hasText: 'default/web/short-1' });
    await expired.waitFor({ timeout: SOON });
    t.match(await expired.textContent(), /DELETED/);

    // The service view as the README shows it (the run writes one; set ROLLCALL_UI_SCREENSHOT to refresh the committed one).
    await page.mouse.move(0, 0);
    const shot = await page.screenshot({ fullPage: true });
    writeFileSync(join(t.testdirName, 'ui-service-view.png'), shot);
    if (process.env.ROLLCALL_UI_SCREENSHOT) writeFileSync(process.env.ROLLCALL_UI_SCREENSHOT, shot);
    t.ok(shot.length > 10_000, 'a screenshot of the service view was written');

    // Kill the registry: the page says it is reconnecting and keeps the last view.
    const revisionsBefore = await page.locator('#timeline li').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.revision));
    await health.expecting(/net::ERR_|requestfailed|Failed to load resource/, async () => {
      await server.kill();
      await page.locator('#conn', { hasText: 'reconnecting' }).waitFor({ timeout: SOON });
      await page.locator('#conn', { hasText: 'Registry unreachable' }).waitFor({ timeout: SOON });
      t.equal(await page.locator('table.instances tbody tr').count(), 2, 'the last view stays');
      // Restart the same registry and change things before the page is back.
      server = await startServerProcess(t, { dataDir, port });
      t.equal((await register(base, 'default', 'web', 'web-4', { address: '10.0.0.14' })).status, 201);
      t.equal((await api(instanceUrl(base, 'default', 'web', 'web-2'), 'PATCH', { weight: 7 })).status, 200);
      await page.locator('#conn', { hasText: 'Live' }).waitFor({ timeout: SOON });
    });
    await page.locator('tr[data-id="web-4"]').waitFor({ timeout: SOON });
    await waitFor(async () => (await page.locator('tr[data-id="web-2"] td.weight').textContent()) === '7', SOON, 'web-2 weight 7');
    t.match(await page.locator('#conn').textContent(), /caught up from revision \d+/, 'resumed from its last revision, not a new snapshot');
    const revisions = await page.locator('#timeline li').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.revision));
    t.equal(new Set(revisions).size, revisions.length, `no duplicate events in the timeline (${revisions.join(',')})`);
    t.same(revisions.slice(-revisionsBefore.length), revisionsBefore, 'the events from before the restart are still there, once');
    t.equal(await page.locator('#timeline li', { hasText: 'default/web/web-4' }).count(), 1);
    const listed = (await api(`${base}/v1/namespaces/default/services/web/instances`)).body.items.map((i: { id: string }) => i.id).sort();
    const shown = await page.locator('table.instances tbody tr').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id).sort());
    t.same(shown, listed, 'the page shows what the API lists');

    t.same(health.problems, [], 'no console errors or failed requests');
  });

  t.test('with a token configured the page asks for it and shows no data until given', async (t) => {
    const server = await startServer(t, { config: { token: 'sesame-42' } });
    const auth = { authorization: 'Bearer sesame-42' };
    t.equal((await api(instanceUrl(server.url, 'default', 'secret', 'hidden-1'), 'PUT', { address: '10.9.9.9', port: 1 }, auth)).status, 201);
    const browser = await launchBrowser();
    t.teardown(() => browser.close());
    const { page } = browser;
    const health = watchPageHealth(page);
    const requests: string[] = [];
    page.on('request', (req) => requests.push(`${req.url()} ${JSON.stringify(req.headers())}`));

    await health.expecting(/401/, async () => {
      await page.goto(`${server.url}/ui`);
      await page.locator('form.login').waitFor({ timeout: SOON });
      t.equal(await page.locator('table').count(), 0, 'no data without the token');
      t.notMatch(await page.locator('body').textContent(), /hidden-1|secret|10\.9\.9\.9/);
      await page.fill('#token', 'wrong');
      await page.locator('form.login button[type="submit"]').click();
      await page.locator('form.login', { hasText: 'not known' }).waitFor({ timeout: SOON });
      await page.fill('#token', 'sesame-42');
      await page.locator('form.login button[type="submit"]').click();
      await page.locator('tr[data-service="default/secret"]').waitFor({ timeout: SOON });
    });
    t.equal(await page.evaluate(() => localStorage.length), 0, 'not remembered unless asked');
    t.notOk(requests.some((r) => r.split(' ')[0]!.includes('sesame')), 'the token is never in a URL');
    t.ok(requests.some((r) => r.includes('/v1/watch') && r.includes('Bearer sesame-42')), 'the watch carries it in a header');
    t.same(health.problems, [], 'no console errors or failed requests once signed in');
  });

  t.test('a read-only token sees the data and no write buttons; a write token gets them', async (t) => {
    const dir = t.testdir();
    const authFile = writeAuthFile(dir, [
      { name: 'viewer', role: 'read', namespaces: ['*'], token: 'viewer-token-1' },
      { name: 'ops', role: 'write', namespaces: ['*'], token: 'ops-token-1' },
    ]);
    const server = await startServer(t, { dataDir: dir, config: { authFile } });
    t.equal((await register(server.url, 'default', 'web', 'web-1')).status, 401);
    t.equal((await api(instanceUrl(server.url, 'default', 'web', 'web-1'), 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 }, { authorization: 'Bearer ops-token-1' })).status, 201);
    for (const [token, writes] of [['viewer-token-1', false], ['ops-token-1', true]] as const) {
      const browser = await launchBrowser();
      const { page } = browser;
      const health = watchPageHealth(page);
      await health.expecting(/401/, async () => {
        await page.goto(`${server.url}/ui#/s/default/web`);
        await page.fill('#token', token);
        await page.locator('form.login button[type="submit"]').click();
        await page.locator('tr[data-id="web-1"]').waitFor({ timeout: SOON });
      });
      if (writes) {
        await page.locator('tr[data-id="web-1"] button[data-action="drain"]').waitFor({ timeout: SOON });
        t.equal(await page.locator('tr[data-id="web-1"] button').count(), 3, `${token}: drain, weight, deregister`);
      } else {
        await page.locator('p', { hasText: 'read only here' }).waitFor({ timeout: SOON });
        t.equal(await page.locator('button[data-action]').count(), 0, `${token}: no write buttons`);
      }
      t.same(health.problems, [], `${token}: no console errors or failed requests`);
      await browser.close();
    }
  });
}
