// Virtual IP policy: which addresses a Service may get from --service-cidr, and handing them out. Pure, no I/O.
//
// Allocation walks a cursor forward through the range and skips addresses in the taken set, wrapping at the
// end. Each address is passed over at most once per lap, so the cost is amortised O(1) per allocation, and a
// released address is handed out again only after the cursor came round: clients that still cache a deleted
// Service's address do not reach a brand-new Service at once (the reason Kubernetes avoids quick reuse too).
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  /** The network address as a number. */
  network: bigint;
  prefix: number;
  /** Addresses in the range, network and broadcast included. */
  size: bigint;
  /** Canonical text, e.g. 127.77.0.0/16. */
  text: string;
}

/** Parses `a.b.c.d/n` or `x:y::/n`. Returns a sentence saying what is wrong instead of throwing. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return `"${text}" is not a CIDR range such as 127.77.0.0/16 (the /prefix is missing)`;
  const addr = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
  if (family === 0) return `"${addr}" is not an IPv4 or IPv6 address`;
  const bits = family === 4 ? 32 : 128;
  // Room for at least two usable addresses once the network (and IPv4 broadcast) address is skipped.
  const maxPrefix = family === 4 ? 30 : 126;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix || Number(prefixText) < (family === 4 ? 8 : 64)) {
    return `the prefix of "${text}" must be from /${family === 4 ? 8 : 64} to /${maxPrefix} for IPv${family}`;
  }
  const prefix = Number(prefixText);
  const value = ipToBigInt(addr)!;
  const size = 1n << BigInt(bits - prefix);
  const network = value & ~(size - 1n) & ((1n << BigInt(bits)) - 1n);
  if (network !== value) {
    return `"${text}" has host bits set; did you mean ${bigIntToIp(network, family)}/${prefix}?`;
  }
  return { family, network, prefix, size, text: `${bigIntToIp(network, family)}/${prefix}` };
}

export type ReserveResult = 'ok' | 'taken' | 'out_of_range';

export function createVirtualIpAllocator(cidr: Cidr) {
  // Every address a Service holds, in canonical text, in range or not (a Service keeps its address when an
  // operator narrows --service-cidr later; it must still never be handed to another Service).
  const taken = new Set<string>();
  // The in-range part of `taken` as offsets, so the allocation walk tests numbers, not formatted text.
  const takenOffsets = new Set<bigint>();
  const first = 1n; // the network address is skipped
  const last = cidr.family === 4 ? cidr.size - 2n : cidr.size - 1n; // and the IPv4 broadcast address
  const capacity = last - first + 1n;
  let inRange = 0n;
  let cursor = first;

  function offsetOf(canonical: string): bigint | undefined {
    const family = isIPv4(canonical) ? 4 : 6;
    if (family !== cidr.family) return undefined;
    const offset = ipToBigInt(canonical)! - cidr.network;
    return offset >= first && offset <= last ? offset : undefined;
  }

  return {
    cidr,
    /** The canonical text of an address (so 127.77.0.010-style spellings cannot slip past the taken set). */
    canonical(ip: string): string | undefined {
      const v = ipToBigInt(ip);
      return v === undefined ? undefined : bigIntToIp(v, isIPv4(ip) ? 4 : 6);
    },

    inRange(ip: string): boolean {
      const c = this.canonical(ip);
      return c !== undefined && offsetOf(c) !== undefined;
    },

    isTaken(ip: string): boolean {
      const c = this.canonical(ip);
      return c !== undefined && taken.has(c);
    },

    /** Marks an address held, e.g. a restored Service's. Out-of-range addresses are held too (see above). */
    hold(ip: string): void {
      const c = this.canonical(ip);
      if (c === undefined || taken.has(c)) return;
      taken.add(c);
      const offset = offsetOf(c);
      if (offset === undefined) return;
      takenOffsets.add(offset);
      inRange++;
      // After a restart, continue past the newest-looking address rather than reuse released ones first.
      if (offset >= cursor) cursor = offset + 1n > last ? first : offset + 1n;
    },

    /** A requested address: held if it is in the range and free. */
    reserve(ip: string): ReserveResult {
      const c = this.canonical(ip);
      const offset = c === undefined ? undefined : offsetOf(c);
      if (c === undefined || offset === undefined) return 'out_of_range';
      if (taken.has(c)) return 'taken';
      taken.add(c);
      takenOffsets.add(offset);
      inRange++;
      return 'ok';
    },

    /** The next free address after the cursor, or undefined when every address of the range is held. */
    allocate(): string | undefined {
      if (inRange >= capacity) return undefined;
      for (;;) {
        const offset = cursor;
        cursor = cursor === last ? first : cursor + 1n;
        if (!takenOffsets.has(offset)) {
          const ip = bigIntToIp(cidr.network + offset, cidr.family);
          taken.add(ip);
          takenOffsets.add(offset);
          inRange++;
          return ip;
        }
      }
    },

    release(ip: string): void {
      const c = this.canonical(ip);
      if (c === undefined || !taken.delete(c)) return;
      const offset = offsetOf(c);
      if (offset === undefined) return;
      takenOffsets.delete(offset);
      inRange--;
    },

    stats(): { capacity: bigint; used: bigint } {
      return { capacity, used: inRange };
    },
  };
}

export type VirtualIpAllocator = ReturnType<typeof createVirtualIpAllocator>;

/** An IPv4 or IPv6 address as a number; undefined when it is neither. */
export function ipToBigInt(ip: string): bigint | undefined {
  if (isIPv4(ip)) return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  if (!isIPv6(ip)) return undefined;
  let text = ip.split('%')[0]!;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipToBigInt(v4[1]!)!;
    text = `${text.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(missing).fill('0'), ...tailParts];
  return parts.reduce((acc, h) => (acc << 16n) | BigInt(Number.parseInt(h, 16)), 0n);
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run of two or more as ::). */
export function bigIntToIp(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const hextets = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt((7 - i) * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
