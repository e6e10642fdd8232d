#!/usr/bin/env node
// The rollcall command table. Each command lives in its own file and adds itself to the program.
import { Command } from 'commander';
import { addOpenApiCommand } from './openapi.js';
import { addRenderCommand } from './render.js';
import { addServeCommand } from './serve.js';
import { addWatchCommand } from './watch.js';
import { addAgentCommand } from './agent.js';
import { addBackupCommand } from './backup.js';
import { addInstanceCommands } from './instance-commands.js';
import { addNamespaceCommands } from './namespace-commands.js';
import { addProxyCommand } from './proxy.js';
import { addEnvCommand, addServiceCommands } from './service-commands.js';
import { addTokenCommand } from './token.js';
import { VERSION } from '../version.js';

const program = new Command();
program
  .name('rollcall')
  .description('rollcall: a standalone service registry')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError('(run with --help for usage)');

// Commands register here, one line each.
addServeCommand(program);
addOpenApiCommand(program);
addWatchCommand(program);
addRenderCommand(program);
addAgentCommand(program);
addInstanceCommands(program);
addNamespaceCommands(program);
addProxyCommand(program);
addServiceCommands(program);
addEnvCommand(program);
addBackupCommand(program);
addTokenCommand(program);

await program.parseAsync(process.argv);
