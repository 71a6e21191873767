/**
 * Just enough IP arithmetic for the CLI to check its own flags (syntax, family, which subnet a
 * gateway belongs to). Canonicalisation and policy (host bits, reserved ranges) stay with the
 * daemon; the CLI sends values as the user typed them.
 *
 * Parsers throw a plain Error whose message is the reason; callers prefix the flag and value.
 */

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

export interface Cidr {
  family: Family;
  /** the network address: the given address with host bits cleared */
  base: bigint;
  prefix: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

// Leading zeros are rejected: some tools read them as octal, so "010.0.0.1" is ambiguous.
const OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEXTET = /^[0-9a-fA-F]{1,4}$/;

export function parseIPv4(text: string): bigint {
  const parts = text.split(".");
  if (parts.length !== 4) throw new Error("not an IPv4 address");
  let value = 0n;
  for (const part of parts) {
    if (!OCTET.test(part) || Number(part) > 255) throw new Error("not an IPv4 address");
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

/** Hextets of one side of `::`; an embedded dotted IPv4 tail counts as two. */
function hextets(side: string, allowV4Tail: boolean): bigint[] {
  if (side === "") return [];
  const parts = side.split(":");
  const out: bigint[] = [];
  for (const [i, part] of parts.entries()) {
    if (allowV4Tail && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIPv4(part);
      out.push(v4 >> 16n, v4 & 0xffffn);
    } else if (HEXTET.test(part)) out.push(BigInt(`0x${part}`));
    else throw new Error("not an IPv6 address");
  }
  return out;
}

export function parseIPv6(text: string): bigint {
  if (text.includes("%")) throw new Error("zone indexes are not supported");
  const halves = text.split("::");
  if (halves.length > 2) throw new Error("not an IPv6 address");
  const compressed = halves.length === 2;
  const head = hextets(halves[0]!, !compressed);
  const tail = compressed ? hextets(halves[1]!, true) : [];
  const given = head.length + tail.length;
  if (compressed ? given > 7 : given !== 8) throw new Error("not an IPv6 address");
  const groups = [...head, ...new Array<bigint>(8 - given).fill(0n), ...tail];
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

export function parseIp(text: string): Ip {
  if (text.includes(":")) return { family: 6, value: parseIPv6(text) };
  try {
    return { family: 4, value: parseIPv4(text) };
  } catch {
    throw new Error("not an IP address");
  }
}

export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash === -1) throw new Error("expected ADDRESS/PREFIX");
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  const max = BITS[ip.family];
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
    throw new Error(`prefix length must be between 0 and ${max}`);
  }
  const prefix = Number(prefixText);
  const hostBits = BigInt(max - prefix);
  return { family: ip.family, base: (ip.value >> hostBits) << hostBits, prefix };
}

export function cidrContainsIp(cidr: Cidr, ip: Ip): boolean {
  if (cidr.family !== ip.family) return false;
  const hostBits = BigInt(BITS[cidr.family] - cidr.prefix);
  return ip.value >> hostBits === cidr.base >> hostBits;
}

/** True when every address of `inner` is inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContainsIp(outer, { family: inner.family, value: inner.base });
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrWithin(a, b) || cidrWithin(b, a);
}
