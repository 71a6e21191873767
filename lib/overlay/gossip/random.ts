/**
 * Randomness, injectable. Target selection (probe order, gossip fanout, push-pull partner) takes a
 * `Random` so simulations replay exactly from a seed. Cryptographic nonces never use this.
 */

/** Returns a float in [0, 1). */
export type Random = () => number;

/** A small, fast, seeded PRNG (mulberry32). Good statistical quality for simulation; not crypto. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed derived from a base seed and a name, so each simulated node gets its own stream. */
export function deriveSeed(base: number, name: string): number {
  let h = (base ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Fisher-Yates shuffle in place. */
export function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Up to `k` distinct items chosen uniformly at random (partial shuffle of a copy). */
export function pickRandom<T>(items: readonly T[], k: number, random: Random): T[] {
  const copy = items.slice();
  const n = Math.min(k, copy.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}
