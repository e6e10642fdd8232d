// Prometheus metrics of `rollcall proxy`, on their own registry (served on --metrics-listen).
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import type { DesiredState } from './desired-state.js';

const SERVICE_LABELS = ['namespace', 'service', 'port'] as const;

export function createProxyMetrics(options: { collectDefaults?: boolean } = {}) {
  const registry = new PromRegistry();
  if (options.collectDefaults) collectDefaultMetrics({ register: registry, prefix: 'rollcall_proxy_' });
  const metrics = {
    registry,
    backends: new Gauge({
      name: 'rollcall_proxy_backends',
      help: 'Routable instances each service port spreads new connections over (0 = rejected at once)',
      labelNames: SERVICE_LABELS,
      registers: [registry],
    }),
    connections: new Counter({
      name: 'rollcall_proxy_connections_total',
      help: 'Connections accepted on a virtual address (userspace mode)',
      labelNames: SERVICE_LABELS,
      registers: [registry],
    }),
    activeConnections: new Gauge({
      name: 'rollcall_proxy_active_connections',
      help: 'Connections open through the proxy (userspace mode)',
      labelNames: SERVICE_LABELS,
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'rollcall_proxy_bytes_total',
      help: 'Bytes relayed, by direction: in = client to instance, out = instance to client (userspace mode)',
      labelNames: [...SERVICE_LABELS, 'direction'] as const,
      registers: [registry],
    }),
    connectFailures: new Counter({
      name: 'rollcall_proxy_connect_failures_total',
      help: 'Connects to an instance that were refused, failed or timed out (userspace mode; the next instance is tried)',
      labelNames: SERVICE_LABELS,
      registers: [registry],
    }),
    unroutable: new Counter({
      name: 'rollcall_proxy_unroutable_connections_total',
      help: 'Connections closed because no instance was routable or every try failed (userspace mode)',
      labelNames: SERVICE_LABELS,
      registers: [registry],
    }),
    ruleApplies: new Counter({
      name: 'rollcall_proxy_rule_applies_total',
      help: 'Data plane updates by result: applied, unchanged, refused (kernel refused the ruleset), failed',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    ruleApplyDuration: new Histogram({
      name: 'rollcall_proxy_rule_apply_duration_seconds',
      help: 'Time to put a changed desired state in force (one nft transaction, or listener updates)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    viewRevision: new Gauge({ name: 'rollcall_proxy_view_revision', help: 'Registry revision of the state in force', registers: [registry] }),
  };
  return {
    ...metrics,
    /** Backends per service port; ports that went away are dropped so they do not linger at their last value. */
    setBackends(state: DesiredState): void {
      metrics.backends.reset();
      for (const sp of state.ports) metrics.backends.set({ namespace: sp.namespace, service: sp.service, port: String(sp.port) }, sp.backends.length);
    },
  };
}

export type ProxyMetrics = ReturnType<typeof createProxyMetrics>;

export function serviceLabels(sp: { namespace: string; service: string; port: number }) {
  return { namespace: sp.namespace, service: sp.service, port: String(sp.port) };
}
