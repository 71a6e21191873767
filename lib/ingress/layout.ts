/**
 * The nftables layout of the service data plane, as names and map elements. The rule set is fixed
 * (it depends on MAX_BACKENDS, never on the number of services); services live only in map
 * elements, so adding one is an element insert and the per-packet cost is a few hash lookups:
 *
 *   prerouting:   ip daddr . meta l4proto . th dport vmap @services                 (VIPs)
 *                 fib daddr type local, not a VIP: meta l4proto . th dport vmap @mesh (routing mesh)
 *   output:       the same for connections the host opens (mesh: not to loopback), and a connection
 *                 to a VIP gets MESH_MARK so the SNAT below applies to it
 *   @services:    VIP . proto . port → jump lb_N | jump aff_N | jump refuse     (N = backend count)
 *   chain lb_N:   dnat to VIP . proto . port . (numgen random mod N) map @be_N
 *   chain aff_N:  dnat to VIP . proto . port . (jhash ip saddr mod N) map @be_N
 *   @be_N:        VIP . proto . port . slot → backend . port,   slot 0..N-1
 *   @mesh:        proto . published port → jump mlb_N | jump maff_N | jump refuse
 *   chain mlb_N:  ct mark |= MESH_MARK, dnat to proto . port . (numgen random mod N) map @mbe_N
 *   chain maff_N: the same with jhash ip saddr
 *   @mbe_N:       proto . port . slot → backend . target port
 *   input:        new TCP/UDP connections to @vips (every VIP address) that no VIP element took → refuse
 *   postrouting:  marked connections to a backend in @mesh_snat: snat to @mesh_snat[backend]
 *
 * Why a chain pair and a map per backend count: numgen's modulus is a constant in the rule, so the
 * count has to be chosen by a verdict; with exactly N slots for N backends every backend gets 1/N of
 * the new connections. One map per count (rather than one map for all) keeps each map bound by two
 * rules only: the kernel checks every element of a data map against every rule that uses the map,
 * and with one shared map (256 users) loading 10 000 services took 1.8 s instead of 0.5 s here. The
 * mesh has its own maps and chains for the same reason, and because its key has no address.
 *
 * What the data plane does, and what it relies on:
 * - nat chains see only a connection's first packet; conntrack keeps the chosen backend for the
 *   rest, so a backend removed from @be_N drains (no new connections, established ones go on);
 * - no backends: `refuse` answers at once, TCP with a reset, UDP with ICMP port unreachable (the
 *   kernel rate-limits ICMP errors per client: icmp_ratelimit, a burst of 6 then 1/s);
 * - a client and its backend on the same bridge: the reply is bridged, not routed, and only
 *   br_netfilter (bridge-nf-call-iptables=1, the default in a new namespace) lets conntrack give it
 *   the VIP as source again; the backend sees the client's own address. The bridge firewall must
 *   not `notrack` such flows (lib/bridge/firewall.ts exempts VIPs and backends);
 * - VIPs are local addresses (a /32 on each bridge, so containers ARP them to the host): the input
 *   chain keeps the host's own services from answering on them; ICMP to a VIP is answered;
 * - the mesh keeps the client's address for a local backend (its default route is this host); a
 *   backend on another host would answer the client directly, so those connections, and those the
 *   host opens to a VIP (their source would be the gateway address every host shares), are SNATed to
 *   this host's mesh address on the backend's network. The SNAT chain runs just before srcnat, so it
 *   wins over the bridge firewall's masquerade for the same connection;
 * - IPv4 only (`table ip`).
 */
import { type Affinity, type Backend, meshKey, type Service, slotOrder, vipKey } from "./model.js";

