// User templates for what the built-in generators don't cover, rendered by Eta (https://eta.js.org).
// Templates are the operator's own code (Eta compiles them to JavaScript), so they are trusted like a config file;
// the data they get is the registry snapshot, which is not: templates must escape what they splice themselves.
import { Eta } from 'eta';
import { RollcallError } from '../errors.js';
import { isRoutable, type Instance } from '../schemas/instance.js';
import { compareCodePoints } from './options.js';
import { proxyGroupName, type Snapshot } from './snapshot.js';

export interface TemplateService {
  name: string;
  /** `<service>.<namespace>`, the Host the built-in generators route on. */
  host: string;
  /** The upstream/backend name the built-in generators use. */
  group: string;
  instances: Instance[];
  routable: Instance[];
}

/** What a template sees as `it`. Everything sorted (services by name, instances by service then id). */
export interface TemplateData {
  namespace: string;
  instances: Instance[];
  routable: Instance[];
  services: TemplateService[];
}

export function templateData(snapshot: Snapshot, services?: readonly string[]): TemplateData {
  const wanted = services && services.length > 0 ? new Set(services) : null;
  const instances = snapshot.instances
    .filter((i) => i.namespace === snapshot.namespace && (!wanted || wanted.has(i.service)))
    .sort((a, b) => compareCodePoints(a.service, b.service) || compareCodePoints(a.id, b.id));
  const grouped = new Map<string, Instance[]>();
  for (const name of wanted ?? []) grouped.set(name, []);
  for (const inst of instances) {
    const list = grouped.get(inst.service);
    if (list) list.push(inst);
    else grouped.set(inst.service, [inst]);
  }
  return {
    namespace: snapshot.namespace,
    instances,
    routable: instances.filter(isRoutable),
    services: [...grouped.keys()].sort(compareCodePoints).map((name) => {
      const list = grouped.get(name) ?? [];
      return {
        name,
        host: `${name}.${snapshot.namespace}`,
        group: proxyGroupName(snapshot.namespace, name),
        instances: list,
        routable: list.filter(isRoutable),
      };
    }),
  };
}

export type TemplateRenderer = (snapshot: Snapshot, services?: readonly string[]) => string;

/**
 * Compiles once (a watch renders the same template many times). autoEscape is off because Eta's escaping is for
 * HTML, which would corrupt proxy configs; autoTrim is off so the output is exactly what the template says.
 * A syntax error is reported now, with the template's name, rather than on the first change.
 */
export function compileTemplate(source: string, name = 'template'): TemplateRenderer {
  const eta = new Eta({ autoEscape: false, autoTrim: false, cache: false });
  let fn: ReturnType<Eta['compile']>;
  try {
    fn = eta.compile(source);
  } catch (err) {
    throw new RollcallError('bad_request', `${name}: ${firstLine(err)}`);
  }
  return (snapshot, services) => {
    try {
      return eta.render(fn, templateData(snapshot, services));
    } catch (err) {
      throw new RollcallError('bad_request', `${name}: ${firstLine(err)}`);
    }
  };
}

function firstLine(err: unknown): string {
  // Eta appends the generated JavaScript after a "=====" rule; the lines before it are the useful part.
  const text = err instanceof Error ? err.message : String(err);
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('=====')) break;
    if (line.trim() !== '') lines.push(line.trim().replace(/:$/, ''));
  }
  return lines.slice(0, 2).join(': ') || 'template error';
}
