/**
 * The replicated table: entries keyed by (keyspace, key), each version stamped with its writer
 * (owner) and a Lamport clock; last writer wins by the total order
 *     (lamport, owner name, deleted, value bytes)
 * so every node that has seen the same versions holds the same table, whatever order they came
 * in. Deletes are tombstones, kept `tombstoneGraceMs` so a node still holding the live version
 * cannot resurrect it, then reaped.
 *
 * Entries of a member that is dead, has left or is unknown are *hidden*, not rewritten: they read
 * as deleted and a change event fires for each, but the stored versions stay as they are, so
 * tables keep converging byte for byte whatever each node believes about membership, and when
 * the owner comes back its entries reappear at once. They are purged with the member when it is
 * reaped.
 *
 * The owner is authoritative for what it wrote in this process: if a version claiming to be
 * ours beats the one we wrote (we restarted and our clock started lower), we re-assert ours
 * with a clock past it. A node that restarts adopts the versions the cluster still holds for it.
 */

import { invalid } from "../../common/errors.js";
import type { Clock } from "./clock.js";
import { decodeValue, encodeValue, LIMITS } from "./codec.js";
import { Emitter } from "./emitter.js";
import type { GossipLogger } from "./log.js";
import type { TableValue, WireRecord } from "./messages.js";
import { BucketDigest, bucketOf, recordHash } from "./table-digest.js";

/** An entry as the API shows it. `deleted` is true for tombstones and for entries of dead owners. */
export interface TableEntry {
  keyspace: string;
  key: string;
  value: TableValue | undefined;
  owner: string;
  lamport: number;
  deleted: boolean;
}

export type TableEvents = { change: (ev: TableEntry) => void };

/** What the table needs from the node that hosts it. */
export interface TableHost {
  self: string;
  clock: Clock;
  log: GossipLogger;
  maxValueBytes: number;
  tombstoneGraceMs: number;
  /** Entries of this owner are visible (the owner is us, alive or suspect). */
  isOwnerLive(owner: string): boolean;
  /** The owner is in the member list in any state. */
  isOwnerKnown(owner: string): boolean;
  /** Disseminate a version this node wrote. */
  broadcast(rec: WireRecord): void;
}

interface Stored extends WireRecord {
  bucket: number;
  hash: Uint8Array;
  /** Local ms when this version arrived; starts the tombstone / unknown-owner grace. */
  storedAt: number;
  /** Written by set()/delete() in this process (owner-authoritative), not learned. */
  local: boolean;
}

/** Total order of versions: true when `a` supersedes `b`. */
export function supersedes(a: WireRecord, b: WireRecord): boolean {
  if (a.lamport !== b.lamport) return a.lamport > b.lamport;
  if (a.owner !== b.owner) return a.owner > b.owner;
  if (a.deleted !== b.deleted) return a.deleted;
  return Buffer.compare(a.valueBytes, b.valueBytes) > 0;
}

export class ReplicatedTable {
  private readonly spaces = new Map<string, Map<string, Stored>>();
  private readonly owners = new Map<string, Set<Stored>>();
  private readonly buckets = new BucketDigest();
  private readonly events: Emitter<TableEvents>;
  private clock: number;

  constructor(private readonly host: TableHost) {
    this.events = new Emitter(host.log);
    // Start the Lamport clock at wall-clock ms: a restarted node's writes beat its previous life's.
    this.clock = host.clock.now();
  }

  // ---------------------------------------------------------------------------- public API

  /** Writes (keyspace, key) = value, owned by this node; fires "change"; disseminated. */
  set(keyspace: string, key: string, value: TableValue): TableEntry {
    checkKey(keyspace, key);
    let valueBytes: Uint8Array;
    try {
      valueBytes = encodeValue(value);
    } catch (err) {
      throw invalid(`gossip table: value of ${keyspace}/${key} is not JSON-serialisable: ${String(err)}`);
    }
    if (valueBytes.length > this.host.maxValueBytes) {
      throw invalid(
        `gossip table: value of ${keyspace}/${key} is ${valueBytes.length} bytes, max ${this.host.maxValueBytes}`,
      );
    }
    const rec = { keyspace, key, owner: this.host.self, lamport: ++this.clock, deleted: false, valueBytes };
    return this.writeLocal({ ...rec, value: decodeValue(valueBytes) });
  }

