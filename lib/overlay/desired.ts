/**
 * The overlay driver's desired state for one host: the network's bridge (as for a bridge network,
 * with the overlay MTU), a VXLAN device enslaved to it (learning off, ARP/ND proxy on, no remote,
 * no group: nothing is flooded), and for every endpoint on ANOTHER host exactly one FDB entry
 * (MAC → that host's VTEP) and one neighbour entry (IP → MAC) on the VXLAN device. Pure.
 */
import { createHash } from "node:crypto";

/** VXLAN adds 50 bytes (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8) to every frame. */
export const VXLAN_OVERHEAD = 50;
export const VXLAN_PORT = 4789;
/** VNIs below this are left for hand-made tunnels. */
const VNI_BASE = 4096;
const VNI_SPACE = (1 << 24) - VNI_BASE;

export interface RemoteEndpoint {
  endpointId: string;
  node: string;
  /** the remote host's VTEP (its advertise address) */
  vtep: string;
  mac: string;
  /** bare addresses */
  ipv4?: string;
  ipv6?: string;
}

export interface DesiredFdb {
  mac: string;
  dst: string;
}

export interface DesiredNeighbour {
  address: string;
  mac: string;
}

export interface DesiredVxlan {
  name: string;
  vni: number;
  port: number;
  local: string;
  mtu: number;
  alias: string;
  fdb: DesiredFdb[];
  neighbours: DesiredNeighbour[];
}

/** A deterministic VNI for a network id; `attempt` moves to the next candidate on a collision. */
export function vniFor(networkId: string, attempt = 0): number {
  const h = createHash("sha256").update(`${networkId}#${attempt}`).digest().readUInt32BE(0);
  return VNI_BASE + (h % VNI_SPACE);
}

export const overlayBridgeName = (networkId: string) => `ov-${networkId.slice(0, 12)}`;
export const vxlanName = (networkId: string) => `vx-${networkId.slice(0, 12)}`;
export const overlayMtu = (underlayMtu: number) => underlayMtu - VXLAN_OVERHEAD;

export function desiredVxlan(opts: {
  networkId: string;
  vni: number;
  local: string;
  mtu: number;
  remotes: RemoteEndpoint[];
}): DesiredVxlan {
  const fdb = new Map<string, DesiredFdb>();
  const neighbours = new Map<string, DesiredNeighbour>();
  for (const r of opts.remotes) {
    fdb.set(r.mac, { mac: r.mac, dst: r.vtep });
    if (r.ipv4) neighbours.set(r.ipv4, { address: r.ipv4, mac: r.mac });
    if (r.ipv6) neighbours.set(r.ipv6, { address: r.ipv6, mac: r.mac });
  }
  return {
    name: vxlanName(opts.networkId),
    vni: opts.vni,
    port: VXLAN_PORT,
    local: opts.local,
    mtu: opts.mtu,
    alias: `trellis:vx:${opts.networkId}`,
    fdb: [...fdb.values()].sort((a, b) => a.mac.localeCompare(b.mac)),
    neighbours: [...neighbours.values()].sort((a, b) => a.address.localeCompare(b.address)),
  };
}

export interface FdbDiff {
  addFdb: DesiredFdb[];
  removeFdb: DesiredFdb[];
  addNeighbours: DesiredNeighbour[];
  removeNeighbours: DesiredNeighbour[];
}

/** What to change so the observed entries equal the desired ones (a wrong dst or MAC counts as remove + add). */
export function diffEntries(
  want: Pick<DesiredVxlan, "fdb" | "neighbours">,
  have: { fdb: DesiredFdb[]; neighbours: DesiredNeighbour[] },
): FdbDiff {
  const fdbKey = (e: DesiredFdb) => `${e.mac}>${e.dst}`;
  const nKey = (e: DesiredNeighbour) => `${e.address}>${e.mac}`;
  const wantF = new Set(want.fdb.map(fdbKey));
  const haveF = new Set(have.fdb.map(fdbKey));
  const wantN = new Set(want.neighbours.map(nKey));
  const haveN = new Set(have.neighbours.map(nKey));
  return {
    addFdb: want.fdb.filter((e) => !haveF.has(fdbKey(e))),
    removeFdb: have.fdb.filter((e) => !wantF.has(fdbKey(e))),
    addNeighbours: want.neighbours.filter((e) => !haveN.has(nKey(e))),
    removeNeighbours: have.neighbours.filter((e) => !wantN.has(nKey(e))),
  };
}
