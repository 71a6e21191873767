/**
 * Connecting and disconnecting containers (network namespaces). The endpoint is recorded with its
 * addresses before any kernel work ("creating"), so a crash at any point leaves a record the
 * reconciler can roll back; a failure rolls back at once.
 */

import { desiredEndpoint, endpointMac, hostIfNameOf } from "../bridge/desired.js";
import { conflict, forbidden, invalid, messageOf, notFound, TrellisError } from "../common/errors.js";
import type { NetnsRef } from "../kernel/types.js";
import type { EndpointRecord, NetworkRecord, PoolRecord, PortMapping } from "../store/records.js";
import type { DaemonContext } from "./context.js";
import { publishedPortsOf } from "./firewall.js";
import { containerIdOf, defaultEndpointName, newId } from "./ids.js";
import type { ConnectInput, DisconnectInput } from "./inputs.js";
import { KeyedLock } from "./keyed-lock.js";
import { findNetwork, poolsOf } from "./lookup.js";
import type { NetworkManager } from "./networks.js";

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

function prefixOf(subnet: string): string {
  return subnet.slice(subnet.indexOf("/"));
}

/** Two mappings that would claim the same host port. */
export function samePort(a: PortMapping, b: PortMapping): boolean {
  return (
    a.proto === b.proto &&
    a.hostPort === b.hostPort &&
    (a.hostIp === undefined || b.hostIp === undefined || a.hostIp === b.hostIp)
  );
}

/** How overlay networks hand out addresses (lib/overlay/manager.ts); absent without a cluster. */
export interface OverlayAddressing {
  reserveCapacity(net: NetworkRecord): Promise<() => void>;
  pickAddress(net: NetworkRecord, pool: PoolRecord, requested: string | undefined): string;
}

export class EndpointManager {
  overlay: OverlayAddressing | undefined;

  private overlayAddressing(net: NetworkRecord): OverlayAddressing {
    if (!this.overlay)
      throw invalid(`network ${net.name} is an overlay network and this daemon has no cluster`);
    return this.overlay;
  }

