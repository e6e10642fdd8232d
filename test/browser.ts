// Debian's chromium driven by playwright-core, for the dashboard tests and bench. Missing chromium skips loudly on
// a developer machine and fails under CI=true.
import { existsSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.ROLLCALL_CHROMIUM ?? '/usr/bin/chromium';

// Without the background-networking flags Chromium phones home at start, and on a machine without internet its
// connections are refused; QUIC and GPU are off for a headless loopback run.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests cannot run here, or null when they can. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (apt-get install chromium)`;
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** A headless chromium with a fresh profile (removed on close). */
export async function launchBrowser(userDataDir?: string): Promise<Browser> {
  const dir = userDataDir ?? mkdtempSync(join(tmpdir(), 'rollcall-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      if (userDataDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Console errors, page errors, failed requests and 4xx/5xx answers; `expect` marks the ones a test causes on purpose. */
export function watchPageHealth(page: Page) {
  const problems: string[] = [];
  let allow: RegExp | null = null;
  const note = (what: string) => {
    if (allow === null || !allow.test(what)) problems.push(what);
  };
  page.on('console', (msg) => {
    if (msg.type() === 'error') note(`console: ${msg.text()} @ ${msg.location().url}`);
  });
  page.on('pageerror', (err) => note(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => note(`requestfailed: ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ''}`));
  page.on('response', (res) => {
    if (res.status() >= 400) note(`response: ${res.status()} ${res.request().method()} ${res.url()}`);
  });
  return {
    problems,
    /** While fn runs, problems matching pattern are expected (a deliberate refusal, a registry we killed). */
    async expecting<T>(pattern: RegExp, fn: () => Promise<T>): Promise<T> {
      allow = pattern;
      try {
        return await fn();
      } finally {
        allow = null;
      }
    },
  };
}
