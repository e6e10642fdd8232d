import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { RollcallError } from '../errors.js';
import { fail } from './fail.js';

export function addServeCommand(program: Command) {
  program
    .command('serve')
    .description('run the registry server (env: ROLLCALL_HOST, ROLLCALL_PORT, ROLLCALL_DATA_DIR, ROLLCALL_TOKEN, ROLLCALL_CONSUL_LISTEN, …)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--port <port>', 'port to listen on; 0 picks a free one (default 7400)')
    .option('--data-dir <dir>', 'where the SQLite database lives (default ./data)')
    .option('--history-size <n>', 'events kept for resuming watches (default 100000)')
    .option('--watch-buffer-bytes <n>', 'unsent bytes after which a slow watcher is closed (default 4194304)')
    .option('--service-cidr <cidr>', 'range Service virtual IPs come from, IPv4 or IPv6 (default 127.77.0.0/16)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--consul-listen <host:port>', 'also serve the Consul-compatible API here, e.g. 127.0.0.1:8500 (default off)')
    .option('--consul-datacenter <name>', 'datacenter name the Consul API reports (default dc1)')
    .option('--eureka-namespace <name>', 'namespace the Eureka API at /eureka serves (default default)')
    .option('--max-connections <n>', 'open connections above this get 503 too_many_connections; 0 = no limit (default 10000)')
    .option('--max-watchers <n>', 'WebSocket + SSE watchers above this get 503 too_many_watchers; 0 = no limit (default 8000)')
    .option('--protect-window <duration>', 'self-preservation: lapses are counted over this window (default 60s)')
    .option('--protect-threshold <percent>', 'self-preservation starts past this percent of instances lapsed; 100 = off (default 15)')
    .option('--protect-max <duration>', 'self-preservation ends at the latest after this long (default 10m)')
    .option('--protect-min-lapses <n>', 'fewer lapses never start self-preservation (default 3)')
    .option('--dns-listen <host:port>', 'answer DNS (UDP and TCP) on this address, e.g. 127.0.0.1:8600 (default off)')
    .option('--dns-domain <domain>', 'the DNS zone rollcall answers for (default rollcall.)')
    .option('--dns-ttl <seconds>', 'TTL of DNS answers, also the negative TTL; 0 allowed (default 5)')
    .option('--dns-ns <name>', 'name server named in NS and SOA (default ns.<domain>)')
    .option('--auth-file <file>', 'YAML file of scoped tokens (rollcall token create); reloaded on SIGHUP')
    .option('--protect-ops', 'also require a token for /healthz, /readyz, /metrics, /docs and the spec')
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS and WSS (reloaded on SIGHUP)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'PEM CA bundle: require client certificates it signed (mutual TLS)')
    .option('--store <kind>', 'sqlite (one process, default) or etcd (replicas over an etcd cluster)')
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma-separated (default http://127.0.0.1:2379)')
    .option('--etcd-prefix <prefix>', 'key prefix of this registry in etcd (default /rollcall)')
    .option('--etcd-ca <file>', 'PEM CA bundle of the etcd members (https endpoints)')
    .option('--etcd-cert <file>', 'PEM client certificate for etcd')
    .option('--etcd-key <file>', 'PEM private key of --etcd-cert')
    .option('--etcd-username <user>', 'etcd user (the password comes from ROLLCALL_ETCD_PASSWORD)')
    .option('--etcd-timeout <duration>', 'an etcd call slower than this fails with 503 store_unavailable (default 5s)')
    .option('--etcd-compact-interval <duration>', 'how often the elected replica compacts etcd to the last --history-size revisions (default 5m)')
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
            consulListen: opts.consulListen,
            consulDatacenter: opts.consulDatacenter,
            eurekaNamespace: opts.eurekaNamespace,
            maxConnections: opts.maxConnections,
            maxWatchers: opts.maxWatchers,
            protectWindow: opts.protectWindow,
            protectThreshold: opts.protectThreshold,
            protectMax: opts.protectMax,
            protectMinLapses: opts.protectMinLapses,
            dnsListen: opts.dnsListen,
            dnsDomain: opts.dnsDomain,
            dnsTtl: opts.dnsTtl,
            dnsNs: opts.dnsNs,
            authFile: opts.authFile,
            protectOps: opts.protectOps,
            tlsCert: opts.tlsCert,
            tlsKey: opts.tlsKey,
            tlsClientCa: opts.tlsClientCa,
            store: opts.store,
            etcdEndpoints: opts.etcdEndpoints,
            etcdPrefix: opts.etcdPrefix,
            etcdCa: opts.etcdCa,
            etcdCert: opts.etcdCert,
            etcdKey: opts.etcdKey,
            etcdUsername: opts.etcdUsername,
            etcdTimeout: opts.etcdTimeout,
            etcdCompactInterval: opts.etcdCompactInterval,
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
