#!/usr/bin/env node
// The rollcall command table. Each command lives in its own file and adds itself to the program.
import { Command } from 'commander';

const program = new Command();
program
  .name('rollcall')
  .description('rollcall: a standalone service registry')
  .showHelpAfterError('(run with --help for usage)');

// Commands register here, one line each.

await program.parseAsync(process.argv);
