// `npm run bench`: every benchmark, medians of several runs, printed as a table. Run it on a quiet machine.
import { runCompatBenchMedian } from './compat.js';
import { runAuthBench } from './auth.js';
import { runCoreBenchMedian } from './core.js';
import { runHostileBenchMedian } from './hostile.js';
import { runLeaseBenchMedian } from './leases.js';
import { runDnsBench } from './dns.js';
import { runHaBenchMedian } from './ha.js';
import { runProxyLoopbackBench, runProxyNetnsBench } from './proxy.js';
import { runRenderBench } from './render.js';
import { runListCpuBench } from './list-cpu.js';
import { runScaleBench } from './scale.js';
import { runServicesBench } from './services.js';
import { runUiBench } from './ui.js';
import { median } from './server-process.js';
import { runWatchBench } from './watch.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);

async function medianOf(fn: () => Promise<Record<string, number>>): Promise<Record<string, number>> {
  const results: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) results.push(await fn());
  return Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
}

const sections: [string, Record<string, number>][] = [];
sections.push(['core (issue 2)', await runCoreBenchMedian(runs)]);
sections.push(['watch (issue 3)', await runWatchBench(runs)]);
sections.push(['lease renewals: stream, batch, HTTP, etcd keep-alive (issue 14)', await runLeaseBenchMedian(runs)]);
sections.push(['render (issue 4)', await medianOf(runRenderBench)]);
sections.push(['proxy on loopback (issue 8)', await medianOf(runProxyLoopbackBench)]);
sections.push(['proxy in a network namespace (issue 8)', await medianOf(runProxyNetnsBench)]);
sections.push(['services (issue 8)', await runServicesBench(runs)]);
sections.push(['compat: Consul wakeups, Eureka renewals (issue 11)', await runCompatBenchMedian(runs)]);
sections.push(['hostile watchers (issue 13)', await runHostileBenchMedian(runs)]);
sections.push(['dns (issue 9)', await medianOf(runDnsBench)]);
sections.push(['auth and TLS (issue 13)', await runAuthBench(runs)]);
sections.push(['dashboard (issue 12)', await medianOf(runUiBench)]);
// The 1M point is longer: `npm run bench:scale -- --max 1000000`.
sections.push(['list of a 10k-instance service, in process (issue 14)', await runListCpuBench()]);
for (const { row } of await runScaleBench({ sizes: [10_000, 100_000], runs })) sections.push([`scale at ${row.instances} instances (issue 14)`, row]);
sections.push(['high availability on etcd, beside SQLite and raw etcd (issue 10)', await runHaBenchMedian(runs)]);

console.log(`\nrollcall benchmarks, median of ${runs} runs (node ${process.version})\n`);
for (const [title, values] of sections) {
  console.log(`## ${title}`);
  for (const [k, v] of Object.entries(values)) console.log(`  ${k.padEnd(44)} ${v}`);
}