export const FAMILY = "ip";
export const TABLE_NAME = "trellis_svc";
export const TABLE = `${FAMILY} ${TABLE_NAME}`;
export const SERVICES_MAP = "services";
export const MESH_MAP = "mesh";
export const VIPS_SET = "vips";
export const SNAT_MAP = "mesh_snat";
export const REFUSE_CHAIN = "refuse";
/** The jhash seed of `client-ip` affinity: a constant, so every node maps a client to the same slot. */
export const AFFINITY_SEED = 0x74726c73;
/**
 * The conntrack mark bit of connections that may need the mesh SNAT. Only this bit is set and tested
 * (`ct mark | bit`, `ct mark & bit`), so other users' bits survive. Bit 24 is clear of the marks in
 * common use: kube-proxy 0x4000/0x8000, Docker swarm's per-service fwmarks (counters from 0x100),
 * Cilium 0x0f00, Weave 0x20000/0x40000, Tailscale 0xff0000, wg-quick 0xca6c. (Calico's default mask
 * 0xffff0000 and Cilium's identity bits do cover it: those are not expected next to trellis.)
 */
export const MESH_MARK = 0x01000000;

export const backendMap = (count: number): string => `be_${count}`;
export const randomChain = (count: number): string => `lb_${count}`;
export const affinityChain = (count: number): string => `aff_${count}`;
export const meshBackendMap = (count: number): string => `mbe_${count}`;
export const meshRandomChain = (count: number): string => `mlb_${count}`;
export const meshAffinityChain = (count: number): string => `maff_${count}`;

/** One element of one of the table's maps. `key` identifies it; `value` is what it maps to. */
export interface Element {
  map: string;
  key: string;
  value: string;
}

/** The chain a VIP jumps to: it encodes the backend count and the selection mode. */
export function verdictChain(s: { backends: readonly Backend[]; affinity: Affinity }): string {
  const n = s.backends.length;
  if (n === 0) return REFUSE_CHAIN;
  return s.affinity === "client-ip" ? affinityChain(n) : randomChain(n);
}

/** The chain a published port jumps to. */
export function meshVerdictChain(backends: readonly Backend[], affinity: Affinity): string {
  const n = backends.length;
  if (n === 0) return REFUSE_CHAIN;
  return affinity === "client-ip" ? meshAffinityChain(n) : meshRandomChain(n);
}

type Visit = (map: string, key: string, value: string) => void;

const targetsOf = (backends: readonly Backend[]) => slotOrder(backends).map((b) => `${b.ip} . ${b.port}`);

/**
 * Calls `visit` for every map element a service owns: one verdict per VIP and per published port,
 * and N backend slots for each. A visitor rather than a list: the full render of 10 000 services
 * should not allocate 60 000 objects it throws away at once.
 */
export function visitElements(s: Service, visit: Visit): void {
  if (s.vips.length > 0) {
    const verdict = `jump ${verdictChain(s)}`;
    const targets = targetsOf(s.backends);
    const map = backendMap(targets.length);
    for (const vip of s.vips) {
      const key = vipKey(vip);
      visit(SERVICES_MAP, key, verdict);
      for (let slot = 0; slot < targets.length; slot++) visit(map, `${key} . ${slot}`, targets[slot]!);
    }
  }
  for (const m of s.mesh) {
    const key = meshKey(m);
    visit(MESH_MAP, key, `jump ${meshVerdictChain(m.backends, s.affinity)}`);
    const targets = targetsOf(m.backends);
    const map = meshBackendMap(targets.length);
    for (let slot = 0; slot < targets.length; slot++) visit(map, `${key} . ${slot}`, targets[slot]!);
  }
}

export function elementsOf(s: Service): Element[] {
  const out: Element[] = [];
  visitElements(s, (map, key, value) => out.push({ map, key, value }));
  return out;
}

/** The VIP addresses of a service (each once): its elements of @vips, shared with any other service
 * on the same address. */
export const vipAddresses = (s: Service): string[] => [...new Set(s.vips.map((v) => v.ip))];

/** Identity of an element across maps, for diffs. */
export const elementId = (e: Pick<Element, "map" | "key">): string => `${e.map}\u0000${e.key}`;
