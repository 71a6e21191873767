/**
 * IPv4/IPv6 addresses and CIDRs as bigints. Pure: no I/O, no module state.
 *
 * Parsing is strict (no octal-looking octets, no zone indexes, no bare numbers) because every
 * address we accept ends up in the kernel and in the store: ambiguity here would leak everywhere.
 * Formatting is canonical (dotted quad; RFC 5952 for IPv6) so that string equality of formatted
 * values means address equality, which the store relies on for its keys.
 */
import { invalid } from "../common/errors.js";
import type { Family } from "../store/records.js";

export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

export interface Cidr {
  readonly family: Family;
  /** the network address: host bits zeroed */
  readonly network: bigint;
  readonly prefixLen: number;
  /** the address as written, before host bits were zeroed (172.18.0.2 in "172.18.0.2/16") */
  readonly address: bigint;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

/** The largest address value of a family (255.255.255.255, ffff:...:ffff). */
export const maxAddress = (family: Family): bigint => (1n << BigInt(familyBits(family))) - 1n;

// ---------------------------------------------------------------------------------------------
// Parsing. The inner parsers return either a value or the reason (a string) it was rejected, so
// callers can wrap the reason in their own context ("invalid CIDR ..." vs "invalid IP address ...").

function parseV4(s: string): bigint | string {
  const parts = s.split(".");
  if (parts.length !== 4) return "expected 4 dot-separated octets";
  let value = 0n;
  for (const part of parts) {
    if (!/^[0-9]+$/.test(part)) return `octet "${part}" is not a decimal number`;
    if (part.length > 1 && part.startsWith("0")) return `octet "${part}" has a leading zero`;
    const n = Number(part);
    if (n > 255) return `octet ${part} is out of range 0-255`;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

/** Parses colon-separated groups (the part of an IPv6 address on one side of "::"). */
function parseV6Groups(s: string, allowV4Tail: boolean): number[] | string {
  if (s === "") return [];
  const groups: number[] = [];
  const parts = s.split(":");
  for (const [i, part] of parts.entries()) {
    if (allowV4Tail && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseV4(part);
      if (typeof v4 === "string") return `embedded IPv4 "${part}": ${v4}`;
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      continue;
    }
    if (part === "") return "empty group (a single ':' where '::' or a group was expected)";
    if (part.length > 4) return `group "${part}" has more than 4 hex digits`;
    if (!/^[0-9a-fA-F]+$/.test(part)) return `group "${part}" is not hexadecimal`;
    groups.push(Number.parseInt(part, 16));
  }
  return groups;
}

function parseV6(s: string): bigint | string {
  if (s.includes("%")) return "zone indexes (%...) are not supported";
  const halves = s.split("::");
  if (halves.length > 2) return 'more than one "::"';
  const compressed = halves.length === 2;
  const head = parseV6Groups(halves[0]!, !compressed);
  if (typeof head === "string") return head;
  const tail = compressed ? parseV6Groups(halves[1]!, true) : [];
  if (typeof tail === "string") return tail;
  const explicit = head.length + tail.length;
  if (compressed && explicit > 7) return '"::" must stand for at least one zero group';
  if (!compressed && explicit !== 8) return `expected 8 groups, found ${explicit}`;
  const groups = [...head, ...new Array<number>(8 - explicit).fill(0), ...tail];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

function addressOrReason(s: string): IpAddress | string {
  if (s.includes(":")) {
    const v = parseV6(s);
    return typeof v === "string" ? v : { family: 6, value: v };
  }
  if (s.includes(".")) {
    const v = parseV4(s);
    return typeof v === "string" ? v : { family: 4, value: v };
  }
  return "not an IPv4 or IPv6 address";
}

/**
 * Parses a bare IPv4 or IPv6 address; throws INVALID_ARGUMENT with the reason, naming the value
 * as `what` ("gateway" gives `invalid gateway "10.0.0.300": octet 300 is out of range 0-255`).
 */
export function parseAddress(s: string, what = "IP address"): IpAddress {
  const r = addressOrReason(s);
  if (typeof r === "string") throw invalid(`invalid ${what} "${s}": ${r}`);
  return r;
}

/** Like parseAddress but returns undefined instead of throwing. */
export function tryParseAddress(s: string): IpAddress | undefined {
  const r = addressOrReason(s);
  return typeof r === "string" ? undefined : r;
}

/** Parses "addr/len"; the network is normalised (10.1.2.3/16 → 10.1.0.0/16), the address kept. */
export function parseCidr(s: string): Cidr {
  const fail = (reason: string) => invalid(`invalid CIDR "${s}": ${reason}`);
  const slash = s.indexOf("/");
  if (slash < 0) throw fail('missing "/prefix length"');
  const addr = addressOrReason(s.slice(0, slash));
  if (typeof addr === "string") throw fail(addr);
  const lenText = s.slice(slash + 1);
  const bits = familyBits(addr.family);
  if (!/^[0-9]{1,3}$/.test(lenText)) throw fail(`prefix length "${lenText}" is not a number`);
  const prefixLen = Number(lenText);
  if (prefixLen > bits) throw fail(`prefix length must be 0-${bits}`);
  return {
    family: addr.family,
    network: addr.value & prefixMask(addr.family, prefixLen),
    prefixLen,
    address: addr.value,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting.

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((v >> shift) & 0xffn)).join(".");
}

/** The longest run of zero groups of length >= 2 (RFC 5952 §4.2.2-3: first one on a tie). */
function longestZeroRun(groups: number[]): { start: number; len: number } {
  let best = { start: -1, len: 0 };
  let start = -1;
  for (let i = 0; i <= groups.length; i++) {
    if (i < groups.length && groups[i] === 0) {
      if (start < 0) start = i;
      continue;
    }
    if (start >= 0 && i - start > best.len) best = { start, len: i - start };
    start = -1;
  }
  return best.len >= 2 ? best : { start: -1, len: 0 };
}

function formatV6(v: bigint): string {
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted quad.
  if (v >> 32n === 0xffffn) return "::ffff:" + formatV4(v & 0xffffffffn);
  const groups = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn));
  const run = longestZeroRun(groups);
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (run.len === 0) return hex(groups);
  return hex(groups.slice(0, run.start)) + "::" + hex(groups.slice(run.start + run.len));
}

/** Canonical text of an address value; throws RangeError for values outside the family. */
export function formatAddress(family: Family, value: bigint): string {
  if (value < 0n || value > maxAddress(family)) {
    throw new RangeError(`${value} is not an IPv${family} address value`);
  }
  return family === 4 ? formatV4(value) : formatV6(value);
}

export const formatIp = (ip: IpAddress): string => formatAddress(ip.family, ip.value);

/** Canonical "network/len" text. */
export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.network)}/${c.prefixLen}`;
}

/** "address/len" text keeping the host part, e.g. an interface address "172.18.0.2/16". */
export function formatInterfaceCidr(family: Family, address: bigint, prefixLen: number): string {
  return `${formatAddress(family, address)}/${prefixLen}`;
}

/** Normalises CIDR text: "10.1.2.3/16" → "10.1.0.0/16", "FD00:0::/8" → "fd00::/8". */
export const canonicalCidr = (s: string): string => formatCidr(parseCidr(s));

/** Normalises address text: "FD00:0:0::1" → "fd00::1". */
export const canonicalAddress = (s: string): string => formatIp(parseAddress(s));

/**
 * Fixed-width lower-case hex of an address (8 digits for IPv4, 32 for IPv6). Within one family,
 * string order of keys is numeric order of addresses, which lets the store index them as text.
 */
export function addressKey(ip: IpAddress): string {
  return ip.value.toString(16).padStart(familyBits(ip.family) / 4, "0");
}

// ---------------------------------------------------------------------------------------------
// Arithmetic.

export function prefixMask(family: Family, prefixLen: number): bigint {
  const hostBits = BigInt(familyBits(family) - prefixLen);
  return maxAddress(family) ^ ((1n << hostBits) - 1n);
}

/** Number of addresses in the CIDR, reserved ones included. */
export const cidrSize = (c: Cidr): bigint => 1n << BigInt(familyBits(c.family) - c.prefixLen);

/** The highest address in the CIDR (the IPv4 broadcast address). */
export const lastAddress = (c: Cidr): bigint => c.network + cidrSize(c) - 1n;

/** The n-th address of the CIDR counting from the network address (n = 0). */
export function nthAddress(c: Cidr, n: bigint): bigint {
  if (n < 0n || n >= cidrSize(c)) throw new RangeError(`offset ${n} is outside ${formatCidr(c)}`);
  return c.network + n;
}

const asCidr = (c: Cidr | string): Cidr => (typeof c === "string" ? parseCidr(c) : c);
const asIp = (ip: IpAddress | string): IpAddress => (typeof ip === "string" ? parseAddress(ip) : ip);

/** True when the address lies inside the CIDR (addresses of the other family never do). */
export function contains(cidr: Cidr | string, ip: IpAddress | string): boolean {
  const c = asCidr(cidr);
  const a = asIp(ip);
  return a.family === c.family && a.value >= c.network && a.value <= lastAddress(c);
}

/** True when every address of `inner` lies inside `outer`. */
export function containsCidr(outer: Cidr | string, inner: Cidr | string): boolean {
  const o = asCidr(outer);
  const i = asCidr(inner);
  return (
    o.family === i.family && o.prefixLen <= i.prefixLen && contains(o, { family: i.family, value: i.network })
  );
}

/** True when the two CIDRs share at least one address. CIDRs either nest or are disjoint. */
export function overlaps(a: Cidr | string, b: Cidr | string): boolean {
  const x = asCidr(a);
  const y = asCidr(b);
  return containsCidr(x, y) || containsCidr(y, x);
}
