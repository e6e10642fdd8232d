import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { RollcallError } from '../errors.js';
import { fail } from './fail.js';

export function addServeCommand(program: Command) {
  program
    .command('serve')
    .description('run the registry server (env: ROLLCALL_HOST, ROLLCALL_PORT, ROLLCALL_DATA_DIR, ROLLCALL_TOKEN, …)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--port <port>', 'port to listen on; 0 picks a free one (default 7400)')
    .option('--data-dir <dir>', 'where the SQLite database lives (default ./data)')
    .option('--history-size <n>', 'events kept for resuming watches (default 100000)')
    .option('--watch-buffer-bytes <n>', 'unsent bytes after which a slow watcher is closed (default 4194304)')
    .option('--service-cidr <cidr>', 'range Service virtual IPs come from, IPv4 or IPv6 (default 127.77.0.0/16)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--auth-file <file>', 'YAML file of scoped tokens (rollcall token create); reloaded on SIGHUP')
    .option('--protect-ops', 'also require a token for /healthz, /readyz, /metrics, /docs and the spec')
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS and WSS (reloaded on SIGHUP)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'PEM CA bundle: require client certificates it signed (mutual TLS)')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      let config;
      try {
        config = loadConfig(
          {
            host: opts.host,
            port: opts.port,
            dataDir: opts.dataDir,
            historySize: opts.historySize,
            watchBufferBytes: opts.watchBufferBytes,
            logLevel: opts.logLevel,
            serviceCidr: opts.serviceCidr,
            authFile: opts.authFile,
            protectOps: opts.protectOps,
            tlsCert: opts.tlsCert,
            tlsKey: opts.tlsKey,
            tlsClientCa: opts.tlsClientCa,
          },
          process.env,
        );
      } catch (err) {
        if (err instanceof RollcallError) fail(err.message, 1);
        throw err;
      }
      // Loaded on demand: the server's dependencies would slow every other command's start.
      const { runServer } = await import('../server.js');
      try {
        await runServer(config);
      } catch (err) {
        fail(`cannot start: ${(err as Error).message}`);
      }
    });
}
