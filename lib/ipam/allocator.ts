/**
 * Address selection inside one pool. Pure: the caller supplies the pool and a way to walk the
 * taken addresses in ascending order; nothing here reads or writes the store.
 *
 * Strategy (as CNI host-local): round robin. The search starts just after the pool's cursor (the
 * last address handed out) and wraps around, so an address released a moment ago is the last to
 * be handed out again. That keeps stale ARP/neighbour entries and crash-looping containers from
 * inheriting each other's traffic.
 *
 * Cost: never proportional to the pool size (a /8 or an IPv6 /64 is fine), only to the length of
 * the run of taken addresses right after the cursor, which is bounded by the allocation count.
 */

import type { PoolRecord } from "../store/records.js";
import { type Cidr, familyBits, formatCidr, lastAddress, parseCidr } from "./cidr.js";

/** Yields the taken addresses >= from, ascending, without duplicates (may be lazy and paged). */
export type TakenFrom = (from: bigint) => Iterable<bigint>;

/** The address arithmetic of one pool, derived from its record. */
export interface PoolGeometry {
  subnet: Cidr;
  /** ipRange, or the subnet when the pool has none */
  range: Cidr;
  /** lowest/highest address of the subnet that may ever be assigned */
  firstUsable: bigint;
  lastUsable: bigint;
  /** lowest/highest address handed out dynamically: the usable part of the range */
  dynFirst: bigint;
  dynLast: bigint;
}

/**
 * Which subnet addresses are never assigned. IPv4: the network and broadcast addresses, except
 * in /31 (RFC 3021 point-to-point) and /32. IPv6 has no broadcast; its first address is the
 * subnet-router anycast address (RFC 4291 §2.6.1), also kept out except in /127 and /128.
 */
export function usableBounds(subnet: Cidr): { first: bigint; last: bigint } {
  const hostBits = familyBits(subnet.family) - subnet.prefixLen;
  const last = lastAddress(subnet);
  if (hostBits <= 1) return { first: subnet.network, last };
  return { first: subnet.network + 1n, last: subnet.family === 4 ? last - 1n : last };
}

// Math.min/max do not take bigints.
const bigMax = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const bigMin = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export function geometryOf(pool: Pick<PoolRecord, "subnet" | "ipRange">): PoolGeometry {
  const subnet = parseCidr(pool.subnet);
  const range = pool.ipRange === undefined ? subnet : parseCidr(pool.ipRange);
  const { first, last } = usableBounds(subnet);
  const dynFirst = bigMax(range.network, first);
  const dynLast = bigMin(lastAddress(range), last);
  return { subnet, range, firstUsable: first, lastUsable: last, dynFirst, dynLast };
}

/** How many addresses the dynamic range holds (0 if it holds only reserved ones). */
export function dynamicCount(g: PoolGeometry): bigint {
  return g.dynLast >= g.dynFirst ? g.dynLast - g.dynFirst + 1n : 0n;
}

/** "10.1.0.0/24" or "10.1.0.0/24 (range 10.1.0.128/25)", for messages. */
export function describeGeometry(g: PoolGeometry): string {
  const subnet = formatCidr(g.subnet);
  return g.range.prefixLen === g.subnet.prefixLen ? subnet : `${subnet} (range ${formatCidr(g.range)})`;
}

/** The first address in [from, to] that is not taken, or undefined. */
function firstGap(from: bigint, to: bigint, takenFrom: TakenFrom): bigint | undefined {
  let candidate = from;
  for (const t of takenFrom(from)) {
    // Sorted input: the first taken address beyond the candidate proves the candidate free.
    if (t > candidate || t > to) break;
    if (t === candidate) candidate++;
  }
  return candidate <= to ? candidate : undefined;
}

/**
 * The next free dynamic address after `cursor` (an absolute address value), wrapping around the
 * dynamic range once; undefined when every address in it is taken.
 */
export function nextFree(g: PoolGeometry, cursor: bigint, takenFrom: TakenFrom): bigint | undefined {
  if (g.dynLast < g.dynFirst) return undefined;
  const start = cursor >= g.dynFirst && cursor < g.dynLast ? cursor + 1n : g.dynFirst;
  const found = firstGap(start, g.dynLast, takenFrom);
  if (found !== undefined || start === g.dynFirst) return found;
  return firstGap(g.dynFirst, start - 1n, takenFrom);
}

/** Absolute address the cursor of a pool record points at (records keep it as subnet offset). */
export function cursorAddress(pool: Pick<PoolRecord, "cursor">, g: PoolGeometry): bigint {
  return g.subnet.network + BigInt(pool.cursor);
}

/** The record form of a cursor: offset from the network address, as decimal text. */
export function cursorOffset(address: bigint, g: PoolGeometry): string {
  return String(address - g.subnet.network);
}

/** Initial cursor: just before the dynamic range, so the first address handed out is its first. */
export function initialCursor(g: PoolGeometry): string {
  return cursorOffset(g.dynFirst - 1n, g);
}

/** A TakenFrom over an in-memory ascending array (binary search, then a linear walk). */
export function sortedTaken(sorted: readonly bigint[]): TakenFrom {
  return function* (from: bigint) {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! < from) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < sorted.length; i++) yield sorted[i]!;
  };
}
