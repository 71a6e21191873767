/**
 * A bounded LRU map whose entries expire: the forwarder's answer cache. Time is passed in (ms) so
 * tests drive it without clocks. Map keeps insertion order, so the first key is the least
 * recently used once every hit re-inserts its key.
 */
export interface CacheHit<V> {
  value: V;
  /** whole seconds the entry has been cached (TTLs in it are that much older) */
  ageSeconds: number;
}

interface Entry<V> {
  value: V;
  storedAt: number;
  expiresAt: number;
}

export class TtlLru<V> {
  private readonly entries = new Map<string, Entry<V>>();

  /** `capacity`: most entries kept; 0 disables the cache. */
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now: number): CacheHit<V> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (now >= entry.expiresAt) return undefined;
    this.entries.set(key, entry);
    return { value: entry.value, ageSeconds: Math.floor((now - entry.storedAt) / 1000) };
  }

  /** Keeps `value` for `ttlSeconds` (nothing is stored for 0 or less). */
  set(key: string, value: V, ttlSeconds: number, now: number): void {
    if (this.capacity <= 0 || !(ttlSeconds > 0)) return;
    this.entries.delete(key);
    while (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(key, { value, storedAt: now, expiresAt: now + ttlSeconds * 1000 });
  }

  clear(): void {
    this.entries.clear();
  }
}
