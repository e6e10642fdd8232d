// Eureka's InstanceInfo ↔ rollcall instances. Pure: no Fastify, no registry.
import { z } from 'zod';
import { DNS_LABEL, INSTANCE_ID, isValidAddress, type Instance, type InstanceStatus, type RegisterInput } from '../../schemas/instance.js';

/** A request Eureka would refuse; the message is the plain-text body. */
export class EurekaError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Eureka fields that have no rollcall field live in metadata under this prefix, so an instance reads back as
 * it registered. They are hidden from the Eureka metadata map and shown as-is by the other APIs.
 */
export const EUREKA_PREFIX = 'eureka.';
const OVERRIDE_KEY = `${EUREKA_PREFIX}overriddenStatus`;
const DEFAULT_DATACENTER_CLASS = 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo';
/** Eureka's default lease (LeaseInfo.DEFAULT_LEASE_DURATION). */
const DEFAULT_LEASE_SECONDS = 90;

export const EUREKA_STATUS: Record<InstanceStatus, string> = { up: 'UP', starting: 'STARTING', draining: 'OUT_OF_SERVICE', down: 'DOWN' };
const FROM_EUREKA: Record<string, InstanceStatus> = { UP: 'up', STARTING: 'starting', OUT_OF_SERVICE: 'draining', DOWN: 'down', UNKNOWN: 'starting' };

export function toRollcallStatus(value: string): InstanceStatus | undefined {
  return FROM_EUREKA[value.toUpperCase()];
}

/** An Eureka app name (upper-case by convention) as a rollcall service: lower-cased, a DNS label. */
export function toServiceName(app: string): string | undefined {
  const lower = app.toLowerCase();
  return DNS_LABEL.test(lower) ? lower : undefined;
}

// Eureka's JSON carries numbers as numbers or strings, and XML as text: accept both.
const num = z.union([z.number(), z.string().regex(/^-?\d+$/).transform(Number)]);
const text = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const port = z.union([num, z.object({ $: num, '@enabled': text.optional() }).loose()]);
const objectOrEmpty = z.preprocess((v) => (v === '' || v === null ? undefined : v), z.record(z.string(), z.unknown()).optional());

const eurekaInstance = z
  .object({
    instanceId: text.optional(),
    hostName: text,
    app: text.optional(),
    ipAddr: text.optional(),
    status: text.optional(),
    port: port.optional(),
    securePort: port.optional(),
    vipAddress: text.optional(),
    secureVipAddress: text.optional(),
    homePageUrl: text.optional(),
    statusPageUrl: text.optional(),
    healthCheckUrl: text.optional(),
    leaseInfo: z.preprocess((v) => (v === '' ? undefined : v), z.object({ durationInSecs: num.optional(), renewalIntervalInSecs: num.optional() }).loose().optional()),
    metadata: objectOrEmpty,
    dataCenterInfo: z.preprocess((v) => (v === '' ? undefined : v), z.object({ name: text.optional(), '@class': text.optional() }).loose().optional()),
  })
  .loose();

function portOf(p: z.infer<typeof port> | undefined): { port: number; enabled: boolean } | undefined {
  if (p === undefined) return undefined;
  if (typeof p === 'number') return { port: p, enabled: true };
  return { port: p.$, enabled: p['@enabled'] !== 'false' };
}

export interface DecodedInstance {
  service: string;
  id: string;
  input: RegisterInput;
}

/** POST /eureka/apps/{APP} body ({instance: {...}} in JSON or XML) → a rollcall registration. */
export function decodeInstance(appName: string, body: unknown): DecodedInstance {
  const service = toServiceName(appName);
  if (service === undefined) {
    throw new EurekaError(400, `Invalid app name "${appName}": rollcall needs a DNS label once lower-cased (letters, digits and "-")`);
  }
  const wrapped = (body as { instance?: unknown } | undefined)?.instance;
  const parsed = eurekaInstance.safeParse(wrapped);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new EurekaError(400, `Invalid instance: ${['instance', ...issue.path].join('.')} ${issue.message}`);
  }
  const i = parsed.data;
  const id = i.instanceId !== undefined && i.instanceId !== '' ? i.instanceId : i.hostName;
  if (!INSTANCE_ID.test(id)) throw new EurekaError(400, `Invalid instanceId "${id}": must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" and "-"`);
  const address = i.ipAddr !== undefined && i.ipAddr !== '' ? i.ipAddr : i.hostName;
  if (!isValidAddress(address)) throw new EurekaError(400, `Invalid ipAddr "${address}": must be an IP address or a DNS hostname`);
  const plain = portOf(i.port);
  const secure = portOf(i.securePort);
  const usable = plain ?? secure;
  if (usable === undefined || !Number.isInteger(usable.port) || usable.port < 1 || usable.port > 65535) {
    throw new EurekaError(400, 'Invalid instance: port must be 1-65535');
  }
  const status = toRollcallStatus(i.status ?? 'UP');
  if (status === undefined) throw new EurekaError(400, `Invalid status "${i.status}": UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN`);
  const lease = i.leaseInfo?.durationInSecs ?? DEFAULT_LEASE_SECONDS;
  if (!Number.isInteger(lease) || lease < 1 || lease > 86_400) throw new EurekaError(400, 'Invalid leaseInfo.durationInSecs: 1-86400');

  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(i.metadata ?? {})) {
    if (k === '@class') continue;
    if (typeof v === 'object' && v !== null) throw new EurekaError(400, `Invalid metadata "${k}": values must be text`);
    metadata[k] = String(v ?? '');
  }
  const keep = (key: string, value: string | undefined) => {
    if (value !== undefined && value !== '') metadata[`${EUREKA_PREFIX}${key}`] = value;
  };
  if (i.hostName !== address) keep('hostName', i.hostName);
  if (plain && !plain.enabled) keep('portEnabled', 'false');
  if (secure) {
    keep('securePort', String(secure.port));
    keep('securePortEnabled', String(secure.enabled));
  }
  if (i.vipAddress !== service) keep('vipAddress', i.vipAddress);
  if (i.secureVipAddress !== service) keep('secureVipAddress', i.secureVipAddress);
  keep('homePageUrl', i.homePageUrl);
  keep('statusPageUrl', i.statusPageUrl);
  keep('healthCheckUrl', i.healthCheckUrl);
  if (i.leaseInfo?.renewalIntervalInSecs !== undefined) keep('renewalIntervalInSecs', String(i.leaseInfo.renewalIntervalInSecs));
  if (i.dataCenterInfo?.name !== undefined && i.dataCenterInfo.name !== 'MyOwn') keep('dataCenterInfo.name', i.dataCenterInfo.name);
  if (i.dataCenterInfo?.['@class'] !== undefined && i.dataCenterInfo['@class'] !== DEFAULT_DATACENTER_CLASS) keep('dataCenterInfo.class', i.dataCenterInfo['@class']);
  if (Object.keys(metadata).length > 64) throw new EurekaError(400, 'Invalid instance: rollcall keeps at most 64 metadata entries (Eureka fields included)');

  return { service, id, input: { address, port: usable.port, status, tags: [], metadata, ttlSeconds: lease } };
}

