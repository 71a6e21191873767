/**
 * Choosing a subnet when the user gave none.
 *
 * IPv4 follows Docker's default local address pools so trellis networks look like Docker ones:
 * 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16 in /20s (31 candidates), first fit.
 *
 * IPv6 has no shared default pool, so we pick a unique local /64 (RFC 4193): "fd" followed by the
 * first 56 bits of sha256(`${seed}#${attempt}`), for attempt = 0, 1, ... up to V6_ATTEMPTS.
 * Deterministic for a given seed (pass the network id) and set of used subnets, which keeps tests
 * and restarts reproducible, while different networks land far apart in fd00::/8.
 */
import { createHash } from "node:crypto";
import { exhausted } from "../common/errors.js";
import type { Family } from "../store/records.js";
import { type Cidr, formatAddress, formatCidr, overlaps, parseCidr } from "./cidr.js";

/** A subnet already in use, with how to name its holder in messages (e.g. `network "foo"`). */
export interface UsedSubnet {
  subnet: string;
  owner: string;
}

export interface PickSubnetOptions {
  family: Family;
  /** subnets of other networks (trellis's own pools and any others the caller knows about) */
  used: readonly UsedSubnet[];
  /** CIDRs of the host's routes; default routes (prefix length 0) are ignored */
  hostRoutes: readonly string[];
  /** IPv6 only: what the ULA prefix is derived from; pass the network id */
  seed?: string;
}

const V4_DESCRIPTION = "172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16 in /20s";
/** How many ULA /64s to try; 2^-56 collision odds per attempt make more pointless. */
const V6_ATTEMPTS = 64;
/** How many rejected candidates to explain in the exhaustion message. */
const EXPLAINED = 3;

export function defaultV4Candidates(): string[] {
  const out: string[] = [];
  for (let b = 17; b <= 31; b++) out.push(`172.${b}.0.0/16`);
  for (let c = 0; c < 256; c += 16) out.push(`192.168.${c}.0/20`);
  return out;
}

/** The n-th IPv6 candidate: fdXX:XXXX:XXXX:XXXX::/64 from the seed. */
export function ulaCandidate(seed: string, attempt: number): string {
  const digest = createHash("sha256").update(`${seed}#${attempt}`).digest();
  const bits56 = BigInt("0x" + digest.subarray(0, 7).toString("hex"));
  const network = ((0xfdn << 56n) | bits56) << 64n;
  return `${formatAddress(6, network)}/64`;
}

/** Host routes that make a candidate unusable; default routes never do. */
export function blockingRoutes(routes: readonly string[], family: Family): Cidr[] {
  return routes.map((r) => parseCidr(r)).filter((r) => r.family === family && r.prefixLen > 0);
}

/** A used subnet, parsed once. */
export interface ParsedUsed {
  cidr: Cidr;
  owner: string;
}

export function parseUsed(used: readonly UsedSubnet[]): ParsedUsed[] {
  return used.map((u) => ({ cidr: parseCidr(u.subnet), owner: u.owner }));
}

/** Why the candidate is unusable ("overlaps 10.1.0.0/16 of network \"foo\""), or undefined if free. */
export function conflictOf(
  candidate: Cidr,
  used: readonly ParsedUsed[],
  routes: readonly Cidr[],
): string | undefined {
  const holder = used.find((u) => overlaps(candidate, u.cidr));
  if (holder !== undefined) return `overlaps ${formatCidr(holder.cidr)} of ${holder.owner}`;
  const route = routes.find((r) => overlaps(candidate, r));
  return route === undefined ? undefined : `overlaps host route ${formatCidr(route)}`;
}

/** First candidate subnet (canonical CIDR text) overlapping no used subnet and no host route. */
export function pickFreeSubnet(opts: PickSubnetOptions): string {
  const routes = blockingRoutes(opts.hostRoutes, opts.family);
  const used = parseUsed(opts.used);
  const candidates =
    opts.family === 4
      ? defaultV4Candidates()
      : Array.from({ length: V6_ATTEMPTS }, (_, i) => ulaCandidate(opts.seed ?? "", i));
  const rejected: string[] = [];
  for (const text of candidates) {
    const candidate = parseCidr(text);
    const why = conflictOf(candidate, used, routes);
    if (why === undefined) return text;
    rejected.push(`${text} ${why}`);
  }
  const more = rejected.length > EXPLAINED ? `; and ${rejected.length - EXPLAINED} more` : "";
  const reasons = `(${rejected.slice(0, EXPLAINED).join("; ")}${more})`;
  const where =
    opts.family === 4
      ? `in the default pools (${V4_DESCRIPTION})`
      : `among ${V6_ATTEMPTS} ULA /64s derived from seed "${opts.seed ?? ""}"`;
  throw exhausted(
    `no free IPv${opts.family} subnet ${where}: all ${candidates.length} candidates overlap ` +
      `existing networks or host routes ${reasons}`,
  );
}