  /** Tombstones (keyspace, key); returns false when there was no live entry. */
  delete(keyspace: string, key: string): boolean {
    const current = this.spaces.get(keyspace)?.get(key);
    if (!current || current.deleted) return false;
    const owner = this.host.self;
    const empty = new Uint8Array(0);
    this.writeLocal({
      keyspace,
      key,
      owner,
      lamport: ++this.clock,
      deleted: true,
      value: undefined,
      valueBytes: empty,
    });
    return true;
  }

  get(keyspace: string, key: string): TableEntry | undefined {
    const rec = this.spaces.get(keyspace)?.get(key);
    return rec ? this.view(rec) : undefined;
  }

  /** All entries of a keyspace, tombstones and hidden ones included (deleted: true), by key. */
  entries(keyspace: string): TableEntry[] {
    const space = this.spaces.get(keyspace);
    if (!space) return [];
    return [...space.values()]
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((r) => this.view(r));
  }

  keyspaces(): string[] {
    return [...this.spaces.keys()].sort();
  }

  /** Stored versions (tombstones included). */
  get size(): number {
    let n = 0;
    for (const space of this.spaces.values()) n += space.size;
    return n;
  }

  /** A short fingerprint of every stored version: equal on two nodes ⇔ same tables. */
  digest(): string {
    return this.buckets.summary();
  }

  on(event: "change", listener: TableEvents["change"]): this {
    this.events.on(event, listener);
    return this;
  }

  off(event: "change", listener: TableEvents["change"]): this {
    this.events.off(event, listener);
    return this;
  }

  // ---------------------------------------------------------------- used by the gossip node

  /** The current Lamport value (for tests and debugging). */
  get lamport(): number {
    return this.clock;
  }

  /**
   * Applies a version learned from a peer. Returns true when it was new here (worth passing on).
   */
  merge(rec: WireRecord): boolean {
    this.clock = Math.max(this.clock, rec.lamport);
    const current = this.spaces.get(rec.keyspace)?.get(rec.key);
    if (current && !supersedes(rec, current)) return false;
    if (current?.local && current.owner === this.host.self && rec.owner === this.host.self) {
      // Someone holds a version "by us" newer than what we wrote in this process: re-assert ours.
      const { bucket: _b, hash: _h, storedAt: _s, local: _l, ...mine } = current;
      this.writeLocal({ ...mine, lamport: ++this.clock });
      return false;
    }
    this.store(rec, false);
    return true;
  }

  /** Owner liveness changed: fire change events for its entries that appeared or vanished. */
  ownerChanged(owner: string, wasLive: boolean): void {
    const live = this.host.isOwnerLive(owner);
    if (live === wasLive) return;
    for (const rec of this.owners.get(owner) ?? []) {
      if (!rec.deleted)
        this.events.emit(
          "change",
          live ? this.view(rec) : { ...this.view(rec), deleted: true, value: undefined },
        );
    }
  }

  /** Drops every version owned by `owner` (the member was reaped; its entries were hidden). */
  purgeOwner(owner: string): void {
    for (const rec of [...(this.owners.get(owner) ?? [])]) this.remove(rec);
  }

  /** Reaps tombstones past their grace, and versions of owners nobody knows after the same grace. */
  reap(): number {
    const now = this.host.clock.now();
    const grace = this.host.tombstoneGraceMs;
    let reaped = 0;
    for (const [owner, recs] of this.owners) {
      const unknown = owner !== this.host.self && !this.host.isOwnerKnown(owner);
      for (const rec of [...recs]) {
        if ((rec.deleted || unknown) && now - rec.storedAt >= grace) {
          this.remove(rec);
          reaped++;
        }
      }
    }
    return reaped;
  }

