/**
 * Time, injectable. The protocol never calls setTimeout or Date.now directly: production uses
 * `realClock()`, simulations use `VirtualClock`, which runs a 100-node cluster through minutes of
 * protocol time in seconds and makes every run with the same seed behave the same.
 */

/** A scheduled callback; cancel() is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a clock that never goes backwards (wall-clock based epoch). */
  now(): number;
  /** Run `fn` once after `ms` milliseconds (ms < 0 is treated as 0). */
  setTimer(ms: number, fn: () => void): Timer;
}

/** The process clock. Timers are unref'd: a gossip node alone never keeps Node alive. */
export function realClock(): Clock {
  // Date.now() can jump backwards (NTP step); anchor it once and advance monotonically.
  const origin = Date.now() - performance.now();
  return {
    now: () => Math.floor(origin + performance.now()),
    setTimer(ms, fn) {
      const handle = setTimeout(fn, Math.max(0, ms));
      handle.unref();
      return { cancel: () => clearTimeout(handle) };
    },
  };
}

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A discrete-event clock. Time moves only through `advance()` / `runUntil()`, which fire due
 * timers in (time, insertion) order and let promise continuations settle between firings, so
 * async protocol code runs exactly as it would under real time, minus the waiting.
 */
export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly heap: Scheduled[] = [];

  /** `start` defaults to a fixed wall-clock-like epoch so Lamport seeds look realistic. */
  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const item: Scheduled = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.push(item);
    return {
      cancel: () => {
        item.cancelled = true;
      },
    };
  }

  /** Number of pending (not cancelled) timers; for leak checks in tests. */
  pending(): number {
    return this.heap.filter((t) => !t.cancelled).length;
  }

  /** Advance `ms` of virtual time, firing everything due on the way. */
  async advance(ms: number): Promise<void> {
    await this.runUntilTime(this.time + ms);
  }

  /**
   * Advance until `done()` holds (checked after each batch of timers) or `maxMs` have passed.
   * Returns the virtual milliseconds elapsed, or -1 on timeout.
   */
  async runUntil(done: () => boolean, maxMs: number): Promise<number> {
    const start = this.time;
    const deadline = start + maxMs;
    await settle();
    while (!done()) {
      const next = this.peekTime();
      if (next === undefined || next > deadline) {
        this.time = deadline;
        return done() ? this.time - start : -1;
      }
      await this.fireBatch(next);
    }
    return this.time - start;
  }

  private async runUntilTime(target: number): Promise<void> {
    await settle();
    for (;;) {
      const next = this.peekTime();
      if (next === undefined || next > target) break;
      await this.fireBatch(next);
    }
    this.time = Math.max(this.time, target);
  }

  /** Fire every timer due at exactly `at`, then let the promise continuations they caused run. */
  private async fireBatch(at: number): Promise<void> {
    this.time = at;
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at !== at) break;
      this.pop();
      if (!top.cancelled) top.fn();
    }
    await settle();
  }

  private peekTime(): number | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0]?.at;
  }

  private push(item: Scheduled): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

const before = (a: Scheduled, b: Scheduled): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Let every queued promise continuation (and continuations they queue) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
