/**
 * Pending broadcasts (membership changes, table entries), each sent a bounded number of times.
 *
 * Every node that learns an update re-sends it `limit` times (retransmitMult × ceil(log10(N+1)),
 * the SWIM/memberlist bound that reaches all N nodes with high probability). A newer update about
 * the same subject (same key: a member name, a table key) replaces the queued one, so the queue
 * never carries stale news. Selection favours the least-sent, then the newest, so fresh news
 * spreads first.
 */

export interface QueuedBroadcast {
  /** Subject: "m/<member>" or "t/<keyspace>/<key>"; a newer broadcast with the same key replaces this. */
  readonly key: string;
  /** The encoded message (not the envelope). */
  readonly bytes: Uint8Array;
  transmits: number;
  readonly seq: number;
  /** Called once when the broadcast leaves the queue (sent `limit` times, or replaced). */
  readonly onDone: (() => void) | undefined;
}

/** Beyond this many queued broadcasts the most-sent are dropped; push-pull repairs what they carried. */
export const MAX_QUEUED = 4096;

export class BroadcastQueue {
  private readonly items = new Map<string, QueuedBroadcast>();
  private seq = 0;

  /** `limit()` is evaluated at send time, since N changes. */
  constructor(private readonly limit: () => number) {}

  get size(): number {
    return this.items.size;
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  enqueue(key: string, bytes: Uint8Array, onDone?: () => void): void {
    const previous = this.items.get(key);
    if (previous) {
      this.items.delete(key);
      previous.onDone?.();
    }
    this.items.set(key, { key, bytes, transmits: 0, seq: this.seq++, onDone });
    if (this.items.size > MAX_QUEUED) this.prune();
  }

  /**
   * Broadcasts that fit in `budget` bytes, given each costs `cost(bytes)` (framing included);
   * counts one transmission for each and retires those that reached the limit.
   */
  take(budget: number, cost: (bytes: Uint8Array) => number): Uint8Array[] {
    if (this.items.size === 0 || budget <= 0) return [];
    const out: Uint8Array[] = [];
    let left = budget;
    for (const b of this.ordered()) {
      const c = cost(b.bytes);
      if (c > left) continue;
      left -= c;
      out.push(b.bytes);
      this.transmitted(b);
      if (left < 8) break;
    }
    return out;
  }

  /** Broadcasts too large for any datagram (cost > maxCost), for the TCP path; counted as sent. */
  takeOversized(maxCost: number, cost: (bytes: Uint8Array) => number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const b of this.ordered()) {
      if (cost(b.bytes) <= maxCost) continue;
      out.push(b.bytes);
      this.transmitted(b);
    }
    return out;
  }

  /** Drops everything (node stopping); completion callbacks still run. */
  clear(): void {
    const all = [...this.items.values()];
    this.items.clear();
    for (const b of all) b.onDone?.();
  }

  private ordered(): QueuedBroadcast[] {
    return [...this.items.values()].sort((a, b) => a.transmits - b.transmits || b.seq - a.seq);
  }

  private transmitted(b: QueuedBroadcast): void {
    b.transmits++;
    if (b.transmits >= this.limit() && this.items.get(b.key) === b) {
      this.items.delete(b.key);
      b.onDone?.();
    }
  }

  private prune(): void {
    const byAge = [...this.items.values()].sort((a, b) => b.transmits - a.transmits || a.seq - b.seq);
    for (const b of byAge.slice(0, this.items.size - MAX_QUEUED)) {
      this.items.delete(b.key);
      b.onDone?.();
    }
  }
}

/** The retransmit bound for a cluster of `n` members. */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}
