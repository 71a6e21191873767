/**
 * The links and addresses services need on a host, through the kernel adapter:
 * - every VIP as a /32 on its network's bridge, so containers resolve it (ARP) to this host, where
 *   the VIP table DNATs it; on an overlay every host holds the same VIPs, like the anycast gateway,
 *   and the VXLAN device's ARP proxy keeps the question local. The bridge code leaves IPv4 /32
 *   addresses alone (lib/daemon/links.ts), so this is their only owner.
 * - a "mesh port" per overlay network: a veth pair whose host end holds this host's own address on
 *   the overlay (the anycast gateway cannot be a source: replies would stay on the other host) and
 *   whose far end is a port of the bridge. Mesh connections to other hosts' backends are SNATed to it.
 */
import { createHash } from "node:crypto";
import type { Kernel, NetnsRef } from "../kernel/types.js";

export const MESH_ALIAS_PREFIX = "trellis:mesh:";
const OWN_NETNS = "/proc/self/ns/net";

export const meshPortName = (networkId: string) => `tm-${networkId.slice(0, 12)}`;
const meshPeerName = (networkId: string) => `tp-${networkId.slice(0, 12)}`;

/** Locally administered and unlike endpoint (02:42) and bridge (02:b7) MACs; per network and node. */
export function meshMac(networkId: string, node: string): string {
  const h = createHash("sha256").update(`mesh:${networkId}:${node}`).digest();
  return ["02", "6d", ...[...h.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

export interface MeshPortSpec {
  networkId: string;
  bridgeName: string;
  mtu: number;
  mac: string;
  /** bare IPv4 */
  address: string;
}

export class ServiceLinks {
  private ownNetns: Promise<NetnsRef> | undefined;

  constructor(private readonly kernel: Kernel) {}

  /** Makes each bridge's /32 addresses exactly its VIPs (bridges not listed hold none). */
  async syncBridgeVips(
    bridges: readonly string[],
    vips: ReadonlyMap<string, readonly string[]>,
  ): Promise<number> {
    const host = this.kernel.host();
    const links = new Map((await host.listLinks()).map((l) => [l.name, l.index]));
    const addresses = await host.listAddresses(4);
    let changes = 0;
    for (const bridge of bridges) {
      const index = links.get(bridge);
      if (index === undefined) continue;
      const want = new Set(vips.get(bridge) ?? []);
      const have = new Set(
        addresses.filter((a) => a.index === index && a.prefixLen === 32).map((a) => a.address),
      );
      for (const ip of have) {
        if (want.has(ip)) continue;
        await host.deleteAddress(index, ip, 32);
        changes++;
      }
      for (const ip of want) {
        if (have.has(ip)) continue;
        await host.addAddress(index, ip, 32);
        changes++;
      }
    }
    return changes;
  }

  /** Creates or corrects one mesh port. */
  async ensureMeshPort(spec: MeshPortSpec): Promise<void> {
    const host = this.kernel.host();
    const name = meshPortName(spec.networkId);
    const peerName = meshPeerName(spec.networkId);
    const alias = `${MESH_ALIAS_PREFIX}${spec.networkId}`;
    const bridge = await host.getLink(spec.bridgeName);
    if (!bridge) throw new Error(`bridge ${spec.bridgeName} of the mesh port ${name} does not exist`);
    let port = await host.getLink(name);
    if (port && (port.alias !== alias || port.mac !== spec.mac)) {
      await host.deleteLink(port.index);
      port = undefined;
    }
    if (!port) {
      this.ownNetns ??= this.kernel.resolveNetns(OWN_NETNS);
      await host.deleteLinkByName(peerName);
      await host.createVeth({
        name,
        mtu: spec.mtu,
        mac: spec.mac,
        alias,
        peer: { name: peerName, netns: await this.ownNetns, alias },
      });
      port = await host.getLink(name);
      if (!port) throw new Error(`mesh port ${name} vanished right after it was created`);
      // Replies come in here from backends whose route back is the bridge: not a spoof.
      await this.kernel.setSysctl(`net/ipv4/conf/${name}/rp_filter`, "0");
    }
    const peer = await host.getLink(peerName);
    if (!peer) throw new Error(`far end ${peerName} of mesh port ${name} is missing`);
    if (peer.master !== bridge.index || !peer.up || peer.mtu !== spec.mtu) {
      await host.setLink(peer.index, { master: bridge.index, up: true, mtu: spec.mtu });
    }
    if (!port.up || port.mtu !== spec.mtu) await host.setLink(port.index, { up: true, mtu: spec.mtu });
    const have = (await host.listAddresses(4)).filter((a) => a.index === port.index);
    for (const a of have) {
      if (a.address !== spec.address || a.prefixLen !== 32)
        await host.deleteAddress(port.index, a.address, a.prefixLen);
    }
    if (!have.some((a) => a.address === spec.address && a.prefixLen === 32)) {
      await host.addAddress(port.index, spec.address, 32);
    }
  }

  /** Deletes the mesh ports of networks not in `keep`; returns their network ids. */
  async removeMeshPorts(keep: ReadonlySet<string>): Promise<string[]> {
    const host = this.kernel.host();
    const removed: string[] = [];
    for (const link of await host.listLinks()) {
      if (!link.alias?.startsWith(MESH_ALIAS_PREFIX) || !link.name.startsWith("tm-")) continue;
      const networkId = link.alias.slice(MESH_ALIAS_PREFIX.length);
      if (keep.has(networkId)) continue;
      await host.deleteLink(link.index);
      removed.push(networkId);
    }
    return removed;
  }
}
