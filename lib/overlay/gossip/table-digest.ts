/**
 * Table digests for anti-entropy. Records fall into a fixed number of buckets by hash of
 * (keyspace, key); each bucket's digest is the XOR of its records' 64-bit hashes, so it is
 * maintained incrementally (XOR a record in, XOR it out) and does not depend on insertion order.
 * Two nodes exchange the bucket digests and then only the records of buckets that differ.
 */
import { createHash } from "node:crypto";
import type { WireRecord } from "./messages.js";

/** Bucket count: 128 × 8 bytes = 1 KiB of digests per push-pull; ~N/128 records per bucket. */
export const BUCKETS = 128;
export const DIGEST_BYTES = 8;

export function bucketOf(keyspace: string, key: string): number {
  let h = 0x811c9dc5;
  const s = `${keyspace}\u0000${key}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) % BUCKETS;
}

/** A record's 64-bit identity: everything that distinguishes one version from another. */
export function recordHash(rec: WireRecord): Uint8Array {
  const h = createHash("sha256");
  h.update(
    `${rec.keyspace}\u0000${rec.key}\u0000${rec.owner}\u0000${rec.lamport}\u0000${rec.deleted ? 1 : 0}\u0000`,
  );
  h.update(rec.valueBytes);
  return new Uint8Array(h.digest().subarray(0, DIGEST_BYTES));
}

export class BucketDigest {
  private readonly digests = new Uint8Array(BUCKETS * DIGEST_BYTES);

  /** XORs a record hash into (or, applied twice, out of) its bucket. */
  toggle(bucket: number, hash: Uint8Array): void {
    const base = bucket * DIGEST_BYTES;
    for (let i = 0; i < DIGEST_BYTES; i++) this.digests[base + i]! ^= hash[i]!;
  }

  /** Replaces the digests with a saved copy of `bytes()` (to diff against a past state). */
  load(bytes: Uint8Array): void {
    this.digests.set(bytes.subarray(0, this.digests.length));
  }

  bytes(): Uint8Array {
    return this.digests.slice();
  }

  /** Buckets whose digest differs from `remote`'s; every bucket when the layouts differ. */
  differing(remote: Uint8Array): Set<number> {
    const out = new Set<number>();
    if (remote.length !== this.digests.length) {
      for (let b = 0; b < BUCKETS; b++) out.add(b);
      return out;
    }
    for (let b = 0; b < BUCKETS; b++) {
      for (let i = b * DIGEST_BYTES; i < (b + 1) * DIGEST_BYTES; i++) {
        if (this.digests[i] !== remote[i]) {
          out.add(b);
          break;
        }
      }
    }
    return out;
  }

  /** One short string for the whole table (equal tables ⇒ equal strings). */
  summary(): string {
    return createHash("sha256").update(this.digests).digest("hex").slice(0, 16);
  }
}
