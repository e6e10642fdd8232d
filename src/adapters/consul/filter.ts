// A subset of Consul's ?filter= language (go-bexpr), evaluated on the JSON answer it filters, so one
// evaluator serves every endpoint. Supported: clauses joined by "and", each one of
//   Sel == V, Sel != V, V in Sel, V not in Sel, Sel contains V, Sel not contains V, Sel is empty, Sel is not empty
// where Sel is a dotted path (Service.Meta.version) and V a "quoted" or bare value. "or", "not (…)" and
// parentheses are refused with a 400 rather than misread. Pure.
import { ConsulError } from './mapping.js';

type Predicate = (entry: unknown) => boolean;

const SEL = '([A-Za-z_][A-Za-z0-9_.-]*)';
const VAL = '("(?:[^"\\\\]|\\\\.)*"|[A-Za-z0-9_.:/-]+)';
const CLAUSES: [RegExp, (m: RegExpExecArray) => Predicate][] = [
  [new RegExp(`^${SEL}\\s*(==|!=)\\s*${VAL}$`), (m) => compare(m[1]!, m[2] === '!=', unquote(m[3]!))],
  [new RegExp(`^${VAL}\\s+(not\\s+in|in)\\s+${SEL}$`), (m) => has(m[3]!, unquote(m[1]!), m[2] !== 'in')],
  [new RegExp(`^${SEL}\\s+(not\\s+contains|contains)\\s+${VAL}$`), (m) => has(m[1]!, unquote(m[3]!), m[2] !== 'contains')],
  [new RegExp(`^${SEL}\\s+is\\s+(not\\s+)?empty$`), (m) => empty(m[1]!, m[2] !== undefined)],
];

function unquote(v: string): string {
  return v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
}

function select(entry: unknown, path: string): unknown {
  let at: unknown = entry;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

function compare(path: string, negate: boolean, value: string): Predicate {
  return (entry) => {
    const v = select(entry, path);
    const equal = (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && String(v) === value;
    return equal !== negate;
  };
}

function has(path: string, value: string, negate: boolean): Predicate {
  return (entry) => {
    const v = select(entry, path);
    const found = Array.isArray(v)
      ? v.some((x) => String(x) === value)
      : typeof v === 'string'
        ? v.includes(value)
        : typeof v === 'object' && v !== null && Object.hasOwn(v, value);
    return found !== negate;
  };
}

function empty(path: string, negate: boolean): Predicate {
  return (entry) => {
    const v = select(entry, path);
    const isEmpty = v === undefined || v === null || v === '' || (Array.isArray(v) ? v.length === 0 : typeof v === 'object' && Object.keys(v).length === 0);
    return isEmpty !== negate;
  };
}

/** Splits on " and " outside quoted values. */
function splitAnd(expression: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i]!;
    if (c === '"' && expression[i - 1] !== '\\') quoted = !quoted;
    if (!quoted && /^\s+and\s+/i.test(expression.slice(i)) && current.trim() !== '') {
      parts.push(current.trim());
      current = '';
      i += /^\s+and\s+/i.exec(expression.slice(i))![0].length - 1;
      continue;
    }
    current += c;
  }
  parts.push(current.trim());
  return parts;
}

/** The predicate for ?filter= (undefined when absent); a 400 for what this subset cannot read. */
export function parseFilter(expression: string | undefined): Predicate | undefined {
  if (expression === undefined || expression.trim() === '') return undefined;
  const predicates = splitAnd(expression.trim()).map((clause) => {
    for (const [pattern, build] of CLAUSES) {
      const m = pattern.exec(clause);
      if (m) return build(m);
    }
    throw new ConsulError(
      400,
      `Failed to create boolean expression evaluator: rollcall reads a subset of ?filter= (clauses joined by "and": ==, !=, in, not in, contains, not contains, is empty, is not empty); cannot read "${clause}"`,
    );
  });
  return (entry) => predicates.every((p) => p(entry));
}
