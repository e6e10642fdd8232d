// The DNS adapter: the registry's live memory as a DNS zone. Proven with dig, HAProxy's resolvers and Node's
// dns.promises.Resolver (test/dns-*.test.ts). No cache: every answer reads the registry at the moment it is asked.
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { DnsSettings, DnsView, ServiceLookup } from './answer.js';
import { respond, type Transport } from './protocol.js';
import { startDnsServer, type DnsServer } from './server.js';

export interface DnsAdapterOptions {
  registry: Registry;
  metrics: Metrics;
  config: Config;
  /** The Service resource lookup (virtual IPs, named ports), when there is one. */
  services?: ServiceLookup | undefined;
  onError(err: unknown): void;
}

// Known types get their own metric label; anything else is "other", so hostile queries cannot grow the series.
const TYPE_LABELS = new Set(['A', 'AAAA', 'SRV', 'PTR', 'TXT', 'SOA', 'NS', 'CNAME', 'ANY', 'HINFO', 'MX', 'CAA', 'HTTPS', 'SVCB', 'AXFR', 'IXFR', 'DS', 'DNSKEY', 'none']);

export function dnsSettings(config: Config): DnsSettings {
  const zone = config.dnsDomain.replace(/\.$/, '');
  return { zone, ns: (config.dnsNs ?? `ns.${zone}.`).replace(/\.$/, ''), ttl: config.dnsTtl };
}

/** host:port or [v6]:port. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(i + 1)) };
}

export function createDnsAdapter(options: DnsAdapterOptions) {
  const { registry, metrics, config } = options;
  const settings = dnsSettings(config);
  const view: DnsView = {
    get revision() {
      return registry.revision;
    },
    namespace: (name) => registry.liveNamespace(name),
    services: options.services,
  };
  let server: DnsServer | undefined;

  const handle = async (message: Buffer, transport: Transport): Promise<Buffer | null> => {
    const started = process.hrtime.bigint();
    // Answer only between batches, so a change is seen once it has committed, never before.
    const reply = await registry.whenSettled(() => respond(message, transport, view, settings));
    metrics.dnsQueries.inc({ type: TYPE_LABELS.has(reply.qtype) ? reply.qtype : 'other', rcode: reply.rcode, transport });
    if (reply.truncated) metrics.dnsTruncated.inc({ transport });
    metrics.dnsDuration.observe({ transport }, Number(process.hrtime.bigint() - started) / 1e9);
    return reply.response;
  };

  return {
    settings,
    async start() {
      const { host, port } = parseListen(config.dnsListen!);
      server = await startDnsServer({
        host,
        port,
        handle,
        tcpIdleMs: config.dnsTcpIdleMs,
        tcpMaxConnections: config.dnsTcpMaxConnections,
        onError: options.onError,
        onConnections: (count) => metrics.dnsTcpConnections.set(count),
      });
      return server.address();
    },
    /** Where it listens; throws before start(). */
    address() {
      if (!server) throw new Error('the DNS server is not started');
      return server.address();
    },
    async close() {
      await server?.close();
      server = undefined;
    },
  };
}

export type DnsAdapter = ReturnType<typeof createDnsAdapter>;
