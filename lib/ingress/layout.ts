/**
 * The nftables layout of the service data plane, as names and map elements. Services live only in
 * map elements, so adding one is an element insert and the per-packet cost is a few hash lookups; the
 * rules depend only on which "selection groups" are in use (one per VIPs or mesh, protocol, backend
 * count and whether the backends keep the port: at most 2 × 2 × 2 × MAX_BACKENDS), never on the
 * number of services:
 *
 *   prerouting:   ip daddr . meta l4proto . th dport vmap @services                 (VIPs)
 *                 fib daddr type local, not a VIP: meta l4proto . th dport vmap @mesh (routing mesh)
 *   output:       the same for connections the host opens (mesh: not to loopback), and a connection
 *                 to a VIP gets MESH_MARK so the SNAT below applies to it
 *   @services:    VIP . proto . port → jump lb_P_N | jump aff_P_N | jump refuse  (P proto, N backends)
 *   chain lb_P_N: meta l4proto P dnat to VIP . port . (numgen random mod N) map @be_P_N
 *   chain aff_P_N: the same with (jhash ip saddr mod N)
 *   @be_P_N:      VIP . port . slot → backend . port,   slot 0..N-1
 *   lba_P_N, affa_P_N, @bea_P_N: the same for backends on the VIP's own port (always so for the
 *                 daemon's units): @bea_P_N maps to the backend address alone, dnat keeps the port
 *   @mesh:        proto . published port → jump mlb_P_N | jump maff_P_N | jump refuse
 *   chain mlb_P_N: ct mark |= MESH_MARK, dnat to port . (numgen random mod N) map @mbe_P_N
 *   chain maff_P_N: the same with jhash ip saddr
 *   @mbe_P_N:     published port . slot → backend . target port  (mbea_P_N: backend, port kept)
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
 * Why per protocol, and address-only maps: nft's parser costs about the same per token whatever the
 * token is, and a full load is mostly parsing (10 000 services × 5 backends: 50 000 slot elements).
 * The verdict already knows the protocol, so the backend maps' keys leave it out: two tokens fewer
 * per slot took `nft -f` of that table from 535 to 485 ms here. Backends on the port the client asked
 * for need no port in the value: two tokens fewer again, 440 → 375 ms.
 *
 * Why only the groups in use: a full render writes the map and chains of the counts that some service
 * has, and a change that needs a group the table lacks creates it in its own transaction, before its
 * elements (renderChange). A group nobody uses any more stays until the next full render: harmless,
 * and removing it would cost every change a check. Writing every possible group into every table (as
 * this layout once did, 512 chains and 256 maps) cost 20-30 ms of each full load.
 *
 * What the data plane does, and what it relies on:
 * - nat chains see only a connection's first packet; conntrack keeps the chosen backend for the
 *   rest, so a backend removed from @be_P_N drains (no new connections, established ones go on);
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
import type { Protocol } from "../store/records.js";
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

export interface SelectionGroup {
  /** Published ports (@mesh) rather than VIPs (@services). */
  mesh: boolean;
  proto: Protocol;
  /** Backends, 1..MAX_BACKENDS. */
  count: number;
  /** Every backend listens on the port the client asked for: the map holds addresses only. */
  samePort: boolean;
}

const groupName = (base: string, g: SelectionGroup) =>
  `${g.mesh ? "m" : ""}${base}${g.samePort ? "a" : ""}_${g.proto}_${g.count}`;
/** A group's backend map; its name also identifies the group (what the programmer remembers). */
export const groupMap = (g: SelectionGroup): string => groupName("be", g);
/** The chain that picks a slot at random. */
export const randomChain = (g: SelectionGroup): string => groupName("lb", g);
/** The chain that picks a slot by the client's address. */
export const affinityChain = (g: SelectionGroup): string => groupName("aff", g);

const GROUP_MAP = /^(m?)be(a?)_(tcp|udp)_(\d+)$/;
/** The group whose backend map this is; undefined for the table's other maps. */
export function groupOfMap(map: string): SelectionGroup | undefined {
  const m = GROUP_MAP.exec(map);
  if (!m) return undefined;
  return { mesh: m[1] === "m", proto: m[3] as Protocol, count: Number(m[4]), samePort: m[2] === "a" };
}

/** The group that selects among `backends` for a VIP or published port; undefined for none. */
export function selectionGroup(
  mesh: boolean,
  proto: Protocol,
  port: number,
  backends: readonly Backend[],
): SelectionGroup | undefined {
  if (backends.length === 0) return undefined;
  let samePort = true;
  for (const b of backends) if (b.port !== port) samePort = false;
  return { mesh, proto, count: backends.length, samePort };
}

