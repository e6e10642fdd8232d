// The DNS answer to one question, straight from the registry's memory: names → lookups → records. Pure: no
// sockets, no wire format (protocol.ts), no clock; the shuffle's randomness is injectable for tests.
import type { Answer, SrvAnswer } from 'dns-packet';
import { isIP } from 'node:net';
import { isRoutable, type InstanceStatus } from '../schemas/instance.js';
import { idLabel, parseZoneName, type ZoneName } from './names.js';

/** What an answer needs to know of an instance (the registry's live records satisfy it). */
export interface DnsInstance {
  id: string;
  address: string;
  port: number;
  status: InstanceStatus;
  weight: number;
  metadata: Readonly<Record<string, string>>;
}

/** A Service resource (clusterIP style) as the DNS adapter sees it. Injected: the Service resource lives elsewhere. */
export interface DnsService {
  virtualIP: string;
  ports: { name?: string | null; port: number; protocol: string }[];
}

export interface ServiceLookup {
  get(namespace: string, name: string): DnsService | undefined;
}

/** The registry state answers are read from. Read synchronously; nothing is kept between questions. */
export interface DnsView {
  /** Committed registry revision: the SOA serial. */
  revision: number;
  /** service → id → instance of one namespace, or undefined when it has no instances. */
  namespace(name: string): ReadonlyMap<string, ReadonlyMap<string, DnsInstance>> | undefined;
  services?: ServiceLookup | undefined;
}

export interface DnsSettings {
  /** The zone, lower-case, without the trailing dot, e.g. "rollcall". */
  zone: string;
  /** Name server for NS and SOA, without the trailing dot. */
  ns: string;
  ttl: number;
}

export interface Question {
  name: string;
  type: string;
}

export interface QuestionAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'REFUSED';
  /** AA: set for every name inside the zone. */
  authoritative: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

/** SOA timers other than minimum; only secondaries would use them, and rollcall has none. */
const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 86400 } as const;
// RFC 8482 §4.2: answer ANY with one synthesized HINFO instead of every record set.
const ANY_HINFO = { cpu: 'RFC8482', os: '' } as const;

export function answerQuestion(question: Question, view: DnsView, settings: DnsSettings, random: () => number = Math.random): QuestionAnswer {
  const parsed = parseZoneName(question.name, settings.zone);
  if (parsed === null) return { rcode: 'REFUSED', authoritative: false, answers: [], authorities: [], additionals: [] };
  const ctx = new Context(question, view, settings, random);
  const found = ctx.resolve(parsed);
  if (found === null) return ctx.negative('NXDOMAIN');
  if (question.type === 'ANY') {
    return ctx.positive([{ name: question.name, type: 'HINFO', ttl: settings.ttl, class: 'IN', data: ANY_HINFO }], []);
  }
  const records = found.records(question.type);
  if (records.answers.length === 0) return ctx.negative('NOERROR');
  return ctx.positive(records.answers, records.additionals);
}

/** A name that exists; records(type) is empty when it has nothing of that type (NODATA). */
interface Found {
  records(type: string): { answers: Answer[]; additionals: Answer[] };
}

const NONE = { answers: [], additionals: [] };
const EXISTS_WITHOUT_DATA: Found = { records: () => NONE };

class Context {
  private readonly ttl: number;
  private readonly zone: string;

  constructor(
    private readonly question: Question,
    private readonly view: DnsView,
    private readonly settings: DnsSettings,
    private readonly random: () => number,
  ) {
    this.ttl = settings.ttl;
    this.zone = settings.zone;
  }

  positive(answers: Answer[], additionals: Answer[]): QuestionAnswer {
    return { rcode: 'NOERROR', authoritative: true, answers, authorities: [], additionals };
  }

  /** NXDOMAIN or NODATA: the SOA in authority; its TTL and minimum are the negative TTL (RFC 2308). */
  negative(rcode: 'NOERROR' | 'NXDOMAIN'): QuestionAnswer {
    return { rcode, authoritative: true, answers: [], authorities: [this.soa()], additionals: [] };
  }

  soa(): Answer {
    return {
      name: this.zone,
      type: 'SOA',
      ttl: this.ttl,
      class: 'IN',
      data: {
        mname: this.settings.ns,
        rname: `hostmaster.${this.zone}`,
        // The registry revision: it rises with every change, so a secondary or a human sees that data moved.
        serial: this.view.revision % 2 ** 32,
        ...SOA_TIMERS,
        minimum: this.ttl,
      },
    };
  }

