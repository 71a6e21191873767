/**
 * Makes links match the drivers' desired state, `ensure` style: every step tolerates what already
 * exists and corrects what differs, so the same code serves the connect fast path and the
 * reconcile after a restart.
 */

import type { DesiredAddress, DesiredBridge, DesiredEndpoint } from "../bridge/desired.js";
import { conflict } from "../common/errors.js";
import type { Kernel, LinkInfo, Netlink, NetnsRef } from "../kernel/types.js";

const isLinkLocal6 = (address: string) => address.toLowerCase().startsWith("fe80:");

/** IPv4 /32s on a bridge are service VIPs: lib/ingress/links.ts owns them, pruning leaves them. */
const isServiceVip = (a: DesiredAddress) => a.prefixLen === 32 && !a.address.includes(":");

async function ensureAddresses(
  nl: Netlink,
  index: number,
  want: DesiredAddress[],
  prune: boolean,
  keep: (a: DesiredAddress) => boolean = () => false,
) {
  const have = (await nl.listAddresses()).filter((a) => a.index === index);
  const key = (a: DesiredAddress) => `${a.address}/${a.prefixLen}`;
  const haveKeys = new Set(have.map(key));
  // Prune first: the kernel keys IPv6 addresses by address alone, so adding fd00::1/64 while
  // fd00::1/48 exists is a no-op, and pruning afterwards would leave no address at all.
  if (prune) {
    const wantKeys = new Set(want.map(key));
    for (const a of have) {
      if (wantKeys.has(key(a)) || isLinkLocal6(a.address) || keep(a)) continue;
      await nl.deleteAddress(index, a.address, a.prefixLen);
      haveKeys.delete(key(a));
    }
  }
  for (const a of want) {
    if (!haveKeys.has(key(a))) await nl.addAddress(index, a.address, a.prefixLen);
  }
}

/** The daemon's own namespace, as a path the kernel adapter can create a veth's far end in. */
const OWN_NETNS = "/proc/self/ns/net";

export class LinkProgrammer {
  private ownNetns: Promise<NetnsRef> | undefined;

  constructor(private readonly kernel: Kernel) {}

  private hostNetns(): Promise<NetnsRef> {
    this.ownNetns ??= this.kernel.resolveNetns(OWN_NETNS);
    return this.ownNetns;
  }

  /** Creates or corrects a network's bridge; returns its ifindex. */
  async ensureBridge(d: DesiredBridge): Promise<number> {
    const host = this.kernel.host();
    let link = await host.getLink(d.name);
    if (link && (link.kind !== "bridge" || (link.alias !== undefined && link.alias !== d.alias))) {
      throw conflict(`interface ${d.name} already exists on the host and does not belong to this network`);
    }
    if (!link) {
      await host.createBridge({ name: d.name, mtu: d.mtu, mac: d.mac, alias: d.alias });
      link = await host.getLink(d.name);
      if (!link) throw conflict(`bridge ${d.name} vanished right after it was created`);
    }
    if (link.mtu !== d.mtu || !link.up || link.alias !== d.alias) {
      await host.setLink(link.index, { mtu: d.mtu, up: true, alias: d.alias });
    }
    await ensureAddresses(host, link.index, d.addresses, true, isServiceVip);
    return link.index;
  }

  /** Creates the veth pair with its container end already inside the namespace, then configures both ends. */
  async plumbEndpoint(d: DesiredEndpoint, ns: NetnsRef, bridgeIndex: number): Promise<void> {
    await this.createPair(d, ns, bridgeIndex);
    await this.configureContainerEnd(d, ns);
  }

  /**
   * The "peer stays in the host namespace" variant (Docker engine endpoints): the far end is born
   * in the daemon's own namespace under its final-for-now name, down and without
   * addresses; the engine moves it into the container, renames it and configures it.
   */
  async plumbHostPeer(d: DesiredEndpoint, bridgeIndex: number): Promise<void> {
    await this.createPair(d, await this.hostNetns(), bridgeIndex);
  }

  /** The veth pair, its far end born in `peerNs`; the host end enslaved and up. */
  private async createPair(d: DesiredEndpoint, peerNs: NetnsRef, bridgeIndex: number): Promise<void> {
    const host = this.kernel.host();
    await host.createVeth({
      name: d.hostIfName,
      mtu: d.mtu,
      alias: d.alias,
      peer: { name: d.container.ifName, netns: peerNs, mac: d.container.mac, alias: d.alias },
    });
    const hostLink = await host.getLink(d.hostIfName);
    if (!hostLink) throw conflict(`veth ${d.hostIfName} vanished right after it was created`);
    await this.configureHostEnd(d, hostLink, bridgeIndex);
  }

