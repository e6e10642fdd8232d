// Prometheus metrics. One registry per app (not prom-client's global), so tests can build many apps.
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(options: { collectDefaults?: boolean } = {}) {
  const registry = new PromRegistry();
  if (options.collectDefaults) collectDefaultMetrics({ register: registry, prefix: 'rollcall_' });
  return {
    registry,
    instances: new Gauge({
      name: 'rollcall_instances',
      help: 'Registered instances by namespace, service and status',
      labelNames: ['namespace', 'service', 'status'] as const,
      registers: [registry],
    }),
    revision: new Gauge({ name: 'rollcall_revision', help: 'Current registry-wide revision', registers: [registry] }),
    registrations: new Counter({
      name: 'rollcall_registrations_total',
      help: 'Registrations answered, by result (created, replaced, renewed)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    heartbeats: new Counter({
      name: 'rollcall_heartbeats_total',
      help: 'Heartbeats answered, by result (ok, not_found)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    // Lease renewals (issue 14): heartbeats_total counts every heartbeat answered, whatever the protocol; this
    // splits the native API's by how they came (one request each, a batch, or the lease stream).
    leaseRenewals: new Counter({
      name: 'rollcall_lease_renewals_total',
      help: 'Lease renewals by transport (http: PUT …/heartbeat, batch: POST /v1/leases/renew, stream: GET /v1/leases) and result (ok, not_found, forbidden, storage_full)',
      labelNames: ['transport', 'result'] as const,
      registers: [registry],
    }),
    leaseStreams: new Gauge({ name: 'rollcall_lease_streams', help: 'Open lease streams (GET /v1/leases)', registers: [registry] }),
    leaseStreamCloses: new Counter({
      name: 'rollcall_lease_stream_closes_total',
      help: 'Lease streams the server closed, by reason (slow_consumer, ping_timeout, too_many_bad_messages, unauthorized)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    deregistrations: new Counter({ name: 'rollcall_deregistrations_total', help: 'Deregistrations', registers: [registry] }),
    expiries: new Counter({ name: 'rollcall_expiries_total', help: 'Instances removed because their lease ended', registers: [registry] }),
    protectionActive: new Gauge({
      name: 'rollcall_protection_active',
      help: '1 while self-preservation keeps lapsed instances instead of expiring them',
      registers: [registry],
    }),
    lapsedInstances: new Gauge({
      name: 'rollcall_lapsed_instances',
      help: 'Instances kept with a lapsed lease (during self-preservation and while they drain after it)',
      registers: [registry],
    }),
    leaseStallSeconds: new Counter({
      name: 'rollcall_lease_stall_seconds_total',
      help: 'Time the process did not run (GC, CPU starvation, SIGSTOP), discounted from every lease',
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'rollcall_http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status code',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    watchers: new Gauge({
      name: 'rollcall_watchers',
      help: 'Open watch streams by kind (websocket, sse)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    watchEventsSent: new Counter({ name: 'rollcall_watch_events_sent_total', help: 'Change events sent to watchers', registers: [registry] }),
    slowConsumerCloses: new Counter({
      name: 'rollcall_watch_slow_consumer_closes_total',
      help: 'Watch streams closed because the client did not keep up',
      registers: [registry],
    }),
    longPollsWaiting: new Gauge({ name: 'rollcall_long_polls_waiting', help: 'Blocking list queries waiting for a change', registers: [registry] }),
    // Services (stable virtual addresses)
    virtualIpsUsed: new Gauge({ name: 'rollcall_virtual_ips_used', help: 'Addresses of --service-cidr held by Services', registers: [registry] }),
    virtualIpsCapacity: new Gauge({
      name: 'rollcall_virtual_ips_capacity',
      help: 'Usable addresses of --service-cidr (network and broadcast excluded); alert before used reaches it',
      registers: [registry],
    }),
    // DNS (src/dns)
    dnsQueries: new Counter({
      name: 'rollcall_dns_queries_total',
      help: 'DNS messages handled, by question type, response code ("dropped": no answer sent) and transport',
      labelNames: ['type', 'rcode', 'transport'] as const,
      registers: [registry],
    }),
    dnsTruncated: new Counter({
      name: 'rollcall_dns_truncated_total',
      help: 'DNS responses sent with TC=1 because the answer did not fit',
      labelNames: ['transport'] as const,
      registers: [registry],
    }),
    dnsTcpConnections: new Gauge({ name: 'rollcall_dns_tcp_connections', help: 'Open DNS-over-TCP connections', registers: [registry] }),
    dnsDuration: new Histogram({
      name: 'rollcall_dns_query_duration_seconds',
      help: 'Time from a DNS message read to its response encoded, by transport',
      labelNames: ['transport'] as const,
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
