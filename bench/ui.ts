// Dashboard benchmark (issue 12), in Debian's chromium: first render of 10,000 instances over 1,000 services;
// write acknowledgement → the changed row in the page's DOM, p50/p99 over 200 changes; and the longest frame
// while a burst of 1,000 registrations streams in. The writes are made from the page (fetch), so the
// acknowledgement and the DOM change are timed on one clock.
import autocannon from 'autocannon';
import { chromiumMissing, launchBrowser } from '../test/browser.js';
import { percentile, startBenchServer } from './server-process.js';

const INSTANCES = 10_000;
const SERVICES = 1_000;
const CHANGES = 200;
const BURST = 1_000;

async function put(url: string, amount: number, path: (i: number) => string) {
  let next = 0;
  const result = await autocannon({
    url,
    connections: Math.min(32, amount),
    amount,
    requests: [
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ address: '10.0.0.1', port: 8080, ttlSeconds: 3600, zone: 'z1', tags: ['http'] }),
        setupRequest: (req) => ({ ...req, path: path(next++) }),
      },
    ],
  });
  if (result['2xx'] !== amount) throw new Error(`only ${result['2xx']} of ${amount} PUTs answered 2xx`);
}

export async function runUiBench(): Promise<Record<string, number>> {
  const missing = chromiumMissing();
  if (missing !== null) throw new Error(`bench/ui.ts needs chromium: ${missing}`);
  const server = await startBenchServer();
  const browser = await launchBrowser();
  try {
    await put(server.url, INSTANCES, (i) => `/v1/namespaces/bench/services/svc-${String(i % SERVICES).padStart(4, '0')}/instances/i-${i}`);
    await put(server.url, 1, () => '/v1/namespaces/bench/services/live/instances/live-1');
    const { page } = browser;

    // First render: navigation start → the overview drawn from the snapshot (the page's own performance mark).
    await page.goto(`${server.url}/ui`);
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 60_000 });
    const firstRenderMs = await page.evaluate(() => performance.getEntriesByName('rollcall:first-render')[0]!.startTime);
    const total = await page.locator('[data-total="instances"]').textContent();
    if (total !== (INSTANCES + 1).toLocaleString('en')) throw new Error(`overview shows ${total} instances`);

    // Write ack → row: PATCH the weight of an instance on screen, then wait for its cell to show the new value.
    await page.goto(`${server.url}/ui#/s/bench/live`);
    await page.waitForSelector('tr[data-id="live-1"]');
    const latencies: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const weight = (i % 250) + 2; // never the weight the row shows already (1, then the previous one)
      latencies.push(
        await page.evaluate(async (w) => {
          const shows = () => document.querySelector('tr[data-id="live-1"] td.weight')?.textContent === String(w);
          const seen = new Promise<number>((resolve) => {
            const obs = new MutationObserver(() => {
              if (shows()) {
                obs.disconnect();
                resolve(performance.now());
              }
            });
            obs.observe(document.getElementById('main')!, { subtree: true, childList: true, characterData: true });
          });
          const res = await fetch('/v1/namespaces/bench/services/live/instances/live-1', {
            method: 'PATCH',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ weight: w }),
          });
          const ack = performance.now();
          if (!res.ok) throw new Error(`PATCH answered ${res.status}`);
          // Already drawn before the answer arrived: the event beat the acknowledgement (the registry fans out first).
          if (shows()) return 0;
          return (await seen) - ack;
        }, weight),
      );
    }

    // Burst: 1,000 registrations as fast as autocannon sends them while the overview is open; the longest gap
    // between animation frames says whether the tab froze.
    await page.goto(`${server.url}/ui#/`);
    await page.waitForSelector('body[data-rendered="true"]');
    const startFrames = () =>
      page.evaluate(() => {
        const w = window as unknown as { maxFrameGap: number; framesRunning: boolean; maxTask: number; observer?: PerformanceObserver };
        w.maxFrameGap = 0;
        w.maxTask = 0;
        w.observer?.disconnect();
        w.observer = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) w.maxTask = Math.max(w.maxTask, e.duration);
        });
        w.observer.observe({ type: 'longtask' });
        w.framesRunning = true;
        let last = performance.now();
        const tick = (now: number) => {
          w.maxFrameGap = Math.max(w.maxFrameGap, now - last);
          last = now;
          if (w.framesRunning) requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      });
    const stopFrames = () =>
      page.evaluate(() => {
        const w = window as unknown as { maxFrameGap: number; framesRunning: boolean; maxTask: number };
        w.framesRunning = false;
        return { maxFrameGap: w.maxFrameGap, maxTask: w.maxTask };
      });
    // Reference in the same run: the same probe while nothing happens for 2 s (what the shared machine alone costs).
    await startFrames();
    await new Promise((r) => setTimeout(r, 2000));
    const idle = await stopFrames();
    await startFrames();
    await put(server.url, BURST, (i) => `/v1/namespaces/bench/services/burst/instances/b-${i}`);
    await page.waitForFunction(
      (n) => document.querySelector('tr[data-service="bench/burst"] [data-count="total"]')?.textContent === String(n),
      BURST,
      { timeout: 60_000 },
    );
    const { maxFrameGap, maxTask } = await stopFrames();

    return {
      'first render, 10,000 instances (ms)': Math.round(firstRenderMs),
      'write ack → row in the page p50 (ms)': Number(percentile(latencies, 50).toFixed(1)),
      'write ack → row in the page p99 (ms)': Number(percentile(latencies, 99).toFixed(1)),
      'burst of 1,000 events: longest frame (ms)': Math.round(maxFrameGap),
      'burst of 1,000 events: longest task (ms)': Math.round(maxTask),
      'reference, 2 s idle: longest frame (ms)': Math.round(idle.maxFrameGap),
      'reference, 2 s idle: longest task (ms)': Math.round(idle.maxTask),
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.argv[2] ?? 1);
  for (let i = 0; i < runs; i++) console.log(await runUiBench());
}
