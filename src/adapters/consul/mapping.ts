// Consul's agent/catalog/health shapes ↔ rollcall instances. Pure: no Fastify, no registry.
import { DNS_LABEL, INSTANCE_ID, isValidAddress, type Instance, type InstanceStatus, type RegisterInput } from '../../schemas/instance.js';
import { parseGoDuration } from './duration.js';

/** A request Consul would refuse, or rollcall cannot honour; the message is the plain-text body. */
export class ConsulError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** rollcall metadata keys this adapter owns; they are hidden from Consul's Meta and read back as check state. */
export const CHECK_STATE_KEY = 'consul-check';
export const CHECK_ID_KEY = 'consul-check-id';
const OWN_KEYS = new Set([CHECK_STATE_KEY, CHECK_ID_KEY]);

/** A Consul health status: what a TTL check says about the service. */
export type CheckStatus = 'passing' | 'warning' | 'critical';

/** Lease of a service registered without a TTL check: Consul keeps those forever, rollcall for at most a day. */
export const NO_CHECK_TTL_SECONDS = 86_400;

export interface NodeInfo {
  node: string;
  nodeId: string;
  address: string;
  datacenter: string;
}

// Consul decodes request bodies case-insensitively and accepts snake_case too (lib.TranslateKeys).
function field(obj: Record<string, unknown>, name: string): unknown {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase().replace(/_/g, '') === want) return v;
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A Consul service name as a rollcall service: lower-cased; must then be a DNS label. */
export function toServiceName(name: string): string {
  const lower = name.toLowerCase();
  if (!DNS_LABEL.test(lower)) {
    throw new ConsulError(
      400,
      `Invalid service name "${name}": rollcall service names are DNS labels (1-63 characters of a-z, 0-9 and "-", starting and ending alphanumeric; upper case is lower-cased)`,
    );
  }
  return lower;
}

const RUNNABLE_CHECKS = ['HTTP', 'TCP', 'GRPC', 'H2PING', 'UDP', 'Args', 'ScriptArgs', 'Script', 'DockerContainerID', 'AliasService', 'AliasNode', 'OSService'];

interface TtlCheck {
  ttlSeconds: number;
  status: CheckStatus;
  checkId?: string;
}

function decodeCheck(check: Record<string, unknown>): TtlCheck {
  const kind = RUNNABLE_CHECKS.find((k) => {
    const v = field(check, k);
    return v !== undefined && v !== '' && v !== null && !(Array.isArray(v) && v.length === 0);
  });
  if (kind !== undefined) {
    throw new ConsulError(
      400,
      `rollcall cannot run ${kind} checks: register a TTL check instead ("Check": {"TTL": "15s"}) and have the service call PUT /v1/agent/check/pass/service:<ID> within each TTL`,
    );
  }
  const ttl = field(check, 'TTL');
  if (typeof ttl !== 'string' || ttl === '') throw new ConsulError(400, 'Invalid check: TTL must be set, e.g. "TTL": "15s" (the only check kind rollcall supports)');
  const ms = parseGoDuration(ttl);
  if (ms === undefined || ms <= 0) throw new ConsulError(400, `Invalid check: TTL "${ttl}" is not a positive duration like "15s"`);
  const dcsa = field(check, 'DeregisterCriticalServiceAfter');
  if (dcsa !== undefined && dcsa !== '' && (typeof dcsa !== 'string' || parseGoDuration(dcsa) === undefined)) {
    throw new ConsulError(400, `Invalid check: DeregisterCriticalServiceAfter "${String(dcsa)}" is not a duration like "1m"`);
  }
  const status = field(check, 'Status') ?? 'critical';
  if (status !== 'passing' && status !== 'warning' && status !== 'critical') {
    throw new ConsulError(400, `Invalid check: Status must be passing, warning or critical, not "${String(status)}"`);
  }
  const checkId = field(check, 'CheckID') ?? field(check, 'ID');
  return {
    ttlSeconds: Math.min(NO_CHECK_TTL_SECONDS, Math.max(1, Math.ceil(ms / 1000))),
    status,
    ...(typeof checkId === 'string' && checkId !== '' ? { checkId } : {}),
  };
}

