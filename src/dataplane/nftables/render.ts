// The nftables data plane's ruleset, rendered from the desired state. Pure and deterministic (golden-tested, and
// checked with `nft -c -f`). The shape follows kube-proxy's nftables proxier:
// - one table, `ip rollcall`, owned by rollcall; the full ruleset (renderNftables) creates it, and later changes
//   send only the service ports that differ (renderDelta; apply.ts decides which);
// - a verdict map `service-ips` from virtualIP . protocol . port to a per-service-port chain, looked up from
//   the nat output hook (traffic this node originates) and the nat prerouting hook (traffic entering the node);
// - the service chain spreads new connections by weight in one rule: `dnat ip to numgen random mod TOTAL map
//   { range : address . port, … }`, each instance owning as many values as its weight. kube-proxy uses a chain
//   per endpoint instead; measured here, 10,000 endpoint chains made one transaction take ~9 s, the map in one
//   rule per service about 1 s on this (loaded) machine. Only a connection's first packet passes the nat hooks; conntrack
//   keeps established connections on their instance when the rules change (draining);
// - a service port with no routable instance sits in `no-endpoint-services` instead, looked up from filter hooks
//   for new connections only, and is rejected at once (TCP reset, ICMP port unreachable otherwise) so clients
//   fail fast instead of hanging;
// - traffic that entered the node and was DNATed is masqueraded, so a backend on another host answers through
//   this node (kube-proxy does the same for external traffic). Locally originated traffic keeps its source.
import { isIPv4 } from 'node:net';
import type { DesiredState } from '../desired-state.js';

export const TABLE_FAMILY = 'ip';
export const TABLE_NAME = 'rollcall';
/** Packet mark bit for "DNATed on the way in, masquerade on the way out" (kube-proxy uses the same bit). */
export const MASQUERADE_MARK = 0x4000;

// Hook priorities: filter chains run before the nat ones (dstnat = -100), as in kube-proxy.
const PRIORITY = { dstnat: -100, filterBeforeNat: -110, filter: -10, srcnat: 100 } as const;

export interface RenderResult {
  ruleset: string;
  /** What the ruleset holds per service port, for the next change's delta (renderDelta). */
  model: NftModel;
  /** What could not be rendered and why (an IPv6 virtual IP, a backend whose address is not IPv4). */
  skipped: string[];
}

/** Per service-port key: its map key (`vip . tcp . port`) and its DNAT rule, or null when it is rejected. */
export type NftModel = Map<string, { element: string; rule: string | null }>;

interface Endpoint {
  address: string;
  port: number;
  weight: number;
}

const KEY_TYPE = 'type ipv4_addr . inet_proto . inet_service';
const chainOf = (key: string) => `svc-${key}`;

/** `table ip rollcall { … }` for the given state; backends must already be IPv4 literals (see resolve.ts). */
export function renderNftables(state: DesiredState): RenderResult {
  const { model, skipped } = buildModel(state);
  const entries = [...model.entries()];
  const routed = entries.filter(([, e]) => e.rule !== null);
  const rejected = entries.filter(([, e]) => e.rule === null);
  const lines: string[] = [`table ${TABLE_FAMILY} ${TABLE_NAME} {`];
  const block = (header: string, body: string[]) => {
    lines.push(`\t${header} {`, ...body.map((l) => `\t\t${l}`), '\t}');
  };
  const elements = (items: string[]) => (items.length === 0 ? [] : [`elements = { ${items.join(',\n\t\t\t     ')} }`]);

  block('map service-ips', [`${KEY_TYPE} : verdict`, ...elements(routed.map(([k, e]) => `${e.element} : goto ${chainOf(k)}`))]);
  block('set service-ports', [KEY_TYPE, ...elements(routed.map(([, e]) => e.element))]);
  block('map no-endpoint-services', [`${KEY_TYPE} : verdict`, ...elements(rejected.map(([, e]) => `${e.element} : goto reject-chain`))]);

  // Only new connections: packets of a connection opened before its last instance left still carry the virtual IP
  // here (NAT is applied later, at dstnat), and must keep flowing to it (conntrack), not be reset.
  const lookupReject = 'ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services';
  const lookupService = 'ip daddr . meta l4proto . th dport vmap @service-ips';
  block('chain reject-chain', ['meta l4proto tcp reject with tcp reset', 'reject']);
  block('chain filter-output', [`type filter hook output priority ${PRIORITY.filterBeforeNat}; policy accept;`, lookupReject]);
  block('chain filter-input', [`type filter hook input priority ${PRIORITY.filter}; policy accept;`, lookupReject]);
  block('chain filter-forward', [`type filter hook forward priority ${PRIORITY.filter}; policy accept;`, lookupReject]);
  block('chain nat-output', [`type nat hook output priority ${PRIORITY.dstnat}; policy accept;`, lookupService]);
  block('chain nat-prerouting', [
    `type nat hook prerouting priority ${PRIORITY.dstnat}; policy accept;`,
    `ip daddr . meta l4proto . th dport @service-ports meta mark set meta mark | ${hex(MASQUERADE_MARK)}`,
    lookupService,
  ]);
  block('chain nat-postrouting', [
    `type nat hook postrouting priority ${PRIORITY.srcnat}; policy accept;`,
    `meta mark & ${hex(MASQUERADE_MARK)} == ${hex(MASQUERADE_MARK)} ct status dnat masquerade`,
  ]);
  for (const [k, e] of routed) block(`chain ${chainOf(k)}`, [e.rule!]);
  lines.push('}', '');
  return { ruleset: lines.join('\n'), model, skipped };
}

