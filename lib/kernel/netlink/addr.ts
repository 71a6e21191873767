/**
 * Text <-> wire forms of IP and MAC addresses for netlink attributes (network byte order).
 * Pure; invalid input throws TrellisError INVALID_ARGUMENT naming the offending text.
 */
import { isIPv4, isIPv6 } from "node:net";
import { invalid } from "../../common/errors.js";

export interface IpBytes {
  family: 4 | 6;
  bytes: Buffer;
}

export function parseIp(text: string): IpBytes {
  if (isIPv4(text)) return { family: 4, bytes: Buffer.from(text.split(".").map(Number)) };
  if (isIPv6(text) && !text.includes("%")) return { family: 6, bytes: parseIpv6(text) };
  throw invalid(`invalid IP address: ${text}`);
}

/** Expands "::" and a trailing dotted IPv4 part; the text was already validated by isIPv6. */
function parseIpv6(text: string): Buffer {
  let groups: string[];
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = tail.split(".").map(Number);
    const hi = (((v4[0] ?? 0) << 8) | (v4[1] ?? 0)).toString(16);
    const lo = (((v4[2] ?? 0) << 8) | (v4[3] ?? 0)).toString(16);
    text = `${text.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = text.split("::");
  if (halves.length === 2) {
    const head = halves[0] ? halves[0].split(":") : [];
    const rest = halves[1] ? halves[1].split(":") : [];
    groups = [...head, ...Array<string>(8 - head.length - rest.length).fill("0"), ...rest];
  } else {
    groups = text.split(":");
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

/** Formats 4 or 16 bytes; IPv6 in the RFC 5952 canonical form (what iproute2 prints). */
export function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length !== 16) throw invalid(`IP address of ${bytes.length} bytes`);
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // The longest run of two or more zero groups (first one on a tie) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export interface Cidr extends IpBytes {
  prefixLen: number;
}

/** "10.0.0.0/24" or "fd00::/64"; a bare address is a host prefix (/32, /128). */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = ip.family === 4 ? 32 : 128;
  if (slash < 0) return { ...ip, prefixLen: max };
  const lenText = text.slice(slash + 1);
  const prefixLen = Number(lenText);
  if (!/^\d{1,3}$/.test(lenText) || prefixLen > max) throw invalid(`invalid prefix length in ${text}`);
  return { ...ip, prefixLen };
}

/** True when no bit beyond the prefix is set (a network address, as routes require). */
export function isNetworkAddress(bytes: Buffer, prefixLen: number): boolean {
  for (let bit = prefixLen; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3] ?? 0) & (0x80 >> (bit & 7))) return false;
  }
  return true;
}

export function parseMac(text: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw invalid(`invalid MAC address: ${text}`);
  return Buffer.from(text.replaceAll(":", ""), "hex");
}

/** Lower-case, colon-separated, as LinkInfo.mac promises. */
export function formatMac(bytes: Buffer): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}