  private readonly containerLock = new KeyedLock();
  /** veth deletions still running, per container: a reconnect waits for them */
  private readonly deletions = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: DaemonContext,
    private readonly networks: NetworkManager,
  ) {}

  async connect(networkRef: string, input: ConnectInput): Promise<EndpointRecord> {
    const ns = await this.ctx.kernel.resolveNetns(input.container);
    const containerId = containerIdOf(ns);
    return this.containerLock.run(containerId, async () => {
      await this.deletions.get(containerId);
      try {
        return await this.connectLocked(networkRef, input, ns, containerId);
      } finally {
        this.ctx.kernel.releaseNetns(ns);
      }
    });
  }

  /** Indexed lookups only: the cost of a connect must not grow with the size of the network. */
  private validate(net: NetworkRecord, input: ConnectInput, containerId: string, name: string) {
    const { store } = this.ctx;
    if (store.findEndpointByContainer(net.id, containerId)) {
      throw forbidden(`container ${input.container} is already connected to network ${net.name}`);
    }
    if (!NAME.test(name)) throw invalid(`invalid endpoint name "${name}"`);
    for (const alias of input.aliases) if (!NAME.test(alias)) throw invalid(`invalid alias "${alias}"`);
    if (store.findEndpointByName(net.id, name)) {
      throw conflict(`endpoint with name ${name} already exists in network ${net.name}`);
    }
    if (input.publish.length > 0 && net.internal) {
      throw invalid(`cannot publish ports on internal network ${net.name}`);
    }
    const publishing = input.publish.length > 0 ? store.listPublishingEndpoints() : [];
    input.publish.forEach((p, i) => {
      if (input.publish.slice(0, i).some((q) => samePort(p, q))) {
        throw invalid(`port ${p.hostPort}/${p.proto} is published twice`);
      }
      for (const ep of publishing) {
        if (!ep.publish.some((q) => samePort(p, q))) continue;
        const other = store.getNetwork(ep.networkId)?.name ?? ep.networkId;
        throw conflict(
          `host port ${p.hostIp ?? "0.0.0.0"}:${p.hostPort}/${p.proto} is already published by endpoint ${ep.name} on network ${other}`,
        );
      }
    });
  }

  private async connectLocked(networkRef: string, input: ConnectInput, ns: NetnsRef, containerId: string) {
    const { store, ipam, links } = this.ctx;
    const net = findNetwork(store, networkRef);
    const name = input.name ?? defaultEndpointName(input.container, ns);
    this.validate(net, input, containerId, name);
    if (input.ipv6 !== undefined && !net.enableIPv6) {
      throw invalid(`network ${net.name} has no IPv6 subnet: --ip6 ${input.ipv6} cannot be used`);
    }
    const ifName = await links.nextIfName(ns, new Set());
    const gatewayEndpoint = !net.internal && !(await links.hasDefaultRoute(ns, 4));
    const id = newId();
    const pools = poolsOf(store, net);
    const overlay = net.driver === "overlay" ? this.overlayAddressing(net) : undefined;
    const releaseCapacity = overlay ? await overlay.reserveCapacity(net) : undefined;
    let ep: EndpointRecord;
    try {
      ep = store.transaction((): EndpointRecord => {
        const fresh = findNetwork(store, net.id); // it may have been removed while we awaited
        this.validate(fresh, input, containerId, name);
        const v4 = pools.find((p) => p.family === 4);
        const v6 = pools.find((p) => p.family === 6);
        // Overlay networks: only from address blocks this host owns in the cluster.
        const want4 = overlay && v4 ? overlay.pickAddress(fresh, v4, input.ipv4) : input.ipv4;
        const ipv4 =
          v4 &&
          `${ipam.requestAddress(v4.id, { owner: id, ...(want4 ? { address: want4 } : {}) })}${prefixOf(v4.subnet)}`;
        const ipv6 =
          v6 &&
          `${ipam.requestAddress(v6.id, { owner: id, ...(input.ipv6 ? { address: input.ipv6 } : {}) })}${prefixOf(v6.subnet)}`;
        const rec: EndpointRecord = {
          id,
          networkId: net.id,
          name,
          containerId,
          netns: ns,
          ifName,
          hostIfName: hostIfNameOf(id),
          mac: endpointMac(id, ipv4),
          ...(ipv4 ? { ipv4 } : {}),
          ...(ipv6 ? { ipv6 } : {}),
          aliases: input.aliases,
          publish: input.publish,
          gatewayEndpoint,
          state: "creating",
          created: new Date().toISOString(),
        };
        store.putEndpoint(rec);
        return rec;
      });
    } finally {
      releaseCapacity?.();
    }
    const active: EndpointRecord = { ...ep, state: "active" };
    let portsAdded = false;
    try {
      await links.plumbEndpoint(desiredEndpoint(net, pools, ep), ns, await this.networks.bridgeIndex(net));
      const ports = publishedPortsOf(net, active);
      if (ports.length > 0) {
        await this.ctx.firewall.changePorts({ add: ports });
        portsAdded = true;
      }
      store.putEndpoint(active);
    } catch (err) {
      this.ctx.log.warn(
        { endpointId: id, networkId: net.id, err: messageOf(err) },
        "connect failed, rolling back",
      );
      await this.rollback(net, active, portsAdded);
      throw err;
    }
    this.ctx.log.info(
      { endpointId: id, networkId: net.id, name, ifName, ipv4: ep.ipv4, ipv6: ep.ipv6 },
      "endpoint connected",
    );
    this.ctx.events.emit("endpoint-connected", active);
    return active;
  }

  /** Undo a connect: rules, link, record and addresses. Failures are logged, never hide the cause. */
  async rollback(net: NetworkRecord, ep: EndpointRecord, portsAdded: boolean): Promise<void> {
    try {
      if (portsAdded) await this.ctx.firewall.changePorts({ remove: publishedPortsOf(net, ep) });
      await this.ctx.links.removeEndpoint(ep.hostIfName);
    } catch (err) {
      this.ctx.log.error({ endpointId: ep.id, err: messageOf(err) }, "rollback of kernel state failed");
    }
    this.forget(ep);
  }

  /** Drops the record and gives the addresses back, in one transaction. */
  forget(ep: EndpointRecord): void {
    const { store, ipam } = this.ctx;
    store.transaction(() => {
      const net = store.getNetwork(ep.networkId);
      for (const pool of net ? poolsOf(store, net) : []) {
        const cidr = pool.family === 4 ? ep.ipv4 : ep.ipv6;
        if (cidr) ipam.releaseAddress(pool.id, cidr.slice(0, cidr.indexOf("/")));
      }
      store.deleteEndpoint(ep.id);
    });
    if (ep.state === "active") this.ctx.events.emit("endpoint-disconnected", ep);
  }

  private async findEndpoint(
    net: NetworkRecord,
    input: DisconnectInput,
  ): Promise<EndpointRecord | undefined> {
    try {
      const ns = await this.ctx.kernel.resolveNetns(input.container);
      return this.ctx.store.findEndpointByContainer(net.id, containerIdOf(ns));
    } catch (err) {
      // The namespace is gone: with --force, find the endpoint by the name or path it was attached by.
      if (!(err instanceof TrellisError && err.code === "NOT_FOUND") || !input.force) throw err;
      const ref = input.container;
      return this.ctx.store
        .listEndpoints(net.id)
        .find(
          (e) =>
            e.name === ref ||
            e.netns.path === ref ||
            e.netns.path === `/run/netns/${ref}` ||
            e.containerId === ref,
        );
    }
  }

  async disconnect(networkRef: string, input: DisconnectInput): Promise<void> {
    const net = findNetwork(this.ctx.store, networkRef);
    const ep = await this.findEndpoint(net, input);
    if (!ep) throw notFound(`container ${input.container} is not connected to network ${net.name}`);
    await this.containerLock.run(ep.containerId, async () => {
      const current = this.ctx.store.getEndpoint(ep.id);
      if (!current) throw notFound(`container ${input.container} is not connected to network ${net.name}`);
      if (current.docker) {
        throw forbidden(`endpoint ${current.name} belongs to a Docker engine: use docker network disconnect`);
      }
      const ports = publishedPortsOf(net, current);
      if (ports.length > 0) await this.ctx.firewall.changePorts({ remove: ports });
      const pendingId = this.ctx.store.transaction(() => {
        this.forget(current);
        return this.ctx.store.addPendingDeletion({ kind: "link", name: current.hostIfName });
      });
      this.deleteLinkInBackground(current, pendingId);
    });
    this.ctx.log.info({ endpointId: ep.id, networkId: net.id, name: ep.name }, "endpoint disconnected");
  }

  /**
   * The kernel takes ~20 ms to destroy a veth (an RCU grace period); the reply does not wait. The
   * pending-deletion record makes a restart finish the job if we crash first.
   */
  private deleteLinkInBackground(ep: EndpointRecord, pendingId: number): void {
    const previous = this.deletions.get(ep.containerId) ?? Promise.resolve();
    const done = previous
      .then(() => this.ctx.links.removeEndpoint(ep.hostIfName))
      .then(() => {
        this.ctx.store.removePendingDeletion(pendingId);
      })
      .catch((err) => this.ctx.log.error({ endpointId: ep.id, err: messageOf(err) }, "veth deletion failed"));
    this.deletions.set(ep.containerId, done);
    void done.then(() => {
      if (this.deletions.get(ep.containerId) === done) this.deletions.delete(ep.containerId);
    });
  }

  /** Waits for every background deletion (shutdown, tests). */
  async settle(): Promise<void> {
    await Promise.all([...this.deletions.values()]);
  }
}
