/**
 * Keeps trellis's nftables table in step with the store: a full atomic render for network-level
 * changes and at start-up, element-level changes for the ports of one endpoint.
 */
import {
  type FirewallNetwork,
  type PublishedPort,
  renderFirewall,
  renderPortChanges,
} from "../bridge/firewall.js";
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

export class FirewallManager {
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
    return renderFirewall({ networks: this.networksOf(), ports });
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
}
