// Go's time.ParseDuration, which Consul uses for TTL, wait and DeregisterCriticalServiceAfter. Pure.
const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** Milliseconds of a Go duration like "10s", "1m30s", "500ms" or "0"; undefined when malformed or negative. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (text === '' || text.startsWith('-')) return undefined;
  const body = text.startsWith('+') ? text.slice(1) : text;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < body.length) {
    const at = PART.lastIndex;
    const m = PART.exec(body);
    if (!m || m.index !== at) return undefined;
    total += Number(m[1]) * UNITS[m[2]!]!;
  }
  return body.length === 0 ? undefined : total;
}