  resolve(name: ZoneName): Found | null {
    switch (name.kind) {
      case 'apex':
        return {
          records: (type) => {
            if (type === 'SOA') return { answers: [{ ...this.soa(), name: this.question.name }], additionals: [] };
            if (type === 'NS') return { answers: [this.record('NS', this.settings.ns)], additionals: [] };
            return NONE;
          },
        };
      case 'namespace':
      case 'namespace-branch':
        return this.view.namespace(name.namespace) ? EXISTS_WITHOUT_DATA : null;
      case 'service':
        return this.service(name.namespace, name.service);
      case 'instance':
        return this.instance(name.namespace, name.service, name.label);
      case 'service-type':
        return this.serviceType(name.namespace, name.service);
      case 'sd-instance':
        return this.sdInstance(name.namespace, name.service, name.label);
      case 'port-branch': {
        const ports = this.view.services?.get(name.namespace, name.service)?.ports ?? [];
        return ports.some((p) => p.name !== undefined && p.protocol.toLowerCase() === name.protocol) ? EXISTS_WITHOUT_DATA : null;
      }
      case 'named-port':
        return this.namedPort(name.namespace, name.service, name.port, name.protocol);
      case 'service-types':
        return this.serviceTypes(name.namespace);
      case 'nothing':
        return null;
    }
  }

  private instances(namespace: string, service: string): ReadonlyMap<string, DnsInstance> | undefined {
    return this.view.namespace(namespace)?.get(service);
  }

  /** A service exists while it has instances (any status) or a Service resource. */
  private service(namespace: string, service: string): Found | null {
    const ids = this.instances(namespace, service);
    const resource = this.view.services?.get(namespace, service);
    if (!ids && !resource) return null;
    return {
      records: (type) => {
        if (type === 'A' || type === 'AAAA') {
          // The one clusterIP-vs-headless rule: a Service with a virtual IP is answered with it; otherwise the
          // routable instances' IP addresses, shuffled per answer (round-robin DNS).
          if (resource?.virtualIP) {
            return isIP(resource.virtualIP) === (type === 'A' ? 4 : 6) ? { answers: [this.record(type, resource.virtualIP)], additionals: [] } : NONE;
          }
          return { answers: this.shuffle(this.addressRecords(this.question.name, type, routable(ids))), additionals: [] };
        }
        if (type === 'SRV') return this.srv(namespace, service, routable(ids));
        return NONE;
      },
    };
  }

  private instance(namespace: string, service: string, label: string): Found | null {
    const instance = findByLabel(this.instances(namespace, service), label);
    if (!instance) return null;
    return {
      records: (type) => {
        const family = isIP(instance.address);
        // A hostname-registered instance's own name is an alias of that hostname: a CNAME, whatever was asked.
        if (family === 0) return { answers: [this.record('CNAME', instance.address)], additionals: [] };
        if ((type === 'A' && family === 4) || (type === 'AAAA' && family === 6)) {
          return { answers: [this.record(type, instance.address)], additionals: [] };
        }
        return NONE;
      },
    };
  }

  private serviceType(namespace: string, service: string): Found | null {
    const ids = this.instances(namespace, service);
    if (!ids) return null;
    return {
      records: (type) => {
        if (type === 'SRV') return this.srv(namespace, service, routable(ids));
        if (type === 'PTR') {
          // RFC 6763 §12.1: each instance's SRV, TXT and address ride along as additionals (dropped first when
          // the answer does not fit).
          const typeName = `_${service}._tcp.${namespace}.${this.zone}`;
          const answers: Answer[] = [];
          const additionals: Answer[] = [];
          for (const i of routable(ids)) {
            const instanceName = `${idLabel(i.id)}.${typeName}`;
            answers.push(this.record('PTR', instanceName));
            const srv = this.srvFor(namespace, service, [i], instanceName);
            additionals.push(...srv.answers, { name: instanceName, type: 'TXT', ttl: this.ttl, class: 'IN', data: txtStrings(i.metadata) }, ...srv.additionals);
          }
          return { answers, additionals };
        }
        return NONE;
      },
    };
  }

