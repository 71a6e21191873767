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

/**
 * A port published through the routing mesh: it answers on the node's own addresses (`fib daddr type
 * local`) and is DNATed to one of `backends`, local or on another host. The daemon decides per node
 * which backends a port gets (every healthy one for ingress mode, the local ones for host mode).
 */
export interface MeshPort {
  proto: Protocol;
  /** the published port */
  port: number;
  /** targets: backend addresses with the service's target port */
  backends: Backend[];
}

/**
 * Where connections that the routing mesh (or the host itself) sends to a backend on another host
 * get their source rewritten: `source` is this host's mesh address on the backend's network, so the
 * reply comes back through this host, which undoes the DNAT.
 */
export interface SnatEntry {
  /** the remote backend's address */
  backend: string;
  /** this host's address on that backend's network */
  source: string;
}

/** `client-ip`: one client address always lands on the same backend while the backend set is unchanged. */
export type Affinity = "none" | "client-ip";

export interface Service {
  /** Small non-negative integer, unique among services: the programmer's handle for the service. */
  id: number;
  name: string;
  /** Empty only for a service reachable through published ports alone (DNS round robin). */
  vips: Vip[];
  /** Zero backends is valid: the VIP then refuses connections instead of letting them time out. */
  backends: Backend[];
  /** Published ports, each with its own backends (may be empty). Zero backends refuse, as for VIPs. */
  mesh: MeshPort[];
  affinity: Affinity;
}

/**
 * Most healthy backends one service may have. The table holds a selection chain pair and a backend
 * map for each count in use (layout.ts), so this bounds the size of the ruleset, which never depends
 * on the number of services.
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
/** A published port's identity in the kernel: the key of its element in the mesh map. */
export const meshKey = (m: Pick<MeshPort, "proto" | "port">): string => `${m.proto} . ${m.port}`;
const backendKey = (b: Backend): string => `${b.ip}:${b.port}`;

const isProto = (p: string) => p === "tcp" || p === "udp";

/** Names the subject of an error; a function, so that valid input (nearly all of it) costs no text. */
type What = () => string;

function checkBackends(backends: readonly Backend[], what: What): void {
  if (backends.length > MAX_BACKENDS)
    throw invalid(`${what()}: ${backends.length} backends, at most ${MAX_BACKENDS} are supported`);
  for (const b of backends) {
    if (!IPV4.test(b.ip)) checkIpv4(b.ip, `${what()} backend`);
    if (!isPort(b.port)) throw invalid(`${what()}: backend port ${b.port} is not 1-65535`);
  }
  const twice = findDuplicate(backends);
  if (twice) throw invalid(`${what()}: backend ${backendKey(twice)} listed twice`);
}

/** A backend listed twice, if any. Pairwise for the usual handful (no Set, no key strings: the
 * validation of 10 000 services is part of every full load). */
function findDuplicate(backends: readonly Backend[]): Backend | undefined {
  if (backends.length <= 16) {
    for (let i = 1; i < backends.length; i++) {
      const b = backends[i]!;
      for (let j = 0; j < i; j++) if (backends[j]!.ip === b.ip && backends[j]!.port === b.port) return b;
    }
    return undefined;
  }
  const seen = new Set<string>();
  for (const b of backends) {
    if (seen.has(backendKey(b))) return b;
    seen.add(backendKey(b));
  }
  return undefined;
}

function checkMesh(mesh: readonly MeshPort[], what: What): void {
  for (let i = 0; i < mesh.length; i++) {
    const m = mesh[i]!;
    const where = () => `${what()} published port ${m.port}/${m.proto}`;
    if (!isPort(m.port)) throw invalid(`${what()}: published port ${m.port} is not 1-65535`);
    if (!isProto(m.proto)) throw invalid(`${what()}: published port protocol must be tcp or udp`);
    for (let j = 0; j < i; j++) {
      if (mesh[j]!.port === m.port && mesh[j]!.proto === m.proto)
        throw invalid(`${what()}: published port ${m.port}/${m.proto} listed twice`);
    }
    checkBackends(m.backends, where);
  }
}