  /**
   * Reconcile a host-peer endpoint. The host end is corrected when it exists; when it is gone the
   * pair is recreated only if the far end was never handed over (`handedOver` false): once the
   * engine moved it into a container, trellis cannot put it back. Returns what happened.
   */
  async ensureHostPeer(
    d: DesiredEndpoint,
    bridgeIndex: number,
    handedOver: boolean,
  ): Promise<"created" | "checked" | "lost"> {
    const hostLink = await this.kernel.host().getLink(d.hostIfName);
    if (hostLink) {
      await this.configureHostEnd(d, hostLink, bridgeIndex);
      return "checked";
    }
    if (handedOver) return "lost";
    await this.plumbHostPeer(d, bridgeIndex);
    return "created";
  }

  /** Re-applies the bridge-port flags of an endpoint's host end (its published ports changed). */
  async setPortFlags(d: DesiredEndpoint): Promise<void> {
    const link = await this.kernel.host().getLink(d.hostIfName);
    if (link)
      await this.kernel.host().setBridgePort(link.index, { isolated: d.isolated, hairpin: d.hairpin });
  }

  /** Reconcile one endpoint: recreate it if its veth is gone, otherwise correct both ends. */
  async ensureEndpoint(
    d: DesiredEndpoint,
    ns: NetnsRef,
    bridgeIndex: number,
  ): Promise<"created" | "checked"> {
    const hostLink = await this.kernel.host().getLink(d.hostIfName);
    if (!hostLink) {
      await this.plumbEndpoint(d, ns, bridgeIndex);
      return "created";
    }
    await this.configureHostEnd(d, hostLink, bridgeIndex);
    await this.configureContainerEnd(d, ns);
    return "checked";
  }

  private async configureHostEnd(d: DesiredEndpoint, link: LinkInfo, bridgeIndex: number) {
    const host = this.kernel.host();
    if (link.master !== bridgeIndex || !link.up || link.mtu !== d.mtu) {
      await host.setLink(link.index, { master: bridgeIndex, up: true, mtu: d.mtu });
    }
    // Port isolation is ICC-off done by the bridge itself: isolated ports reach the gateway and
    // the outside, never each other, with no firewall rule per endpoint.
    // Hairpin lets a container reach its own published port: with br_netfilter the DNAT happens in
    // the bridge path and the frame must leave through the port it came in on. Only on endpoints
    // that publish, because hairpin also reflects multicast (IPv6 DAD would see its own probes).
    await host.setBridgePort(link.index, { isolated: d.isolated, hairpin: d.hairpin });
  }

  private async configureContainerEnd(d: DesiredEndpoint, ns: NetnsRef) {
    const c = this.kernel.inNetns(ns);
    const lo = await c.getLink("lo");
    if (lo && !lo.up) await c.setLink(lo.index, { up: true });
    const peer = await c.getLink(d.container.ifName);
    if (!peer) throw conflict(`interface ${d.container.ifName} is missing in ${ns.path}`);
    await ensureAddresses(c, peer.index, d.container.addresses, false);
    if (!peer.up) await c.setLink(peer.index, { up: true });
    for (const route of d.container.routes) await c.addRoute({ ...route, oif: peer.index });
  }

  /** Deleting either end of a veth removes both; a missing link counts as done. */
  async removeEndpoint(hostIfName: string): Promise<void> {
    await this.kernel.host().deleteLinkByName(hostIfName);
  }

  async removeBridge(name: string): Promise<void> {
    await this.kernel.host().deleteLinkByName(name);
  }

  /** eth0, eth1, ... : the lowest index not taken inside the container (plus any being attached now). */
  async nextIfName(ns: NetnsRef, reserved: Set<string>): Promise<string> {
    const taken = new Set((await this.kernel.inNetns(ns).listLinks()).map((l) => l.name));
    for (let i = 0; ; i++) {
      const name = `eth${i}`;
      if (!taken.has(name) && !reserved.has(name)) return name;
    }
  }

  async hasDefaultRoute(ns: NetnsRef, family: 4 | 6): Promise<boolean> {
    const routes = await this.kernel.inNetns(ns).listRoutes(family);
    return routes.some((r) => r.dst === undefined && r.dstLen === 0 && r.table === 254);
  }
}
