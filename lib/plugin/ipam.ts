/**
 * The IpamDriver side: the engine's `--ipam-driver trellis` takes its pools and addresses from
 * trellis's IPAM, so they are checked against every trellis network (overlapping subnets, addresses
 * in use) and survive restarts of both sides.
 *
 * A pool the engine requests is a real trellis pool (owner PENDING_POOL_OWNER) until a network
 * takes it over at CreateNetwork; the PoolID is the trellis pool id. Addresses the engine requests
 * are held by RESERVED_ADDRESS_OWNER until an endpoint takes them over at CreateEndpoint, and go
 * back to it at DeleteEndpoint, because the engine releases them itself afterwards.
 *
 * A pool the engine requests with exactly the subnet of an existing trellis network (an overlay, or
 * a network to adopt with `-o trellis.name`), or whose subnet an overlay took over, is an alias
 * (state.ts): its addresses come from that network's pool. Overlay networks pick them from the
 * address blocks this host owns in the cluster.
 */
import { randomBytes } from "node:crypto";
import { conflict, invalid, notFound, TrellisError } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import type { OverlayAddressing } from "../daemon/endpoints.js";
import { poolsOf } from "../daemon/lookup.js";
import type { NetworkManager } from "../daemon/networks.js";
import { geometryOf } from "../ipam/allocator.js";
import { canonicalAddress, canonicalCidr, formatAddress } from "../ipam/cidr.js";
import type { NetworkRecord, PoolRecord } from "../store/records.js";
import type { AddressResult, AddressSpaces, IpamBackend, IpamCapabilities, PoolResult } from "./backend.js";
import type { ReleaseAddressRequest, RequestAddressRequest, RequestPoolRequest } from "./protocol.js";
import { PENDING_POOL_OWNER, type PluginState, RESERVED_ADDRESS_OWNER } from "./state.js";

export const LOCAL_ADDRESS_SPACE = "TrellisLocal";
export const GLOBAL_ADDRESS_SPACE = "TrellisGlobal";

export const isTrellisAddressSpace = (space: string) =>
  space === LOCAL_ADDRESS_SPACE || space === GLOBAL_ADDRESS_SPACE;

const prefixOf = (subnet: string) => subnet.slice(subnet.indexOf("/"));

export interface DockerIpamDeps {
  ctx: DaemonContext;
  networks: NetworkManager;
  state: PluginState;
  /** the overlay driver's address picking; undefined without a cluster */
  overlay: () => OverlayAddressing | undefined;
}

/** Where a PoolID's addresses come from: a pool of the plugin's own, or an overlay network's. */
type PoolSource =
  | { kind: "pool"; pool: PoolRecord }
  | { kind: "network"; net: NetworkRecord; pool: PoolRecord };

export class DockerIpam implements IpamBackend {
  constructor(private readonly deps: DockerIpamDeps) {}

  capabilities(): IpamCapabilities {
    // The engine's MAC is not needed: trellis derives MACs from the address, as Docker does.
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }

