/** Network lifecycle: create, inspect, remove, prune. Each operation rolls back what it half-did. */

import { desiredBridge } from "../bridge/desired.js";
import { parseBridgeOptions } from "../bridge/options.js";
import { conflict, forbidden, invalid, messageOf, notFound, TrellisError } from "../common/errors.js";
import type { DockerNetworkInfo, Family, NetworkRecord } from "../store/records.js";
import type { DaemonContext } from "./context.js";
import { newId } from "./ids.js";
import type { CreateNetworkInput, IpamConfigInput, NetworkView } from "./inputs.js";
import { findNetwork, poolsOf, viewOf } from "./lookup.js";

const BRIDGE_ALIAS_PREFIX = "trellis:";

/** What NetworkManager needs from the overlay driver (lib/overlay/manager.ts). */
export interface OverlayDriverHooks {
  create(input: CreateNetworkInput): Promise<NetworkView>;
  /** removes it cluster-wide; refused while any host has endpoints on it */
  remove(net: NetworkRecord): Promise<void>;
}

/** How the Docker plugin (lib/plugin) creates a network; plain creates use none of it. */
export interface CreateSeam {
  /** use this id (the engine's NetworkID) instead of a fresh one */
  id?: string;
  /** pools requested beforehand (the engine's `--ipam-driver trellis`): the network takes them over */
  pools?: string[];
  docker?: DockerNetworkInfo;
}

const familyOfConfig = (c: IpamConfigInput): Family => (c.subnet?.includes(":") ? 6 : 4);

export class NetworkManager {
  /** ifindex of each network's bridge, refreshed when a bridge is (re)created */
  private readonly bridgeIndexes = new Map<string, number>();

  /** Overlay networks are created and removed cluster-wide by the overlay manager (when clustered). */
  overlay: OverlayDriverHooks | undefined;
  /** throws FORBIDDEN while something else (a service's VIP) still needs the network */
  removalGuard: ((net: NetworkRecord) => void) | undefined;

  constructor(private readonly ctx: DaemonContext) {}

  list(): NetworkView[] {
    return this.ctx.store.listNetworks().map((n) => viewOf(this.ctx.store, n));
  }

  get(ref: string): NetworkView {
    return viewOf(this.ctx.store, findNetwork(this.ctx.store, ref));
  }

  async create(input: CreateNetworkInput, seam: CreateSeam = {}): Promise<NetworkView> {
    const { store } = this.ctx;
    if (input.driver === "overlay") {
      if (!this.overlay) {
        throw invalid("overlay networks need a cluster: start trellisd with --advertise-addr (and --join)");
      }
      if (store.findNetworkByName(input.name))
        throw conflict(`network with name ${input.name} already exists`);
      return this.overlay.create(input);
    }
    if (input.driver !== "bridge")
      throw invalid(`unknown network driver "${input.driver}" (supported: bridge, overlay)`);
    if (input.ipamDriver !== "default") {
      throw invalid(`unknown IPAM driver "${input.ipamDriver}" (supported: default)`);
    }
    if (store.findNetworkByName(input.name)) throw conflict(`network with name ${input.name} already exists`);
    const id = seam.id ?? newId();
    const bridge = parseBridgeOptions(input.options, { networkId: id, hostMtu: await this.hostMtu() });
    const owner = store.listNetworks().find((n) => n.bridge.bridgeName === bridge.bridgeName);
    if (owner) throw conflict(`bridge name ${bridge.bridgeName} is already used by network ${owner.name}`);
    const existing = await this.ctx.kernel.host().getLink(bridge.bridgeName);
    if (existing) throw conflict(`interface ${bridge.bridgeName} already exists on the host`);
    const configs = this.configsByFamily(input);
    const hostRoutes = await this.hostRoutes();
    const record = store.transaction(() => {
      const poolIds: string[] = [];
      for (const poolId of seam.pools ?? []) {
        const pool = store.getPool(poolId);
        if (!pool) throw notFound(`address pool "${poolId}" not found`);
        store.putPool({ ...pool, owner: id });
        poolIds.push(poolId);
      }
      for (const [family, list] of seam.pools ? [] : configs) {
        list.forEach((c, i) => {
          const pool = this.ctx.ipam.requestPool({
            id: `${id}/v${family}/${i}`,
            owner: id,
            family,
            ...(c.subnet !== undefined ? { subnet: c.subnet } : {}),
            ...(c.ipRange !== undefined ? { ipRange: c.ipRange } : {}),
            ...(c.gateway !== undefined ? { gateway: c.gateway } : {}),
            hostRoutes,
            seed: id,
          });
          poolIds.push(pool.id);
        });
      }
      const rec: NetworkRecord = {
        id,
        name: input.name,
        driver: "bridge",
        created: new Date().toISOString(),
        internal: input.internal,
        enableIPv6: input.enableIPv6,
        options: input.options,
        labels: input.labels,
        poolIds,
        bridge,
        ...(seam.docker ? { docker: seam.docker } : {}),
      };
      store.putNetwork(rec);
      return rec;
    });
    try {
      await this.program(record);
    } catch (err) {
      this.ctx.log.warn({ networkId: id, err: messageOf(err) }, "network create failed, rolling back");
      await this.unprogram(record);
      throw err;
    }
    this.ctx.log.info({ networkId: id, name: input.name, bridge: bridge.bridgeName }, "network created");
    this.ctx.events.emit("network-created", record);
    return viewOf(store, record);
  }

