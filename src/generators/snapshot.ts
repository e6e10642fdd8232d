// Turns a registry snapshot into the sorted, validated per-service view both built-in generators render.
import { RollcallError } from '../errors.js';
import { DNS_LABEL, isRoutable, type Instance } from '../schemas/instance.js';
import { BALANCE_VALUES, compareCodePoints, type GeneratorOptions } from './options.js';
import { isSafeAddress } from './sanitize.js';

export interface Snapshot {
  namespace: string;
  instances: readonly Instance[];
  /**
   * Instances the caller decided to leave out (key: instanceKey), with the reason written beside them in the config:
   * e.g. a hostname that does not resolve where the proxy runs, or an instance that made the proxy's check fail.
   */
  leaveOut?: ReadonlyMap<string, string>;
}

/** Identifies an instance within one namespace: service and id. */
export function instanceKey(inst: { service: string; id: string }): string {
  return `${inst.service}/${inst.id}`;
}

/** One instance as a proxy sees it. `routable` false = kept only so existing connections can finish (draining). */
export interface Backend {
  id: string;
  address: string;
  port: number;
  weight: number;
  status: Instance['status'];
  routable: boolean;
}

export interface ServiceView {
  name: string;
  /** `<service>.<namespace>`: what clients send as Host. */
  host: string;
  /** Instances that may get traffic now or are finishing it (up or draining), sorted by id. */
  backends: Backend[];
  /** Instances left out: starting, down, or with an address/port no proxy should see. */
  skipped: { id: string; reason: string }[];
}

/**
 * Groups by service (sorted by name, instances sorted by id) so identical registry state renders byte-identical configs.
 * With `services`, exactly those services appear, present or not, so a requested service answers 503 rather than 404.
 */
export function viewServices(snapshot: Snapshot, options: GeneratorOptions): ServiceView[] {
  checkOptions(snapshot.namespace, options);
  const byService = new Map<string, Instance[]>();
  for (const name of options.services ?? []) byService.set(name, []);
  for (const inst of snapshot.instances) {
    // The snapshot may hold another namespace's rows only through a caller bug; they must not leak into this config.
    if (inst.namespace !== snapshot.namespace) continue;
    const list = byService.get(inst.service);
    if (list) list.push(inst);
    else if (!options.services) byService.set(inst.service, [inst]);
  }
  const views: ServiceView[] = [];
  for (const name of [...byService.keys()].sort(compareCodePoints)) {
    // Names come from validated registry rows, but a name is spliced into directives: refuse anything else outright.
    if (!DNS_LABEL.test(name)) continue;
    const instances = [...(byService.get(name) ?? [])].sort((a, b) => compareCodePoints(a.id, b.id));
    const view: ServiceView = { name, host: `${name}.${snapshot.namespace}`, backends: [], skipped: [] };
    for (const inst of instances) {
      const leftOut = snapshot.leaveOut?.get(instanceKey(inst));
      if (leftOut !== undefined) view.skipped.push({ id: inst.id, reason: leftOut });
      else if (!isSafeAddress(inst.address)) view.skipped.push({ id: inst.id, reason: 'invalid address' });
      else if (!Number.isInteger(inst.port) || inst.port < 1 || inst.port > 65535) view.skipped.push({ id: inst.id, reason: 'invalid port' });
      else if (inst.status === 'starting' || inst.status === 'down') view.skipped.push({ id: inst.id, reason: inst.status });
      else {
        view.backends.push({
          id: inst.id,
          address: inst.address,
          port: inst.port,
          // Registry weights are 0..256, which both proxies accept; clamp in case a caller built the snapshot by hand.
          weight: Number.isInteger(inst.weight) ? Math.min(Math.max(inst.weight, 0), 256) : 0,
          status: inst.status,
          routable: isRoutable(inst) && Number.isInteger(inst.weight),
        });
      }
    }
    views.push(view);
  }
  return views;
}

function checkOptions(namespace: string, options: GeneratorOptions): void {
  if (!DNS_LABEL.test(namespace)) {
    throw new RollcallError('bad_request', `namespace ${JSON.stringify(namespace)} is not a DNS-1123 label`);
  }
  if (!BALANCE_VALUES.includes(options.balance)) {
    throw new RollcallError('bad_request', `balance ${JSON.stringify(options.balance)} is not supported: use one of ${BALANCE_VALUES.join(', ')}`);
  }
  const { port } = options.listen;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RollcallError('bad_request', `listen port ${port} is out of range 1-65535`);
}

/** Upstream/backend name: predictable from namespace and service, and unambiguous because DNS labels hold no "_". */
export function proxyGroupName(namespace: string, service: string): string {
  return `rc_${namespace}_${service}`;
}
