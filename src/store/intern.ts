// Restoring a large registry reads the same few namespaces, services, zones, statuses, tag lists and metadata
// maps once per row; SQLite hands each row its own copies. Sharing one copy per distinct value keeps a restored
// instance's memory to what is its own (id, address, revisions).
const MAX_JSON_CHARS = 512;
const MAX_ENTRIES = 65_536;

/** One interner per load: its tables go once the load is done; the shared values stay with the records. */
export function createInterner() {
  const strings = new Map<string, string>();
  const parsed = new Map<string, unknown>();
  return {
    string<T extends string | null>(value: T): T {
      if (value === null) return value;
      const known = strings.get(value);
      if (known !== undefined) return known as T;
      if (strings.size < MAX_ENTRIES) strings.set(value, value);
      return value;
    },

    /**
     * JSON.parse(text), shared by every row with the same text. Frozen: records never change their tags or
     * metadata in place (a change makes a new record), and a shared value must not start to.
     */
    json<T>(text: string): T {
      const known = parsed.get(text);
      if (known !== undefined) return known as T;
      const value = deepFreeze(JSON.parse(text) as T);
      if (text.length <= MAX_JSON_CHARS && parsed.size < MAX_ENTRIES) parsed.set(text, value);
      return value;
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
