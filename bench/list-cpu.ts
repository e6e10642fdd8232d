// The list of a 10,000-instance service measured inside one process, without sockets: the server-side CPU of
// the list route's body, for this build (pre-serialized, listJson) beside a reference build's route body
// (list, then JSON.stringify, as its serializer did). Both in the same process, alternating, so both meet the
// same machine load. `node dist/bench/list-cpu.js [reference-dist-dir]`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { seedDatabase } from './scale.js';
import { median } from './server-process.js';

type Lister = () => string;

async function openLister(distSrc: string, file: string, preSerialized: boolean): Promise<Lister> {
  const { openDatabase } = (await import(join(distSrc, 'store/open.js'))) as typeof import('../src/store/open.js');
  const { createInstanceStore } = (await import(join(distSrc, 'store/instance-store.js'))) as typeof import('../src/store/instance-store.js');
  const { createRegistry } = (await import(join(distSrc, 'registry/registry.js'))) as typeof import('../src/registry/registry.js');
  const { createWatchHub } = (await import(join(distSrc, 'watch/hub.js'))) as typeof import('../src/watch/hub.js');
  const { systemClock } = (await import(join(distSrc, 'registry/clock.js'))) as typeof import('../src/registry/clock.js');
  const registry = createRegistry({ store: createInstanceStore(openDatabase(file), { historySize: 1000 }), hub: createWatchHub(), clock: systemClock });
  const filter = { namespace: 'scale', service: 'big' };
  return preSerialized ? () => registry.listJson(filter).json : () => JSON.stringify(registry.list(filter));
}

export async function runListCpuBench(referenceDist?: string, rounds = 30): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-listcpu-'));
  try {
    const file = join(dir, 'rollcall.db');
    seedDatabase(file, 10_000);
    const here = resolve(import.meta.dirname, '../src');
    const listers: [string, Lister][] = [
      ['this_build_ms', await openLister(here, file, true)],
      ['schema_form_same_build_ms', await openLister(here, file, false)],
    ];
    if (referenceDist !== undefined) listers.push(['reference_ms', await openLister(resolve(referenceDist, 'src'), file, false)]);
    const times = listers.map((): number[] => []);
    let bytes = 0;
    for (let round = 0; round < rounds; round++) {
      for (const [i, [, list]] of listers.entries()) {
        const t0 = performance.now();
        bytes = list().length;
        times[i]!.push(performance.now() - t0);
      }
    }
    return { ...Object.fromEntries(listers.map(([name], i) => [name, Math.round(median(times[i]!) * 100) / 100])), bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runListCpuBench(process.argv[2]));
}