  private configsByFamily(input: CreateNetworkInput): Array<[Family, IpamConfigInput[]]> {
    const v4 = input.ipamConfigs.filter((c) => familyOfConfig(c) === 4);
    const v6 = input.ipamConfigs.filter((c) => familyOfConfig(c) === 6);
    if (v6.length > 0 && !input.enableIPv6) {
      throw invalid(`IPv6 subnet ${v6[0]!.subnet} given without --ipv6 (EnableIPv6)`);
    }
    const out: Array<[Family, IpamConfigInput[]]> = [[4, v4.length > 0 ? v4 : [{}]]];
    if (input.enableIPv6) out.push([6, v6.length > 0 ? v6 : [{}]]);
    return out;
  }

  /** Creates or corrects the network's kernel objects (bridge, addresses, forwarding, rules). */
  async program(net: NetworkRecord): Promise<number> {
    const index = await this.ctx.links.ensureBridge(desiredBridge(net, poolsOf(this.ctx.store, net)));
    this.bridgeIndexes.set(net.id, index);
    await this.ctx.kernel.setSysctl("net/ipv4/ip_forward", "1");
    if (net.enableIPv6) await this.ctx.kernel.setSysctl("net/ipv6/conf/all/forwarding", "1");
    await this.ctx.firewall.sync();
    return index;
  }

  async bridgeIndex(net: NetworkRecord): Promise<number> {
    const cached = this.bridgeIndexes.get(net.id);
    if (cached !== undefined) return cached;
    return this.program(net);
  }

  /**
   * Records a network whose definition came from elsewhere (an overlay network announced by the
   * cluster) with its one pool, and programs it. Idempotent.
   */
  async materialize(rec: NetworkRecord, pool: { subnet: string; gateway: string }): Promise<void> {
    const { store } = this.ctx;
    if (!store.getNetwork(rec.id)) {
      store.transaction(() => {
        const made = this.ctx.ipam.requestPool({
          id: `${rec.id}/v4/0`,
          owner: rec.id,
          family: 4,
          subnet: pool.subnet,
          gateway: pool.gateway,
          seed: rec.id,
        });
        store.putNetwork({ ...rec, poolIds: [made.id] });
      });
      this.ctx.events.emit("network-created", store.getNetwork(rec.id)!);
    }
    await this.program(store.getNetwork(rec.id)!);
  }

  /** Forgets a network and removes its kernel objects (overlay: when the cluster deleted it). */
  async dematerialize(net: NetworkRecord): Promise<void> {
    await this.unprogram(net);
    this.ctx.events.emit("network-removed", net);
  }

  /** Forgets the network in one transaction, then removes its rules and bridge. */
  private async unprogram(net: NetworkRecord): Promise<void> {
    const { store } = this.ctx;
    const pending = store.transaction(() => {
      for (const poolId of net.poolIds) this.ctx.ipam.releasePool(poolId);
      store.deleteNetwork(net.id);
      return store.addPendingDeletion({ kind: "link", name: net.bridge.bridgeName });
    });
    this.bridgeIndexes.delete(net.id);
    await this.ctx.firewall.sync();
    await this.ctx.links.removeBridge(net.bridge.bridgeName);
    store.removePendingDeletion(pending);
  }

  /** `byEngine`: the Docker plugin removing a network the engine created (others may not). */
  async remove(ref: string, opts: { byEngine?: boolean } = {}): Promise<void> {
    const net = findNetwork(this.ctx.store, ref);
    if (net.docker && !opts.byEngine) {
      throw forbidden(`network ${net.name} belongs to a Docker engine: remove it with docker network rm`);
    }
    this.removalGuard?.(net);
    if (net.driver === "overlay" && this.overlay) {
      await this.overlay.remove(net);
      return;
    }
    const endpoints = this.ctx.store.listEndpoints(net.id);
    if (endpoints.length > 0) {
      const names = endpoints.map((e) => e.name).join(", ");
      throw forbidden(
        `network ${net.name} has ${endpoints.length} connected endpoint(s) (${names}): disconnect them first`,
      );
    }
    await this.unprogram(net);
    this.ctx.log.info({ networkId: net.id, name: net.name }, "network removed");
    this.ctx.events.emit("network-removed", net);
  }

  async prune(): Promise<string[]> {
    const removed: string[] = [];
    for (const net of this.ctx.store.listNetworks()) {
      if (net.docker || this.ctx.store.countEndpoints(net.id) > 0) continue;
      try {
        await this.remove(net.id);
      } catch (err) {
        // in use by a service, or (overlay) by another host: not unused
        if (err instanceof TrellisError && err.code === "FORBIDDEN") continue;
        throw err;
      }
      removed.push(net.name);
    }
    return removed;
  }

  /** MTU of the interface carrying the default route, or 1500. */
  async hostMtu(): Promise<number> {
    const host = this.ctx.kernel.host();
    const route = (await host.listRoutes(4)).find((r) => r.dstLen === 0 && r.table === 254 && r.oif);
    if (!route) return 1500;
    const link = (await host.listLinks()).find((l) => l.index === route.oif);
    return link?.mtu ?? 1500;
  }

  /** The host's routes as CIDRs, minus those on trellis's own bridges (IPAM knows those subnets). */
  async hostRoutes(): Promise<string[]> {
    const host = this.ctx.kernel.host();
    const ours = new Set(
      (await host.listLinks()).filter((l) => l.alias?.startsWith(BRIDGE_ALIAS_PREFIX)).map((l) => l.index),
    );
    const routes = [...(await host.listRoutes(4)), ...(await host.listRoutes(6))];
    return routes
      .filter((r) => r.dst !== undefined && r.dstLen > 0 && r.type === 1 && !(r.oif && ours.has(r.oif)))
      .map((r) => `${r.dst}/${r.dstLen}`);
  }
}