/** One element of one of the table's maps. `key` identifies it; `value` is what it maps to. */
export interface Element {
  map: string;
  key: string;
  value: string;
}

/** The chain a verdict jumps to: the group's, by selection mode; `refuse` without backends. */
export function verdictChain(g: SelectionGroup | undefined, affinity: Affinity): string {
  if (!g) return REFUSE_CHAIN;
  return affinity === "client-ip" ? affinityChain(g) : randomChain(g);
}

type Visit = (map: string, key: string, value: string) => void;

/** What each slot maps to, slot 0 first: `backend . port`, or the address alone (samePort). */
export const slotTargets = (ordered: readonly Backend[], samePort: boolean): string[] =>
  ordered.map(samePort ? (b) => b.ip : (b) => `${b.ip} . ${b.port}`);

/**
 * Calls `visit` for every map element a service owns: one verdict per VIP and per published port,
 * and N backend slots for each.
 */
export function visitElements(s: Service, visit: Visit): void {
  const ordered = slotOrder(s.backends);
  for (const vip of s.vips) {
    const g = selectionGroup(false, vip.proto, vip.port, ordered);
    visit(SERVICES_MAP, vipKey(vip), `jump ${verdictChain(g, s.affinity)}`);
    if (!g) continue;
    const map = groupMap(g);
    const targets = slotTargets(ordered, g.samePort);
    for (let slot = 0; slot < g.count; slot++)
      visit(map, `${vip.ip} . ${vip.port} . ${slot}`, targets[slot]!);
  }
  for (const m of s.mesh) {
    const g = selectionGroup(true, m.proto, m.port, m.backends);
    visit(MESH_MAP, meshKey(m), `jump ${verdictChain(g, s.affinity)}`);
    if (!g) continue;
    const map = groupMap(g);
    const targets = slotTargets(slotOrder(m.backends), g.samePort);
    for (let slot = 0; slot < g.count; slot++) visit(map, `${m.port} . ${slot}`, targets[slot]!);
  }
}

export function elementsOf(s: Service): Element[] {
  const out: Element[] = [];
  visitElements(s, (map, key, value) => out.push({ map, key, value }));
  return out;
}

/** Calls `visit` with each group the service's elements use and the slots they hold in it. */
function visitGroups(s: Service, visit: (g: SelectionGroup) => void): void {
  for (const v of s.vips) {
    const g = selectionGroup(false, v.proto, v.port, s.backends);
    if (g) visit(g);
  }
  for (const m of s.mesh) {
    const g = selectionGroup(true, m.proto, m.port, m.backends);
    if (g) visit(g);
  }
}

/** The selection groups a service's elements use (by backend map name). */
export function groupsOf(s: Service, into = new Set<string>()): Set<string> {
  visitGroups(s, (g) => into.add(groupMap(g)));
  return into;
}

/** Adds the service's slot count in each group (by backend map name), times `sign`, to `counts`. */
export function countSlots(s: Service, sign: 1 | -1, counts: Map<string, number>): void {
  visitGroups(s, (g) => {
    const map = groupMap(g);
    counts.set(map, (counts.get(map) ?? 0) + sign * g.count);
  });
}

/** Backend maps this large in a full render get a fixed size (see groupCapacity). */
export const SIZED_FROM = 1024;

/**
 * The size a full render declares for a backend map of `elements` elements; undefined: none. A map
 * without a size is a resizable hash that starts tiny and doubles as it fills, and those rehashes were
 * a tenth of loading 50 000 slots (470 → 430 ms here); with a size the kernel makes a fixed hash of
 * that capacity. The size is also a hard limit, so it leaves room to double (the programmer renders
 * the table anew before a change would overfill it), and small maps, where growing costs little, get
 * none.
 */
export function groupCapacity(elements: number): number | undefined {
  if (elements < SIZED_FROM) return undefined;
  let capacity = SIZED_FROM;
  while (capacity < 2 * elements) capacity *= 2;
  return capacity;
}

/** The VIP addresses of a service (each once): its elements of @vips, shared with any other service
 * on the same address. */
export const vipAddresses = (s: Service): string[] => [...new Set(s.vips.map((v) => v.ip))];

/** Identity of an element across maps, for diffs. */
export const elementId = (e: Pick<Element, "map" | "key">): string => `${e.map}\u0000${e.key}`;
