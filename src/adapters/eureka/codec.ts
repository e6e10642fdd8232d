// Eureka's two wire forms: JSON when the client asks for it, XML otherwise (Eureka's default; Prometheus'
// eureka_sd sends no Accept header and decodes XML). Pure.
import { XMLBuilder, XMLParser } from 'fast-xml-parser';

// "@x" keys are XML attributes and "$" is element text: the same convention as Eureka's JSON (port.$,
// port.@enabled, dataCenterInfo.@class), so one object serves both forms.
const xmlOptions = { ignoreAttributes: false, attributeNamePrefix: '@', textNodeName: '$' } as const;
const parser = new XMLParser({ ...xmlOptions, parseTagValue: false, parseAttributeValue: false, processEntities: true });
const builder = new XMLBuilder({ ...xmlOptions, suppressBooleanAttributes: false, suppressEmptyNode: false, processEntities: true });

/** Element names XML allows (without namespaces): metadata keys outside this are left out of XML answers. */
const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

export function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/i.test(accept);
}

export function parseXml(body: string): unknown {
  return parser.parse(body);
}

function dropBadNames(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropBadNames);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '$' || (k.startsWith('@') && XML_NAME.test(k.slice(1))) || XML_NAME.test(k)) out[k] = dropBadNames(v);
  }
  return out;
}

export function toXml(root: Record<string, unknown>): string {
  return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>${builder.build(dropBadNames(root)) as string}`;
}
