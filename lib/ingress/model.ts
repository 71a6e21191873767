/**
 * A service as the VIP load balancer sees it: plain data, already resolved to addresses. Who the
 * backends are, which of them are healthy and which networks carry the VIPs is decided elsewhere
 * (the daemon, from gossip); this module only turns that into nftables state.
 */
import { invalid } from "../common/errors.js";
import type { Protocol } from "../store/records.js";

/** One address:port a service answers on. A service has one per network and published port. */
export interface Vip {
  /** IPv4 address in canonical dotted form. */
  ip: string;
  port: number;
  proto: Protocol;
}

/** A healthy task of the service; only healthy ones are given to the renderer. */
export interface Backend {
  /** IPv4 address in canonical dotted form. */
  ip: string;
  port: number;
}

/** `client-ip`: one client address always lands on the same backend while the backend set is unchanged. */
export type Affinity = "none" | "client-ip";

export interface Service {
  /** Small non-negative integer, unique among services: the programmer's handle for the service. */
  id: number;
  name: string;
  vips: Vip[];
  /** Zero backends is valid: the VIP then refuses connections instead of letting them time out. */
  backends: Backend[];
  affinity: Affinity;
}

/**
 * Most healthy backends one service may have. The table holds one selection chain pair and one
 * backend map per possible count, so this bounds the (constant) size of the ruleset; raising it
 * makes every change transaction a little slower (nft reads the table's object list first).
 */
export const MAX_BACKENDS = 128;

const isPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;

/** Dotted quad, each octet 0-255 without leading zeros: the canonical form, so keys compare as text.
 * A regular expression rather than the IPAM parser: validating 10 000 services must stay cheap. */
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function checkIpv4(ip: string, what: string): void {
  if (!IPV4.test(ip)) throw invalid(`${what}: "${ip}" is not an IPv4 address in dotted-quad form`);
}

/** A VIP's identity in the kernel: the key of its element in the services map. */
export const vipKey = (v: Vip): string => `${v.ip} . ${v.proto} . ${v.port}`;
const backendKey = (b: Backend): string => `${b.ip}:${b.port}`;

/** Checks one service on its own; throws INVALID_ARGUMENT naming the service and the problem. */
export function validateService(s: Service): void {
  const what = `service ${JSON.stringify(s.name)} (id ${s.id})`;
  if (!Number.isSafeInteger(s.id) || s.id < 0) throw invalid(`${what}: id must be a non-negative integer`);
  if (s.affinity !== "none" && s.affinity !== "client-ip")
    throw invalid(`${what}: unknown affinity "${String(s.affinity)}"`);
  if (s.vips.length === 0) throw invalid(`${what}: has no VIP`);
  const vips = new Set<string>();
  for (const v of s.vips) {
    checkIpv4(v.ip, `${what} VIP`);
    if (!isPort(v.port)) throw invalid(`${what}: VIP port ${v.port} is not 1-65535`);
    if (v.proto !== "tcp" && v.proto !== "udp") throw invalid(`${what}: VIP protocol must be tcp or udp`);
    if (vips.has(vipKey(v))) throw invalid(`${what}: VIP ${v.ip}:${v.port}/${v.proto} listed twice`);
    vips.add(vipKey(v));
  }
  if (s.backends.length > MAX_BACKENDS)
    throw invalid(`${what}: ${s.backends.length} backends, at most ${MAX_BACKENDS} are supported`);
  const backends = new Set<string>();
  for (const b of s.backends) {
    checkIpv4(b.ip, `${what} backend`);
    if (!isPort(b.port)) throw invalid(`${what}: backend port ${b.port} is not 1-65535`);
    if (backends.has(backendKey(b))) throw invalid(`${what}: backend ${backendKey(b)} listed twice`);
    backends.add(backendKey(b));
  }
}

/** Checks every service and that no two share an id or a VIP (address, port and protocol). */
export function validateServices(services: readonly Service[]): void {
  const ids = new Map<number, string>();
  const vips = new Map<string, string>();
  for (const s of services) {
    validateService(s);
    const other = ids.get(s.id);
    if (other !== undefined) throw invalid(`services ${other} and ${s.name} both have id ${s.id}`);
    ids.set(s.id, s.name);
    for (const v of s.vips) {
      const owner = vips.get(vipKey(v));
      if (owner !== undefined)
        throw invalid(`services ${owner} and ${s.name} both claim ${v.ip}:${v.port}/${v.proto}`);
      vips.set(vipKey(v), s.name);
    }
  }
}

/**
 * Backends in slot order: sorted by address then port, so the layout depends only on the set of
 * backends (the same on every node, whatever order membership arrived in) and `client-ip` affinity
 * picks the same backend for a client on every node.
 */
export function slotOrder(backends: readonly Backend[]): Backend[] {
  const num = (ip: string) => ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return backends
    .map((b) => ({ b, n: num(b.ip) }))
    .sort((x, y) => x.n - y.n || x.b.port - y.b.port)
    .map((x) => x.b);
}
