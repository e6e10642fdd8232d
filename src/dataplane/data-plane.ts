// What the control loop needs of a data plane. Two implement it: nftables (kernel DNAT) and userspace (Node TCP).
import type { DesiredState } from './desired-state.js';

export interface DataPlane {
  /**
   * Puts the whole desired state in force. Resolves with what happened; throws only for a failure the loop should
   * log and retry with the next change (the previous state stays in force).
   */
  apply(state: DesiredState): Promise<'applied' | 'unchanged' | 'refused'>;
  /** Stops serving: nftables removes its table, userspace closes its listeners (open connections finish). */
  close(): Promise<void>;
}

export type Log = (line: string) => void;
