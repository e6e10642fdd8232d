// What the page knows: every instance and Service from the watch stream, and the recent change timeline.
import type { ChangeMessage, ChangeType, Instance, Service, Status, WatchMessage } from './types.js';
import { STATUSES } from './types.js';

export interface TimelineEntry {
  revision: number;
  type: ChangeType;
  reason: string;
  kind: 'instance' | 'service';
  namespace: string;
  service: string;
  /** Instance id for instance events. */
  id: string | null;
  detail: string;
  receivedAt: number;
}

const TIMELINE_MAX = 500;

export type Counts = Record<Status, number> & { total: number };

export function emptyCounts(): Counts {
  return { total: 0, up: 0, draining: 0, starting: 0, down: 0 };
}

export const serviceKey = (namespace: string, service: string) => `${namespace}/${service}`;

export class Model {
  revision = 0;
  loaded = false;
  /** namespace/service → id → instance */
  readonly instances = new Map<string, Map<string, Instance>>();
  /** namespace/service → Service object */
  readonly services = new Map<string, Service>();
  /** namespace/service → instance counts, kept as instances come and go so a frame never walks every instance. */
  private readonly counts = new Map<string, Counts>();
  private sortedKeys: string[] | null = null;
  /** Newest first. */
  timeline: TimelineEntry[] = [];
  /** Entries added since the view last drew them (drawn highlighted, then cleared). */
  fresh: TimelineEntry[] = [];

  clear() {
    this.instances.clear();
    this.services.clear();
    this.counts.clear();
    this.sortedKeys = null;
    this.timeline = [];
    this.fresh = [];
    this.loaded = false;
  }

  snapshot(msg: Extract<WatchMessage, { type: 'SNAPSHOT' }>) {
    this.instances.clear();
    this.services.clear();
    this.counts.clear();
    this.sortedKeys = null;
    for (const i of msg.items) this.put(i);
    for (const s of msg.services ?? []) this.services.set(serviceKey(s.namespace, s.name), s);
    this.revision = msg.revision;
    this.loaded = true;
  }

  apply(msg: ChangeMessage) {
    this.revision = msg.revision;
    let entry: TimelineEntry;
    if ('instance' in msg) {
      const i = msg.instance;
      if (msg.type === 'DELETED') this.remove(i);
      else this.put(i);
      entry = {
        revision: msg.revision,
        type: msg.type,
        reason: msg.reason,
        kind: 'instance',
        namespace: i.namespace,
        service: i.service,
        id: i.id,
        detail: `${i.address}:${i.port} ${i.status} w${i.weight}`,
        receivedAt: Date.now(),
      };
    } else {
      const s = msg.service;
      const key = serviceKey(s.namespace, s.name);
      if (msg.type === 'DELETED') this.services.delete(key);
      else this.services.set(key, s);
      this.sortedKeys = null;
      entry = {
        revision: msg.revision,
        type: msg.type,
        reason: msg.reason,
        kind: 'service',
        namespace: s.namespace,
        service: s.name,
        id: null,
        detail: `Service ${s.virtualIP ?? 'no virtual IP'} ${s.ports.map((p) => `${p.port}/${p.protocol}`).join(', ')}`,
        receivedAt: Date.now(),
      };
    }
    this.timeline.unshift(entry);
    if (this.timeline.length > TIMELINE_MAX) this.timeline.length = TIMELINE_MAX;
    this.fresh.push(entry);
    if (this.fresh.length > TIMELINE_MAX) this.fresh.splice(0, this.fresh.length - TIMELINE_MAX);
  }

  /** Lease times from a list (heartbeats renew leases without a watch event), without touching anything else. */
  refreshLeases(list: Instance[]) {
    for (const fresh of list) {
      const known = this.instances.get(serviceKey(fresh.namespace, fresh.service))?.get(fresh.id);
      if (known !== undefined && known.revision === fresh.revision) {
        known.expiresAt = fresh.expiresAt;
        known.lastHeartbeatAt = fresh.lastHeartbeatAt;
      }
    }
  }

  /** Every namespace/service key that has instances or a Service object, sorted. */
  serviceKeys(): string[] {
    if (this.sortedKeys === null) {
      const keys = new Set<string>(this.instances.keys());
      for (const k of this.services.keys()) keys.add(k);
      this.sortedKeys = [...keys].sort();
    }
    return this.sortedKeys;
  }

  countsOf(key: string): Counts {
    return this.counts.get(key) ?? emptyCounts();
  }

  totals(): Counts & { services: number; namespaces: number } {
    const c = emptyCounts();
    for (const one of this.counts.values()) {
      c.total += one.total;
      for (const s of STATUSES) c[s] += one[s];
    }
    const keys = this.serviceKeys();
    const namespaces = new Set(keys.map((k) => k.slice(0, k.indexOf('/'))));
    return { ...c, services: keys.length, namespaces: namespaces.size };
  }

  private count(i: Instance, by: 1 | -1) {
    const key = serviceKey(i.namespace, i.service);
    let c = this.counts.get(key);
    if (c === undefined) this.counts.set(key, (c = emptyCounts()));
    c[i.status] += by;
    c.total += by;
    if (c.total === 0) this.counts.delete(key);
  }

  private put(i: Instance) {
    const key = serviceKey(i.namespace, i.service);
    let m = this.instances.get(key);
    if (m === undefined) {
      this.instances.set(key, (m = new Map()));
      this.sortedKeys = null;
    }
    const old = m.get(i.id);
    if (old !== undefined) this.count(old, -1);
    m.set(i.id, i);
    this.count(i, 1);
  }

  private remove(i: Instance) {
    const key = serviceKey(i.namespace, i.service);
    const m = this.instances.get(key);
    const old = m?.get(i.id);
    if (m === undefined || old === undefined) return;
    m.delete(i.id);
    this.count(old, -1);
    if (m.size === 0) {
      this.instances.delete(key);
      this.sortedKeys = null;
    }
  }
}

export { STATUSES };