  private sdInstance(namespace: string, service: string, label: string): Found | null {
    const instance = findByLabel(this.instances(namespace, service), label);
    if (!instance) return null;
    return {
      records: (type) => {
        if (type === 'SRV') return this.srvFor(namespace, service, [instance]);
        if (type === 'TXT') return { answers: [this.record('TXT', txtStrings(instance.metadata))], additionals: [] };
        return NONE;
      },
    };
  }

  private namedPort(namespace: string, service: string, port: string, protocol: string): Found | null {
    const resource = this.view.services?.get(namespace, service);
    const named = resource?.ports.find((p) => p.name?.toLowerCase() === port && p.protocol.toLowerCase() === protocol);
    if (!named) return null;
    return { records: (type) => (type === 'SRV' ? this.srv(namespace, service, routable(this.instances(namespace, service))) : NONE) };
  }

  private serviceTypes(namespace: string): Found | null {
    const services = this.view.namespace(namespace);
    if (!services) return null;
    return {
      records: (type) => {
        if (type !== 'PTR') return NONE;
        const names = [...services.keys()].sort();
        return { answers: names.map((s) => this.record('PTR', `_${s}._tcp.${namespace}.${this.zone}`)), additionals: [] };
      },
    };
  }

  private srv(namespace: string, service: string, instances: DnsInstance[]) {
    return this.srvFor(namespace, service, this.shuffle(instances));
  }

  /**
   * One SRV per instance: weight = instance weight, port = instance port. The target is the instance's own
   * name with its address in the additional section; a hostname-registered instance's target is its hostname
   * (RFC 2782: an SRV target must not be an alias).
   */
  private srvFor(namespace: string, service: string, instances: DnsInstance[], owner = this.question.name) {
    const answers: SrvAnswer[] = [];
    const additionals: Answer[] = [];
    for (const i of instances) {
      const family = isIP(i.address);
      const target = family === 0 ? i.address : `${idLabel(i.id)}.${service}.${namespace}.${this.zone}`;
      answers.push({ name: owner, type: 'SRV', ttl: this.ttl, class: 'IN', data: { priority: 0, weight: i.weight, port: i.port, target } });
      if (family !== 0) additionals.push({ name: target, type: family === 4 ? 'A' : 'AAAA', ttl: this.ttl, class: 'IN', data: i.address });
    }
    return { answers, additionals };
  }

  private addressRecords(name: string, type: 'A' | 'AAAA', instances: DnsInstance[]): Answer[] {
    const family = type === 'A' ? 4 : 6;
    const out: Answer[] = [];
    for (const i of instances) if (isIP(i.address) === family) out.push({ name, type, ttl: this.ttl, class: 'IN', data: i.address });
    return out;
  }

  private record(type: 'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR', data: string): Answer;
  private record(type: 'TXT', data: Buffer[]): Answer;
  private record(type: string, data: string | Buffer[]): Answer {
    return { name: this.question.name, type, ttl: this.ttl, class: 'IN', data } as Answer;
  }

  /** Fisher-Yates in place. */
  private shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

/** Routable instances (status up, weight > 0), in a fresh array. */
function routable(ids: ReadonlyMap<string, DnsInstance> | undefined): DnsInstance[] {
  const out: DnsInstance[] = [];
  if (ids) for (const i of ids.values()) if (isRoutable(i)) out.push(i);
  return out;
}

/** The instance whose id encodes to label. A plain label is an id itself (one map lookup); encoded ones are searched. */
function findByLabel(ids: ReadonlyMap<string, DnsInstance> | undefined, label: string): DnsInstance | undefined {
  if (!ids) return undefined;
  if (!label.includes('--')) return ids.get(label);
  for (const i of ids.values()) if (idLabel(i.id) === label) return i;
  return undefined;
}

/**
 * RFC 6763 §6 TXT strings from metadata, sorted by key: `key=value`, each at most 255 bytes. An entry whose
 * `key=value` passes 255 bytes, or whose key is empty, holds "=" or anything but printable ASCII (§6.4), is
 * left out whole (a cut value would be a wrong value). No metadata is one empty string (§6.1).
 */
export function txtStrings(metadata: Readonly<Record<string, string>>): Buffer[] {
  const out: Buffer[] = [];
  for (const key of Object.keys(metadata).sort()) {
    if (!/^[\x20-\x3c\x3e-\x7e]+$/.test(key)) continue;
    const entry = Buffer.from(`${key}=${metadata[key]}`, 'utf8');
    if (entry.length <= 255) out.push(entry);
  }
  return out.length > 0 ? out : [Buffer.alloc(0)];
}