  addressSpaces(): AddressSpaces {
    return { LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
  }

  async requestPool(req: RequestPoolRequest): Promise<PoolResult> {
    const { ctx, state } = this.deps;
    const options = Object.keys(req.options);
    if (options.length > 0) {
      throw invalid(`unknown IPAM option "${options[0]}": the trellis IPAM driver takes no --ipam-opt`);
    }
    if (!isTrellisAddressSpace(req.addressSpace) && req.addressSpace !== "") {
      throw invalid(`unknown address space "${req.addressSpace}" (trellis has ${LOCAL_ADDRESS_SPACE})`);
    }
    const id = `docker/${randomBytes(12).toString("hex")}`;
    const existing = req.pool ? this.networkWithSubnet(req.pool) : undefined;
    if (existing) {
      // Exactly the subnet of a trellis network (an overlay, or one to adopt with -o trellis.name):
      // its pool hands out the addresses.
      if (req.subPool) {
        throw invalid(
          `subnet ${existing.pool.subnet} is network ${existing.net.name}'s: --ip-range cannot be used`,
        );
      }
      state.setPoolAlias(id, existing.net.name, existing.pool.subnet);
      return { PoolID: id, Pool: existing.pool.subnet, Data: {} };
    }
    const hostRoutes = await this.deps.networks.hostRoutes();
    const pool = ctx.ipam.requestPool({
      id,
      owner: PENDING_POOL_OWNER,
      family: req.v6 ? 6 : 4,
      ...(req.pool ? { subnet: req.pool } : {}),
      ...(req.subPool ? { ipRange: req.subPool } : {}),
      gateway: false, // the engine asks for its gateway separately
      hostRoutes,
    });
    ctx.log.info({ poolId: id, subnet: pool.subnet, ipRange: pool.ipRange }, "docker: pool handed out");
    return { PoolID: id, Pool: pool.subnet, Data: {} };
  }

  async releasePool(poolId: string): Promise<void> {
    const { ctx, state } = this.deps;
    if (state.forgetPool(poolId)) return;
    const pool = ctx.store.getPool(poolId);
    // A pool its network took over goes with the network: the engine releases pools before it
    // deletes the network (and it may yet refuse to).
    if (pool?.owner === PENDING_POOL_OWNER) ctx.ipam.releasePool(poolId);
  }

  async requestAddress(req: RequestAddressRequest): Promise<AddressResult> {
    const source = this.source(req.poolId);
    const address = req.gateway ? this.gateway(source, req.address) : await this.take(source, req.address);
    return { Address: `${address}${prefixOf(source.pool.subnet)}`, Data: {} };
  }

  async releaseAddress(req: ReleaseAddressRequest): Promise<void> {
    const { store, ipam } = this.deps.ctx;
    const source = this.sourceOrUndefined(req.poolId);
    if (!source || req.address === "") return;
    const address = canonicalAddress(req.address);
    const held = store.getAllocation(source.pool.id, address);
    if (!held) return;
    // The gateway of a live network stays until the network goes; an endpoint's address is the
    // endpoint's until DeleteEndpoint hands it back.
    const pending = source.kind === "pool" && source.pool.owner === PENDING_POOL_OWNER;
    if (held.owner === RESERVED_ADDRESS_OWNER || (held.owner === "gateway" && pending)) {
      ipam.releaseAddress(source.pool.id, address);
    }
  }

  /** The network's gateway: the pool's, or a new one (the first address of the subnet by default). */
  private gateway(source: PoolSource, requested: string): string {
    const { store, ipam } = this.deps.ctx;
    const want = requested === "" ? undefined : canonicalAddress(requested);
    const current = source.pool.gateway;
    if (current !== undefined) {
      if (want !== undefined && want !== current) {
        throw conflict(`the gateway of subnet ${source.pool.subnet} is already ${current}`);
      }
      return current;
    }
    if (source.kind === "network") throw conflict(`network ${source.net.name} has no gateway`);
    const geometry = geometryOf(source.pool);
    const first = formatAddress(source.pool.family, geometry.firstUsable);
    return store.transaction(() => {
      let address: string;
      try {
        address = ipam.requestAddress(source.pool.id, { owner: "gateway", address: want ?? first });
      } catch (err) {
        if (want !== undefined || !(err instanceof TrellisError && err.code === "CONFLICT")) throw err;
        address = ipam.requestAddress(source.pool.id, { owner: "gateway" });
      }
      store.putPool({ ...store.getPool(source.pool.id)!, gateway: address });
      return address;
    });
  }

  private async take(source: PoolSource, requested: string): Promise<string> {
    const { store, ipam } = this.deps.ctx;
    const want = requested === "" ? undefined : requested;
    if (source.kind === "pool" || source.net.driver !== "overlay") {
      return ipam.requestAddress(source.pool.id, {
        owner: RESERVED_ADDRESS_OWNER,
        ...(want ? { address: want } : {}),
      });
    }
    const overlay = this.deps.overlay();
    if (!overlay)
      throw invalid(`network ${source.net.name} is an overlay network and this daemon has no cluster`);
    const done = await overlay.reserveCapacity(source.net);
    try {
      return store.transaction(() => {
        const picked = overlay.pickAddress(source.net, source.pool, want);
        return ipam.requestAddress(source.pool.id, { owner: RESERVED_ADDRESS_OWNER, address: picked });
      });
    } finally {
      done();
    }
  }

  private source(poolId: string): PoolSource {
    const found = this.sourceOrUndefined(poolId);
    if (found) return found;
    throw notFound(
      `address pool "${poolId}" is unknown to trellis (was its state dir reset?): remove and recreate the network`,
    );
  }

  private sourceOrUndefined(poolId: string): PoolSource | undefined {
    const { ctx, state } = this.deps;
    const alias = state.poolAlias(poolId);
    if (alias !== undefined) {
      const net = ctx.store.findNetworkByName(alias.network);
      const pool = net && poolsOf(ctx.store, net).find((p) => p.subnet === alias.subnet);
      return net && pool ? { kind: "network", net, pool } : undefined;
    }
    const pool = ctx.store.getPool(poolId);
    return pool ? { kind: "pool", pool } : undefined;
  }

  /**
   * The network (overlay, or made by trellis itself) with a pool of exactly `subnet`, if any. A
   * network an engine made has its own PoolIDs: its subnet is an overlap like any other.
   */
  private networkWithSubnet(subnet: string): { net: NetworkRecord; pool: PoolRecord } | undefined {
    const { store } = this.deps.ctx;
    const wanted = canonicalCidr(subnet);
    for (const net of store.listNetworks()) {
      if (net.docker) continue;
      const pool = poolsOf(store, net).find((p) => p.subnet === wanted);
      if (pool) return { net, pool };
    }
    return undefined;
  }
}