/**
 * The commands that turn a table holding `from` into one holding `to`, touching only the service ports that
 * changed, like kube-proxy's partial syncs: a full re-create of 1,000 services costs the kernel about a second,
 * a one-service change a fraction of that. Order matters inside the transaction: a chain is deleted only after
 * the map element that jumps to it.
 */
export function renderDelta(from: NftModel, to: NftModel): string {
  const t = `${TABLE_FAMILY} ${TABLE_NAME}`;
  const out: string[] = [];
  const removeEntry = (k: string, e: { element: string; rule: string | null }) => {
    if (e.rule === null) {
      out.push(`delete element ${t} no-endpoint-services { ${e.element} }`);
    } else {
      out.push(`delete element ${t} service-ips { ${e.element} }`, `delete element ${t} service-ports { ${e.element} }`);
      out.push(`delete chain ${t} ${chainOf(k)}`);
    }
  };
  const addEntry = (k: string, e: { element: string; rule: string | null }) => {
    if (e.rule === null) {
      out.push(`add element ${t} no-endpoint-services { ${e.element} : goto reject-chain }`);
    } else {
      out.push(`add chain ${t} ${chainOf(k)}`, `add rule ${t} ${chainOf(k)} ${e.rule}`);
      out.push(`add element ${t} service-ips { ${e.element} : goto ${chainOf(k)} }`, `add element ${t} service-ports { ${e.element} }`);
    }
  };
  for (const [k, old] of from) {
    const next = to.get(k);
    if (next === undefined) removeEntry(k, old);
    else if (next.element !== old.element || (old.rule === null) !== (next.rule === null)) {
      removeEntry(k, old);
      addEntry(k, next);
    } else if (next.rule !== old.rule) {
      out.push(`flush chain ${t} ${chainOf(k)}`, `add rule ${t} ${chainOf(k)} ${next.rule}`);
    }
  }
  for (const [k, next] of to) if (!from.has(k)) addEntry(k, next);
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

function buildModel(state: DesiredState): { model: NftModel; skipped: string[] } {
  const skipped: string[] = [];
  const model: NftModel = new Map();
  for (const sp of state.ports) {
    if (!isIPv4(sp.virtualIP)) {
      skipped.push(`${sp.key}: virtual IP ${sp.virtualIP} is not IPv4 (the nftables table is "ip")`);
      continue;
    }
    if (sp.protocol !== 'tcp') {
      skipped.push(`${sp.key}: protocol ${sp.protocol} is not supported`);
      continue;
    }
    const endpoints = new Map<string, Endpoint>();
    for (const b of sp.backends) {
      if (!isIPv4(b.address)) {
        skipped.push(`${sp.key}: instance ${b.id} address ${b.address} is not an IPv4 address`);
        continue;
      }
      // Two instances on one address:port are one endpoint: their weights add up.
      const id = `${b.address}/${b.port}`;
      const existing = endpoints.get(id);
      if (existing) existing.weight += b.weight;
      else endpoints.set(id, { address: b.address, port: b.port, weight: b.weight });
    }
    model.set(sp.key, {
      element: `${sp.virtualIP} . ${sp.protocol} . ${sp.port}`,
      rule: endpoints.size === 0 ? null : `meta l4proto ${sp.protocol} ${spread([...endpoints.values()])}`,
    });
  }
  return { model, skipped };
}

/** The DNAT: to the one endpoint, or numgen over weighted ranges (weight w owns w consecutive values of [0, total)). */
function spread(endpoints: Endpoint[]): string {
  if (endpoints.length === 1) return `dnat ip to ${endpoints[0]!.address}:${endpoints[0]!.port}`;
  const total = endpoints.reduce((sum, ep) => sum + ep.weight, 0);
  let next = 0;
  const ranges = endpoints.map((ep) => {
    const first = next;
    next += ep.weight;
    const range = ep.weight === 1 ? `${first}` : `${first}-${next - 1}`;
    return `${range} : ${ep.address} . ${ep.port}`;
  });
  return `dnat ip to numgen random mod ${total} map { ${ranges.join(', ')} }`;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