export interface DecodedRegistration {
  service: string;
  id: string;
  input: RegisterInput;
}

/** Status and metadata marker for a check state (outside maintenance). Starting until the first pass. */
export function statusForCheck(state: CheckStatus, initial: boolean): { status: InstanceStatus; marker?: CheckStatus } {
  if (state === 'passing') return { status: 'up' };
  if (state === 'warning') return { status: 'up', marker: 'warning' };
  return { status: initial ? 'starting' : 'down', marker: 'critical' };
}

/**
 * PUT /v1/agent/service/register body → a rollcall registration. remoteAddress stands in for Consul's node
 * address when the body has no Address (the caller is the service's "agent").
 */
export function decodeRegistration(body: unknown, remoteAddress: string): DecodedRegistration {
  if (!isObject(body)) throw new ConsulError(400, 'Request decode failed: the body must be a JSON object');
  const name = field(body, 'Name');
  if (typeof name !== 'string' || name === '') throw new ConsulError(400, 'Missing service name');
  const service = toServiceName(name);
  const rawId = field(body, 'ID');
  const id = typeof rawId === 'string' && rawId !== '' ? rawId : name;
  if (!INSTANCE_ID.test(id)) throw new ConsulError(400, `Invalid service ID "${id}": must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" and "-"`);
  const rawAddress = field(body, 'Address');
  const address = typeof rawAddress === 'string' && rawAddress !== '' ? rawAddress : remoteAddress;
  if (!isValidAddress(address)) throw new ConsulError(400, `Invalid service address "${address}": must be an IP address or a DNS hostname`);
  const port = field(body, 'Port');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConsulError(400, 'Invalid service port: rollcall needs a Port from 1 to 65535');
  }
  const tags = field(body, 'Tags') ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t !== '')) throw new ConsulError(400, 'Invalid Tags: must be a list of non-empty strings');
  if (tags.length > 32) throw new ConsulError(400, 'Invalid Tags: rollcall keeps at most 32 tags');
  const meta = field(body, 'Meta') ?? {};
  if (!isObject(meta) || !Object.values(meta).every((v) => typeof v === 'string')) throw new ConsulError(400, 'Invalid Meta: must be an object of string values');
  for (const key of Object.keys(meta)) {
    if (OWN_KEYS.has(key)) throw new ConsulError(400, `Invalid Meta: key "${key}" is reserved by rollcall's Consul API`);
  }
  let weight = 1;
  const weights = field(body, 'Weights');
  if (isObject(weights) && field(weights, 'Passing') !== undefined) {
    const passing = field(weights, 'Passing');
    if (typeof passing !== 'number' || !Number.isInteger(passing) || passing < 0 || passing > 256) {
      throw new ConsulError(400, 'Invalid Weights.Passing: rollcall weights are integers from 0 to 256');
    }
    weight = passing;
  }

  const checks: Record<string, unknown>[] = [];
  const one = field(body, 'Check');
  if (isObject(one) && Object.keys(one).length > 0) checks.push(one);
  const many = field(body, 'Checks');
  if (Array.isArray(many)) for (const c of many) if (isObject(c)) checks.push(c);
  const decoded = checks.map(decodeCheck);
  if (decoded.length > 1) throw new ConsulError(400, 'rollcall keeps one lease per instance: register at most one TTL check per service');
  const check = decoded[0];

  const metadata: Record<string, string> = { ...(meta as Record<string, string>) };
  let status: InstanceStatus = 'up';
  if (check) {
    const mapped = statusForCheck(check.status, true);
    status = mapped.status;
    if (mapped.marker) metadata[CHECK_STATE_KEY] = mapped.marker;
    if (check.checkId !== undefined && check.checkId !== `service:${id}`) metadata[CHECK_ID_KEY] = check.checkId;
  }
  return {
    service,
    id,
    input: {
      address,
      port,
      status,
      weight,
      tags: tags as string[],
      metadata,
      ttlSeconds: check?.ttlSeconds ?? NO_CHECK_TTL_SECONDS,
    },
  };
}

/** The check id a service's TTL check answers to. */
export function checkIdOf(i: Instance): string {
  return i.metadata[CHECK_ID_KEY] ?? `service:${i.id}`;
}

