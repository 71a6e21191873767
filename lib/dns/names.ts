/**
 * DNS names as trellis compares them: case-insensitive, without the trailing dot, and the reverse
 * names (in-addr.arpa, ip6.arpa) of IPv4/IPv6 addresses. Pure functions.
 */
import { formatAddress, type IpAddress, tryParseAddress } from "../ipam/cidr.js";

/** The lookup form of a name: lower case (ASCII only, as DNS compares), no trailing dot. */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** True for a name of one label ("web"), the names trellis answers for even when unknown. */
export function isSingleLabel(lname: string): boolean {
  return lname !== "" && !lname.includes(".");
}

/**
 * The name with one of the search domains removed from its end, or undefined when none matches.
 * "web.corp.example" with search ["corp.example"] → "web". Domains are given normalised.
 */
export function stripSearchDomain(lname: string, search: readonly string[]): string | undefined {
  for (const domain of search) {
    if (domain === "" || lname.length <= domain.length + 1) continue;
    if (lname.endsWith(domain) && lname[lname.length - domain.length - 1] === ".") {
      return lname.slice(0, lname.length - domain.length - 1);
    }
  }
  return undefined;
}

const V4_SUFFIX = ".in-addr.arpa";
const V6_SUFFIX = ".ip6.arpa";

/** The address a complete reverse name stands for ("4.3.2.1.in-addr.arpa" → 1.2.3.4); partial
 * names (a zone such as "10.in-addr.arpa") and anything malformed give undefined. */
export function addressOfReverseName(lname: string): IpAddress | undefined {
  if (lname.endsWith(V4_SUFFIX)) {
    const labels = lname.slice(0, -V4_SUFFIX.length).split(".");
    if (labels.length !== 4 || !labels.every((l) => /^(0|[1-9][0-9]{0,2})$/.test(l))) return undefined;
    return tryParseAddress(labels.reverse().join("."));
  }
  if (lname.endsWith(V6_SUFFIX)) {
    const nibbles = lname.slice(0, -V6_SUFFIX.length).split(".");
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return undefined;
    return { family: 6, value: BigInt(`0x${nibbles.reverse().join("")}`) };
  }
  return undefined;
}

/** True when the name lies under in-addr.arpa or ip6.arpa (complete or not). */
export function isReverseName(lname: string): boolean {
  return (
    lname.endsWith(V4_SUFFIX) || lname.endsWith(V6_SUFFIX) || lname === "in-addr.arpa" || lname === "ip6.arpa"
  );
}

/** The reverse name of an address (no trailing dot). */
export function reverseNameOf(ip: IpAddress): string {
  if (ip.family === 4) return `${formatAddress(4, ip.value).split(".").reverse().join(".")}${V4_SUFFIX}`;
  const hex = ip.value.toString(16).padStart(32, "0");
  return `${[...hex].reverse().join(".")}${V6_SUFFIX}`;
}