  /** Concatenated bucket digests for push-pull. */
  bucketDigests(): Uint8Array {
    return this.buckets.bytes();
  }

  differingBuckets(remote: Uint8Array): Set<number> {
    return this.buckets.differing(remote);
  }

  /** Every stored version in the given buckets. */
  recordsIn(buckets: Set<number>): WireRecord[] {
    const out: WireRecord[] = [];
    if (buckets.size === 0) return out;
    for (const space of this.spaces.values()) {
      for (const rec of space.values()) if (buckets.has(rec.bucket)) out.push(wire(rec));
    }
    return out;
  }

  /** Live versions this node owns (re-announced after it was wrongly declared dead). */
  ownLive(): WireRecord[] {
    return [...(this.owners.get(this.host.self) ?? [])].filter((r) => !r.deleted).map(wire);
  }

  // ------------------------------------------------------------------------------- internals

  private writeLocal(rec: WireRecord): TableEntry {
    const stored = this.store(rec, true);
    this.host.broadcast(wire(stored));
    return this.view(stored);
  }

  private store(rec: WireRecord, local: boolean): Stored {
    let space = this.spaces.get(rec.keyspace);
    if (!space) {
      space = new Map();
      this.spaces.set(rec.keyspace, space);
    }
    const before = space.get(rec.key);
    const wasVisible = before !== undefined && this.visible(before);
    if (before) this.unindex(before);
    const stored: Stored = {
      ...wire(rec),
      bucket: bucketOf(rec.keyspace, rec.key),
      hash: recordHash(rec),
      storedAt: this.host.clock.now(),
      local,
    };
    space.set(rec.key, stored);
    this.index(stored);
    const nowVisible = this.visible(stored);
    if (nowVisible) this.events.emit("change", this.view(stored));
    else if (wasVisible)
      this.events.emit("change", { ...this.view(stored), deleted: true, value: undefined });
    return stored;
  }

  private remove(rec: Stored): void {
    const space = this.spaces.get(rec.keyspace);
    if (space?.get(rec.key) !== rec) return;
    const wasVisible = this.visible(rec);
    space.delete(rec.key);
    if (space.size === 0) this.spaces.delete(rec.keyspace);
    this.unindex(rec);
    if (wasVisible) this.events.emit("change", { ...this.view(rec), deleted: true, value: undefined });
  }

  private index(rec: Stored): void {
    let set = this.owners.get(rec.owner);
    if (!set) {
      set = new Set();
      this.owners.set(rec.owner, set);
    }
    set.add(rec);
    this.buckets.toggle(rec.bucket, rec.hash);
  }

  private unindex(rec: Stored): void {
    const set = this.owners.get(rec.owner);
    set?.delete(rec);
    if (set?.size === 0) this.owners.delete(rec.owner);
    this.buckets.toggle(rec.bucket, rec.hash);
  }

  private visible(rec: Stored): boolean {
    return !rec.deleted && this.host.isOwnerLive(rec.owner);
  }

  private view(rec: Stored): TableEntry {
    const deleted = !this.visible(rec);
    const { keyspace, key, owner, lamport } = rec;
    return { keyspace, key, value: deleted ? undefined : rec.value, owner, lamport, deleted };
  }
}

function wire(rec: WireRecord): WireRecord {
  const { keyspace, key, owner, lamport, deleted, value, valueBytes } = rec;
  return { keyspace, key, owner, lamport, deleted, value, valueBytes };
}

function checkKey(keyspace: string, key: string): void {
  const enc = new TextEncoder();
  for (const [what, s] of [
    ["keyspace", keyspace],
    ["key", key],
  ] as const) {
    if (typeof s !== "string" || s.length === 0 || enc.encode(s).length > LIMITS.key) {
      throw invalid(`gossip table: ${what} must be 1-${LIMITS.key} bytes of UTF-8`);
    }
  }
}
