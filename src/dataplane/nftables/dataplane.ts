// The nftables data plane: resolve names, render the ruleset, apply it as one transaction when it changed.
import type { DataPlane, Log } from '../data-plane.js';
import type { DesiredState } from '../desired-state.js';
import { createNftApplier } from './apply.js';
import type { NftRunner } from './nft.js';
import { renderNftables } from './render.js';
import { resolveBackends, type Lookup4 } from './resolve.js';

export function createNftablesDataPlane(options: { run: NftRunner; log: Log; lookup4?: Lookup4 }): DataPlane {
  const applier = createNftApplier(options.run);
  // The same warning on every pass would drown the log; say each one when it first appears.
  let lastWarnings = '';
  return {
    async apply(state: DesiredState) {
      const resolved = await resolveBackends(state, options.lookup4);
      const rendered = renderNftables(resolved.state);
      const { skipped } = rendered;
      const warnings = [...resolved.unresolved.map((n) => `cannot resolve ${n}; left out`), ...skipped].join('\n');
      if (warnings !== lastWarnings && warnings !== '') for (const w of warnings.split('\n')) options.log(w);
      lastWarnings = warnings;
      const outcome = await applier.apply(rendered);
      if (outcome.status === 'applied' && outcome.deltaRefused !== undefined) {
        options.log(`the kernel refused the change alone (${outcome.deltaRefused}); the whole table was re-created instead`);
      }
      if (outcome.status === 'refused') {
        options.log(`the kernel refused the new ruleset (${outcome.reason}); the previous one stays in force`);
      }
      return outcome.status;
    },
    close: () => applier.remove(),
  };
}