/** Eureka keeps a status override across re-registrations (InstanceResource.statusUpdate): so does this. */
export function withOverride(input: RegisterInput, existing: Instance | undefined): RegisterInput {
  const override = existing?.metadata[OVERRIDE_KEY];
  if (override === undefined) return input;
  return { ...input, status: toRollcallStatus(override) ?? input.status, metadata: { ...input.metadata, [OVERRIDE_KEY]: override } };
}

/** Metadata after PUT …/status?value=X (set=true) or DELETE …/status (set=false). */
export function overrideMetadata(i: Instance, value: string | undefined): Record<string, string> {
  const { [OVERRIDE_KEY]: _old, ...rest } = i.metadata;
  return value === undefined ? rest : { ...rest, [OVERRIDE_KEY]: value };
}

/** A rollcall instance as Eureka's InstanceInfo (the JSON shape; the XML codec maps "@x" to attributes). */
export function toEurekaInstance(i: Instance, actionType = 'ADDED') {
  const e = (key: string) => i.metadata[`${EUREKA_PREFIX}${key}`];
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(i.metadata)) if (!k.startsWith(EUREKA_PREFIX)) metadata[k] = v;
  const registered = Date.parse(i.registeredAt);
  const renewed = Date.parse(i.lastHeartbeatAt);
  return {
    instanceId: i.id,
    hostName: e('hostName') ?? i.address,
    app: i.service.toUpperCase(),
    ipAddr: i.address,
    status: EUREKA_STATUS[i.status],
    overriddenStatus: e('overriddenStatus') ?? 'UNKNOWN',
    port: { $: i.port, '@enabled': e('portEnabled') ?? 'true' },
    securePort: { $: Number(e('securePort') ?? 443), '@enabled': e('securePortEnabled') ?? 'false' },
    countryId: 1,
    dataCenterInfo: { '@class': e('dataCenterInfo.class') ?? DEFAULT_DATACENTER_CLASS, name: e('dataCenterInfo.name') ?? 'MyOwn' },
    leaseInfo: {
      renewalIntervalInSecs: Number(e('renewalIntervalInSecs') ?? Math.max(1, Math.floor(i.ttlSeconds / 3))),
      durationInSecs: i.ttlSeconds,
      registrationTimestamp: registered,
      lastRenewalTimestamp: renewed,
      evictionTimestamp: 0,
      serviceUpTimestamp: registered,
    },
    metadata: Object.keys(metadata).length > 0 ? metadata : { '@class': 'java.util.Collections$EmptyMap' },
    homePageUrl: e('homePageUrl') ?? '',
    statusPageUrl: e('statusPageUrl') ?? '',
    healthCheckUrl: e('healthCheckUrl') ?? '',
    vipAddress: e('vipAddress') ?? i.service,
    secureVipAddress: e('secureVipAddress') ?? i.service,
    isCoordinatingDiscoveryServer: 'false',
    lastUpdatedTimestamp: String(renewed),
    lastDirtyTimestamp: String(registered),
    actionType,
  };
}

export type EurekaInstance = ReturnType<typeof toEurekaInstance>;

/** Eureka's apps hashcode (Applications.getReconcileHashCode): STATUS_count_ per status, sorted by status. */
export function appsHashcode(instances: Pick<Instance, 'status'>[]): string {
  const counts = new Map<string, number>();
  for (const i of instances) counts.set(EUREKA_STATUS[i.status], (counts.get(EUREKA_STATUS[i.status]) ?? 0) + 1);
  return [...counts.keys()]
    .sort()
    .map((s) => `${s}_${counts.get(s)}_`)
    .join('');
}

/** Instances grouped into Eureka applications, apps and instances in a stable order. */
export function toApplications(instances: Instance[], actionType?: (i: Instance) => string) {
  const byApp = new Map<string, EurekaInstance[]>();
  for (const i of instances) {
    const app = i.service.toUpperCase();
    let list = byApp.get(app);
    if (!list) byApp.set(app, (list = []));
    list.push(toEurekaInstance(i, actionType?.(i)));
  }
  return [...byApp.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, instance]) => ({ name, instance }));
}