function consulMeta(i: Instance): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(i.metadata)) if (!OWN_KEYS.has(k)) out[k] = v;
  return out;
}

/** The TTL check's state: starting and down are critical; draining keeps what the check last said. */
export function checkStatusOf(i: Instance): CheckStatus {
  const marker = i.metadata[CHECK_STATE_KEY];
  if (i.status === 'starting' || i.status === 'down') return 'critical';
  return marker === 'warning' || marker === 'critical' ? marker : 'passing';
}

export function agentService(i: Instance) {
  return {
    Kind: '',
    ID: i.id,
    Service: i.service,
    Tags: i.tags,
    Meta: consulMeta(i),
    Port: i.port,
    Address: i.address,
    TaggedAddresses: {},
    Weights: { Passing: i.weight, Warning: 1 },
    EnableTagOverride: false,
    Namespace: i.namespace,
    Datacenter: undefined as string | undefined,
    CreateIndex: i.createRevision,
    ModifyIndex: i.revision,
  };
}

export function healthChecks(i: Instance, node: NodeInfo) {
  const base = { Node: node.node, ServiceID: i.id, ServiceName: i.service, ServiceTags: i.tags, Namespace: i.namespace, Definition: {}, CreateIndex: i.createRevision, ModifyIndex: i.revision };
  const status = checkStatusOf(i);
  const checks = [
    {
      ...base,
      CheckID: checkIdOf(i),
      Name: `Service '${i.service}' check`,
      Status: status,
      Notes: '',
      Output: i.status === 'starting' ? 'TTL check not yet passed' : `TTL check ${status} (rollcall status ${i.status})`,
      Type: 'ttl',
    },
  ];
  if (i.status === 'draining') {
    checks.push({
      ...base,
      CheckID: `_service_maintenance:${i.id}`,
      Name: 'Service Maintenance Mode',
      Status: 'critical',
      Notes: 'Maintenance mode is enabled for this service (rollcall status draining)',
      Output: '',
      Type: 'maintenance',
    });
  }
  return checks;
}

/** Consul's AggregatedStatus: maintenance beats critical beats warning beats passing. */
export function aggregatedStatus(i: Instance): 'passing' | 'warning' | 'critical' | 'maintenance' {
  return i.status === 'draining' ? 'maintenance' : checkStatusOf(i);
}

export function nodeJson(node: NodeInfo) {
  return {
    ID: node.nodeId,
    Node: node.node,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: { lan: node.address, lan_ipv4: node.address, wan: node.address, wan_ipv4: node.address },
    Meta: { 'consul-network-segment': '' },
    CreateIndex: 1,
    ModifyIndex: 1,
  };
}

/** The node's own health: rollcall is always its one healthy "node". */
export function serfHealth(node: NodeInfo) {
  return {
    Node: node.node,
    CheckID: 'serfHealth',
    Name: 'Serf Health Status',
    Status: 'passing',
    Notes: '',
    Output: 'Agent alive and reachable',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [] as string[],
    Type: '',
    Namespace: 'default',
    Definition: {},
    CreateIndex: 1,
    ModifyIndex: 1,
  };
}

/** GET /v1/health/service/:service entry. */
export function serviceEntry(i: Instance, node: NodeInfo) {
  return { Node: nodeJson(node), Service: { ...agentService(i), Datacenter: node.datacenter }, Checks: [serfHealth(node), ...healthChecks(i, node)] };
}

/** GET /v1/catalog/service/:service entry. */
export function catalogService(i: Instance, node: NodeInfo) {
  return {
    ID: node.nodeId,
    Node: node.node,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: nodeJson(node).TaggedAddresses,
    NodeMeta: nodeJson(node).Meta,
    ServiceKind: '',
    ServiceID: i.id,
    ServiceName: i.service,
    ServiceTags: i.tags,
    ServiceAddress: i.address,
    ServiceTaggedAddresses: {},
    ServiceWeights: { Passing: i.weight, Warning: 1 },
    ServiceMeta: consulMeta(i),
    ServicePort: i.port,
    ServiceEnableTagOverride: false,
    Namespace: i.namespace,
    CreateIndex: i.createRevision,
    ModifyIndex: i.revision,
  };
}
