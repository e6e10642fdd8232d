import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../config.js';

/** Renders the OpenAPI document the server serves, from the same zod schemas; `npm run openapi` commits it. */
export async function renderOpenApi(): Promise<string> {
  const { buildApp } = await import('../app.js');
  const app = await buildApp({ config: loadConfig({ dataDir: ':memory:' }) });
  await app.ready();
  const yaml = app.swagger({ yaml: true });
  await app.close();
  return yaml;
}

export function addOpenApiCommand(program: Command) {
  program
    .command('openapi')
    .description('print the OpenAPI document (YAML) the server serves')
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (opts: { out?: string }) => {
      const yaml = await renderOpenApi();
      if (opts.out) writeFileSync(opts.out, yaml);
      else process.stdout.write(yaml);
    });
}
