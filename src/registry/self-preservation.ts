// Self-preservation (Eureka's idea, without its trap): when too many leases lapse at once, the cause is more
// likely a partition or an overloaded registry than a fleet that died, so lapsed instances are kept (flagged)
// instead of removed. Unlike Eureka it always ends: when renewals recover, and at the latest after maxMs.

export interface SelfPreservationOptions {
  /** Lapses are counted over this long (lease time). */
  windowMs: number;
  /** Protection starts when the lapsed exceed this percentage of the instances (100 turns it off). */
  thresholdPercent: number;
  /** Protection ends at the latest this long after it began; the lapsed then expire gradually. */
  maxMs: number;
  /** Fewer lapses than this never start protection: in a registry of 3 one lapse is not a partition. */
  minLapses: number;
}

export type LeaveReason = 'recovered' | 'max';

/**
 * The policy, in counts only; the registry owns the instances. "Pressure" is the instances that lapsed and
 * did not come back: those held lapsed now, plus those that expired within the window before protection
 * began. It is compared with every instance seen in the window (the live ones plus those expired).
 */
export function createSelfPreservation(options: SelfPreservationOptions) {
  // Lease times of expiries within the window, oldest first (a queue: head advances, compacted lazily).
  let expiries: number[] = [];
  let head = 0;
  let activeSince: number | undefined;

  const expiredInWindow = () => expiries.length - head;
  const exceeds = (lapsed: number, total: number) => {
    const pressure = lapsed + expiredInWindow();
    return pressure >= options.minLapses && pressure * 100 > options.thresholdPercent * (total + expiredInWindow());
  };

  return {
    get active(): boolean {
      return activeSince !== undefined;
    },

    /** Lease time protection began (undefined when inactive). */
    get since(): number | undefined {
      return activeSince;
    },

    /** Forgets expiries older than the window. */
    prune(now: number): void {
      while (head < expiries.length && expiries[head]! <= now - options.windowMs) head++;
      if (head > 1024 && head * 2 > expiries.length) {
        expiries = expiries.slice(head);
        head = 0;
      }
    },

    /** count lapsed leases were removed at `now` (protection inactive). */
    noteExpired(count: number, now: number): void {
      for (let i = 0; i < count; i++) expiries.push(now);
    },

    /** With `lapsed` leases lapsed now (held or just due) among `total` instances: must protection begin? */
    shouldEnter(lapsed: number, total: number): boolean {
      return activeSince === undefined && exceeds(lapsed, total);
    },

    enter(now: number): void {
      activeSince = now;
    },

    /** Why protection must end now, if it must: renewals recovered, or it lasted maxMs. */
    shouldLeave(lapsed: number, total: number, now: number): LeaveReason | undefined {
      if (activeSince === undefined) return undefined;
      if (!exceeds(lapsed, total)) return 'recovered';
      if (now - activeSince >= options.maxMs) return 'max';
      return undefined;
    },

    /** Ends protection. The window starts afresh: the lapses that caused it have been dealt with. */
    leave(): void {
      activeSince = undefined;
      expiries = [];
      head = 0;
    },
  };
}

export type SelfPreservation = ReturnType<typeof createSelfPreservation>;