/** Checks one service on its own; throws INVALID_ARGUMENT naming the service and the problem. */
export function validateService(s: Service): void {
  const what = () => `service ${JSON.stringify(s.name)} (id ${s.id})`;
  if (!Number.isSafeInteger(s.id) || s.id < 0) throw invalid(`${what()}: id must be a non-negative integer`);
  if (s.affinity !== "none" && s.affinity !== "client-ip")
    throw invalid(`${what()}: unknown affinity "${String(s.affinity)}"`);
  if (s.vips.length === 0 && s.mesh.length === 0)
    throw invalid(`${what()}: has no VIP and no published port`);
  for (let i = 0; i < s.vips.length; i++) {
    const v = s.vips[i]!;
    if (!IPV4.test(v.ip)) checkIpv4(v.ip, `${what()} VIP`);
    if (!isPort(v.port)) throw invalid(`${what()}: VIP port ${v.port} is not 1-65535`);
    if (!isProto(v.proto)) throw invalid(`${what()}: VIP protocol must be tcp or udp`);
    for (let j = 0; j < i; j++) {
      const o = s.vips[j]!;
      if (o.ip === v.ip && o.port === v.port && o.proto === v.proto)
        throw invalid(`${what()}: VIP ${v.ip}:${v.port}/${v.proto} listed twice`);
    }
  }
  checkBackends(s.backends, what);
  checkMesh(s.mesh, what);
}

/** Who owns each VIP (vipKey) and each published port (meshKey), by service id. */
export interface Owners {
  vips: Map<string, number>;
  mesh: Map<string, number>;
}

/**
 * validateServices(), returning the owners it had to find anyway (the programmer keeps them).
 * `valid(i)`: service i passed validateService() before and has not changed since (the programmer's
 * copy of it): only the checks between services are made for it.
 */
export function indexServices(services: readonly Service[], valid?: (i: number) => boolean): Owners {
  const names = new Map<number, string>();
  const owners: Owners = { vips: new Map(), mesh: new Map() };
  for (let i = 0; i < services.length; i++) {
    const s = services[i]!;
    if (!valid?.(i)) validateService(s);
    const other = names.get(s.id);
    if (other !== undefined) throw invalid(`services ${other} and ${s.name} both have id ${s.id}`);
    names.set(s.id, s.name);
    for (const v of s.vips) {
      const key = vipKey(v);
      const owner = owners.vips.get(key);
      if (owner !== undefined)
        throw invalid(`services ${names.get(owner)} and ${s.name} both claim ${v.ip}:${v.port}/${v.proto}`);
      owners.vips.set(key, s.id);
    }
    for (const m of s.mesh) {
      const key = meshKey(m);
      const owner = owners.mesh.get(key);
      if (owner !== undefined)
        throw invalid(`services ${names.get(owner)} and ${s.name} both publish ${m.port}/${m.proto}`);
      owners.mesh.set(key, s.id);
    }
  }
  return owners;
}

/** Checks every service and that no two share an id, a VIP (address, port and protocol) or a
 * published port (port and protocol). */
export function validateServices(services: readonly Service[]): void {
  indexServices(services);
}

/** Checks SNAT entries: IPv4 addresses, each backend once (one source per backend). */
export function validateSnat(entries: readonly SnatEntry[]): void {
  const seen = new Set<string>();
  for (const e of entries) {
    checkIpv4(e.backend, "mesh SNAT backend");
    checkIpv4(e.source, `mesh SNAT source for ${e.backend}`);
    if (seen.has(e.backend)) throw invalid(`mesh SNAT: backend ${e.backend} listed twice`);
    seen.add(e.backend);
  }
}

/**
 * Backends in slot order: sorted by address then port, so the layout depends only on the set of
 * backends (the same on every node, whatever order membership arrived in) and `client-ip` affinity
 * picks the same backend for a client on every node.
 */
export function slotOrder(backends: readonly Backend[]): readonly Backend[] {
  if (inSlotOrder(backends)) return backends;
  const keyed = backends.map((b) => ({ b, n: ipv4Number(b.ip) }));
  keyed.sort((x, y) => x.n - y.n || x.b.port - y.b.port);
  return keyed.map((x) => x.b);
}

/** Whether the backends are in slot order already (a daemon that sorts them, a bench): then the full
 * render of 50 000 backends need not copy and sort them. */
function inSlotOrder(backends: readonly Backend[]): boolean {
  for (let i = 1; i < backends.length; i++) {
    const a = backends[i - 1]!;
    const b = backends[i]!;
    const d = ipv4Number(a.ip) - ipv4Number(b.ip);
    if (d > 0 || (d === 0 && a.port > b.port)) return false;
  }
  return true;
}

/** A dotted quad as a number, by hand: the full render sorts 50 000 backends, and split/Number
 * was a fifth of its time. Expects a canonical address (checkIpv4). */
function ipv4Number(ip: string): number {
  let acc = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      acc = acc * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return acc * 256 + octet;
}
