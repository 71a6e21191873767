/**
 * Keeps trellis's nftables table in step with the store: a full atomic render for network-level
 * changes and at start-up, element-level changes for the ports of one endpoint and for the service
 * VIPs; a full render when the set of networks carrying services changes (both handed over by the
 * service manager and remembered here).
 */
import {
  type FirewallNetwork,
  type PublishedPort,
  renderFirewall,
  renderPortChanges,
  renderServiceVipChanges,
} from "../bridge/firewall.js";
import { invalid } from "../common/errors.js";
import { canonicalAddress, parseAddress } from "../ipam/cidr.js";
import type { Kernel } from "../kernel/types.js";
import type { EndpointRecord, NetworkRecord, PoolRecord } from "../store/records.js";
import type { DockerUserChain } from "./docker-user.js";

export interface FirewallSource {
  listNetworks(): NetworkRecord[];
  listEndpoints(networkId?: string): EndpointRecord[];
  listPublishingEndpoints(): EndpointRecord[];
  getPool(id: string): PoolRecord | undefined;
}

export function publishedPortsOf(net: NetworkRecord, ep: EndpointRecord): PublishedPort[] {
  if (net.internal || !ep.ipv4 || ep.state !== "active") return [];
  const containerIp = ep.ipv4.slice(0, ep.ipv4.indexOf("/"));
  return ep.publish.map((p) => {
    const hostIp = p.hostIp ?? net.bridge.defaultHostIp;
    return {
      proto: p.proto,
      ...(hostIp !== undefined ? { hostIp } : {}),
      hostPort: p.hostPort,
      containerIp,
      containerPort: p.containerPort,
    };
  });
}

/** Bare IPv4 addresses in canonical form, each once; INVALID_ARGUMENT for anything else (one bad
 * element would make every later full render of the table fail). */
function addressSet(addresses: readonly string[], what: string): Set<string> {
  const out = new Set<string>();
  for (const a of addresses) {
    if (parseAddress(a, what).family !== 4) throw invalid(`${what} "${a}" is not an IPv4 address`);
    out.add(canonicalAddress(a));
  }
  return out;
}

function setDiff(before: ReadonlySet<string>, after: ReadonlySet<string>) {
  return {
    add: [...after].filter((a) => !before.has(a)),
    remove: [...before].filter((a) => !after.has(a)),
  };
}

export class FirewallManager {
  private serviceVips = new Set<string>();
  private serviceNetworks = new Set<string>();
  /** Serialises setServiceAddresses: each diff is computed from the one before it. */
  private addressQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly kernel: Kernel,
    private readonly source: FirewallSource,
    private readonly dockerUser?: DockerUserChain,
  ) {}

  private networksOf(): FirewallNetwork[] {
    return this.source.listNetworks().map((net) => ({
      id: net.id,
      bridgeName: net.bridge.bridgeName,
      internal: net.internal,
      masquerade: net.bridge.masquerade,
      ...this.v4Of(net),
      ...(this.serviceNetworks.has(net.id) ? { services: true } : {}),
    }));
  }

  private v4Of(net: NetworkRecord): { subnets4: string[]; gateways4: string[] } {
    const pools = net.poolIds
      .map((id) => this.source.getPool(id))
      .filter((p): p is PoolRecord => p !== undefined && p.family === 4);
    return {
      subnets4: pools.map((p) => p.subnet),
      gateways4: pools.flatMap((p) => (p.gateway ? [p.gateway] : [])),
    };
  }

  render(): string {
    const ports: PublishedPort[] = [];
    const networks = new Map(this.source.listNetworks().map((n) => [n.id, n]));
    for (const ep of this.source.listPublishingEndpoints()) {
      const net = networks.get(ep.networkId);
      if (net) ports.push(...publishedPortsOf(net, ep));
    }
    return renderFirewall({
      networks: this.networksOf(),
      ports,
      serviceVips: [...this.serviceVips],
    });
  }

  async sync(): Promise<void> {
    await this.kernel.nftApply(this.render());
    await this.syncDockerUser();
  }

  /** Also run periodically: a Docker engine started after trellisd creates DOCKER-USER later. */
  async syncDockerUser(): Promise<void> {
    await this.dockerUser?.sync(this.source.listNetworks().map((n) => n.bridge.bridgeName));
  }

  async changePorts(change: { add?: PublishedPort[]; remove?: PublishedPort[] }): Promise<void> {
    const script = renderPortChanges(change);
    if (script) await this.kernel.nftApply(script);
  }

  /**
   * Makes @svc_vips exactly these addresses (bare IPv4) and keeps conntrack on exactly these networks
   * (ids), remembered so every later full render includes them. VIPs change by element diff; a change
   * of the networks (a network's first service, or its last) re-renders the table. A refused diff (no
   * table yet, or it drifted) also falls back to a full render.
   */
  async setServiceAddresses(vips: string[], networkIds: string[]): Promise<void> {
    const nextVips = addressSet(vips, "service VIP");
    const nextNetworks = new Set(networkIds);
    const apply = async () => {
      const networksChanged =
        nextNetworks.size !== this.serviceNetworks.size ||
        [...nextNetworks].some((id) => !this.serviceNetworks.has(id));
      const script = renderServiceVipChanges(setDiff(this.serviceVips, nextVips));
      this.serviceVips = nextVips;
      this.serviceNetworks = nextNetworks;
      if (networksChanged) return this.sync();
      if (!script) return;
      try {
        await this.kernel.nftApply(script);
      } catch {
        await this.sync();
      }
    };
    const next = this.addressQueue.then(apply, apply);
    this.addressQueue = next.catch(() => {});
    return next;
  }
}
