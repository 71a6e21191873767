/**
 * Lifeguard suspicion: how long a suspected member has to refute before it is declared dead.
 *
 * The timeout starts at `max` and shrinks toward `min` as independent members confirm the
 * suspicion (each saw its own probe fail): with c of the k expected confirmations,
 *   timeout(c) = max(min, max − (max − min) · log(c + 1) / log(k + 1)).
 * One suspecter alone (perhaps it is the one with the bad network) waits the longest; a node
 * that many peers cannot reach is declared dead at `min`. The timeout is measured from when the
 * suspicion started, so confirmations can fire it immediately.
 */
import type { Clock, Timer } from "./clock.js";

export interface SuspicionBounds {
  /** ms: suspicionMult × max(1, log10(n)) × probeInterval. */
  min: number;
  /** ms: suspicionMaxTimeoutMult × min. */
  max: number;
  /** Confirmations that bring the timeout down to `min`. */
  k: number;
}

/** The bounds for a cluster of `n` members (self included). */
export function suspicionBounds(
  c: { suspicionMult: number; suspicionMaxTimeoutMult: number; probeInterval: number },
  n: number,
): SuspicionBounds {
  const scale = Math.max(1, Math.log10(Math.max(1, n)));
  const min = Math.floor(c.suspicionMult * scale * c.probeInterval);
  const max = c.suspicionMaxTimeoutMult * min;
  // Confirmations can come only from members other than the suspect and the first suspecter.
  const k = Math.min(Math.max(0, c.suspicionMult - 2), Math.max(0, n - 2));
  return { min, max, k };
}

/** The total suspicion time (from its start) after `confirmations` independent confirmations. */
export function suspicionTimeout(b: SuspicionBounds, confirmations: number): number {
  if (b.k < 1) return b.min;
  const frac = Math.log(confirmations + 1) / Math.log(b.k + 1);
  return Math.max(b.min, Math.floor(b.max - (b.max - b.min) * frac));
}

/** One live suspicion: a timer re-armed on each new confirmation. */
export class Suspicion {
  private readonly started: number;
  private readonly confirmers = new Set<string>();
  private timer: Timer;

  constructor(
    private readonly clock: Clock,
    private readonly bounds: SuspicionBounds,
    /** The member whose probe started the suspicion; it does not count as a confirmation. */
    firstSuspecter: string,
    private readonly onTimeout: () => void,
  ) {
    this.started = clock.now();
    this.confirmers.add(firstSuspecter);
    this.timer = clock.setTimer(suspicionTimeout(bounds, 0), onTimeout);
  }

  /** Independent confirmations so far. */
  get confirmations(): number {
    return this.confirmers.size - 1;
  }

  /** Records a confirmation from `from`; returns true when it is new (and the timer shrank). */
  confirm(from: string): boolean {
    if (this.confirmations >= this.bounds.k || this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    this.timer.cancel();
    const elapsed = this.clock.now() - this.started;
    this.timer = this.clock.setTimer(
      suspicionTimeout(this.bounds, this.confirmations) - elapsed,
      this.onTimeout,
    );
    return true;
  }

  cancel(): void {
    this.timer.cancel();
  }
}
