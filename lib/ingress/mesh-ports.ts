/**
 * This host's mesh source address on each overlay network that carries a service: allocated once
 * from a block this host owns (kept in the store, so a restart reuses it), held by a mesh port
 * (links.ts), and announced in the overlay's endpoint table like an endpoint, so every other host
 * programs the FDB and neighbour entries that bring backends' replies back here.
 */
import { messageOf } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import { poolsOf } from "../daemon/lookup.js";
import { epKeyspace, type OverlayEndpointEntry } from "../overlay/catalog.js";
import type { OverlayManager } from "../overlay/manager.js";
import type { NetworkRecord, PoolRecord } from "../store/records.js";
import { meshMac, type ServiceLinks } from "./links.js";

export const MESH_OWNER = "mesh";
export const meshEndpointKey = (node: string) => `mesh:${node}`;

export class MeshPorts {
  /** network id → this host's mesh address (bare) */
  private readonly addresses = new Map<string, string>();

  constructor(
    private readonly ctx: DaemonContext,
    private readonly links: ServiceLinks,
    private readonly overlay: OverlayManager,
  ) {}

  /** Ensures a mesh port on each network and none elsewhere; returns the addresses it holds. */
  async sync(networkIds: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const id of networkIds) {
      const net = this.ctx.store.getNetwork(id);
      const pool = net && poolsOf(this.ctx.store, net).find((p) => p.family === 4);
      if (!net?.overlay || !pool) continue;
      try {
        out.set(id, await this.ensure(net, pool));
      } catch (err) {
        this.ctx.log.warn({ networkId: id, err: messageOf(err) }, "services: mesh port failed");
      }
    }
    for (const id of await this.links.removeMeshPorts(new Set(out.keys()))) this.release(id);
    for (const id of [...this.addresses.keys()]) if (!out.has(id)) this.release(id);
    return out;
  }

  private async ensure(net: NetworkRecord, pool: PoolRecord): Promise<string> {
    const address = await this.addressOf(net, pool);
    const self = this.overlay.cluster.self;
    const mac = meshMac(net.id, self);
    await this.links.ensureMeshPort({
      networkId: net.id,
      bridgeName: net.bridge.bridgeName,
      mtu: net.bridge.mtu,
      mac,
      address,
    });
    const entry: OverlayEndpointEntry = {
      networkId: net.id,
      containerId: MESH_OWNER,
      name: `mesh.${self}`,
      aliases: [],
      ipv4: `${address}${pool.subnet.slice(pool.subnet.indexOf("/"))}`,
      mac,
      vtep: this.overlay.cluster.advertiseAddr,
      node: self,
      mesh: true,
    };
    const table = this.overlay.cluster.node.table;
    const key = meshEndpointKey(self);
    const have = table.get(epKeyspace(net.id), key);
    if (have === undefined || have.deleted || JSON.stringify(have.value) !== JSON.stringify(entry)) {
      table.set(epKeyspace(net.id), key, { ...entry });
    }
    return address;
  }

  private async addressOf(net: NetworkRecord, pool: PoolRecord): Promise<string> {
    const cached = this.addresses.get(net.id);
    if (cached) return cached;
    const { store, ipam } = this.ctx;
    let address = store.listAllocations(pool.id).find((a) => a.owner === MESH_OWNER)?.address;
    if (!address) {
      const done = await this.overlay.reserveCapacity(net);
      try {
        address = store.transaction(() => {
          const pick = this.overlay.pickAddress(net, pool, undefined);
          return ipam.requestAddress(pool.id, { owner: MESH_OWNER, address: pick });
        });
      } finally {
        done();
      }
    }
    this.addresses.set(net.id, address);
    return address;
  }

  private release(networkId: string): void {
    this.addresses.delete(networkId);
    const net = this.ctx.store.getNetwork(networkId);
    if (net) {
      for (const pool of poolsOf(this.ctx.store, net)) {
        const mine = this.ctx.store.listAllocations(pool.id).find((a) => a.owner === MESH_OWNER);
        if (mine) this.ctx.ipam.releaseAddress(pool.id, mine.address);
      }
    }
    const table = this.overlay.cluster.node.table;
    const key = meshEndpointKey(this.overlay.cluster.self);
    const have = table.get(epKeyspace(networkId), key);
    if (have && !have.deleted) table.delete(epKeyspace(networkId), key);
  }
}
