/**
 * CreateNetwork/DeleteNetwork: an engine's network becomes a trellis network.
 *
 * - bridge mode (the default): a new trellis bridge network whose id is the engine's network id, so
 *   the mapping needs no table and `trellis network inspect <id prefix>` matches `docker network
 *   ls`. Its pools are the ones the engine took from trellis's IPAM driver, or, with the engine's
 *   own IPAM, trellis pools of the same subnets (so trellis still refuses overlaps).
 * - `-o trellis.name=NAME` naming a network trellis made itself: the engine's network uses that
 *   network (same subnets required), so Docker containers and namespaces attached with `trellis
 *   network connect` share it. The engine's id maps to the name (state.ts).
 * - overlay mode: the cluster's overlay network of that name (created by the first engine, joined by
 *   the others), mapped by name the same way.
 * Calls are idempotent: the engine retries after a trellisd restart without knowing what happened.
 */
import { conflict, invalid, notFound } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import type { CreateNetworkInput } from "../daemon/inputs.js";
import { poolsOf } from "../daemon/lookup.js";
import type { NetworkManager } from "../daemon/networks.js";
import { canonicalAddress, canonicalCidr } from "../ipam/cidr.js";
import type { NetworkRecord, PoolRecord } from "../store/records.js";
import { isTrellisAddressSpace } from "./ipam.js";
import { type DockerNetworkOptions, defaultDockerNetworkName, parseDockerNetworkOptions } from "./options.js";
import type { CreateNetworkRequest, IpamData } from "./protocol.js";
import { PENDING_POOL_OWNER, type PluginState } from "./state.js";

const bare = (cidr: string) => (cidr === "" ? undefined : canonicalAddress(cidr.split("/")[0]!));
const short = (id: string) => id.slice(0, 12);

export interface DockerNetworksDeps {
  ctx: DaemonContext;
  networks: NetworkManager;
  state: PluginState;
  /** told about a new bridge network trellis had to name itself, to learn the engine's name */
  created?: (dockerNetworkId: string) => void;
  /** forgets endpoints the engine never deleted (its DeleteEndpoint failed while trellisd was down) */
  dropLeftovers(net: NetworkRecord, dockerNetworkId: string): Promise<void>;
}

export class DockerNetworks {
  constructor(private readonly deps: DockerNetworksDeps) {}

  /** The trellis network behind an engine's network id; a clear error when there is none. */
  resolve(dockerNetworkId: string): NetworkRecord {
    const net = this.find(dockerNetworkId);
    if (net) return net;
    throw notFound(
      `network ${short(dockerNetworkId)} is unknown to trellis (was trellis's state dir reset?): ` +
        "remove it with docker network rm and create it again",
    );
  }

  private find(dockerNetworkId: string): NetworkRecord | undefined {
    const { store } = this.deps.ctx;
    const name = this.deps.state.networkOf(dockerNetworkId);
    return name === undefined ? store.getNetwork(dockerNetworkId) : store.findNetworkByName(name);
  }

  async create(req: CreateNetworkRequest): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(req.networkId)) throw invalid(`invalid NetworkID "${req.networkId}"`);
    const opts = parseDockerNetworkOptions(req.generic, req.networkId);
    if (this.find(req.networkId)) return; // a retry of a create that went through
    const trellisIpam = [...req.ipv4, ...req.ipv6].some((d) => isTrellisAddressSpace(d.addressSpace));
    const existing = this.deps.ctx.store.findNetworkByName(opts.name);
    if (existing && !existing.docker) this.adopt(req, opts, existing, trellisIpam);
    else if (opts.mode === "overlay") await this.createOverlay(req, opts, trellisIpam);
    else {
      await this.createBridge(req, opts, trellisIpam);
      if (opts.name === defaultDockerNetworkName(req.networkId)) this.deps.created?.(req.networkId);
    }
    this.deps.ctx.log.info(
      { dockerNetworkId: req.networkId, name: opts.name, mode: opts.mode, trellisIpam },
      "docker: network created",
    );
  }

  private input(req: CreateNetworkRequest, opts: DockerNetworkOptions): CreateNetworkInput {
    return {
      name: opts.name,
      driver: opts.mode,
      internal: req.internal,
      enableIPv6: req.enableIPv6,
      ipamDriver: "default",
      ipamConfigs: [],
      options: opts.driverOptions,
      labels: {},
    };
  }

  private async createBridge(req: CreateNetworkRequest, opts: DockerNetworkOptions, trellisIpam: boolean) {
    const input = this.input(req, opts);
    const data = [...req.ipv4, ...req.ipv6];
    if (trellisIpam) {
      const pools = data.map((d) => this.pendingPool(d.pool).id);
      await this.deps.networks.create(input, { id: req.networkId, pools, docker: { ipam: "trellis" } });
      return;
    }
    input.ipamConfigs = data.map((d) => ({
      subnet: d.pool,
      ...(d.gateway ? { gateway: bare(d.gateway) } : {}),
    }));
    await this.deps.networks.create(input, { id: req.networkId, docker: { ipam: "engine" } });
    this.reserveAuxAddresses(req.networkId, data);
  }

  /** `--aux-address`es the engine's own IPAM set aside: trellis must not hand them out either. */
  private reserveAuxAddresses(networkId: string, data: IpamData[]) {
    const { store, ipam } = this.deps.ctx;
    const net = store.getNetwork(networkId)!;
    const pools = poolsOf(store, net);
    store.transaction(() => {
      for (const d of data) {
        const pool = pools.find((p) => p.subnet === canonicalCidr(d.pool));
        for (const [name, cidr] of Object.entries(d.auxAddresses)) {
          if (pool) ipam.requestAddress(pool.id, { owner: `aux:${name}`, address: bare(cidr)! });
        }
      }
    });
  }

  private async createOverlay(req: CreateNetworkRequest, opts: DockerNetworkOptions, trellisIpam: boolean) {
    const { ctx, state, networks } = this.deps;
    this.checkOverlayIpam(req, trellisIpam);
    const data = req.ipv4[0]!;
    const subnet = canonicalCidr(data.pool);
    const gateway = bare(data.gateway);
    // The first engine to create it: the overlay takes the subnet over from the pending pool.
    const pending = ctx.store.listPools(PENDING_POOL_OWNER).find((p) => p.subnet === subnet);
    if (pending) ctx.store.transaction(() => this.toAlias(pending, opts.name));
    const input = this.input(req, opts);
    input.ipamConfigs = [{ subnet, ...(gateway ? { gateway } : {}) }];
    await networks.create(input);
    state.setNetworkOf(req.networkId, opts.name);
  }

  private checkOverlayIpam(req: CreateNetworkRequest, trellisIpam: boolean) {
    if (!trellisIpam) {
      throw invalid(
        "an overlay network needs --ipam-driver trellis: the engine's own IPAM would hand out the same addresses on every host",
      );
    }
    if (req.ipv6.length > 0 || req.enableIPv6) throw invalid("overlay networks are IPv4-only (no --ipv6)");
    if (req.ipv4.length !== 1) throw invalid("an overlay network takes exactly one IPv4 subnet");
  }

  /**
   * The engine's network uses an existing trellis network (an overlay another engine or trellis
   * created, or a bridge network made with `trellis network create`): the engine must have been
   * given the same subnets and gateways, and the same kind of network.
   */
  private adopt(
    req: CreateNetworkRequest,
    opts: DockerNetworkOptions,
    net: NetworkRecord,
    trellisIpam: boolean,
  ) {
    const { store } = this.deps.ctx;
    if (net.driver !== opts.mode) {
      throw conflict(
        `network ${net.name} is a trellis ${net.driver} network: use -o trellis.mode=${net.driver}`,
      );
    }
    if (opts.mode === "overlay") this.checkOverlayIpam(req, trellisIpam);
    const extra = Object.keys(opts.driverOptions);
    if (extra.length > 0) throw invalid(`option "${extra[0]}" cannot change existing network ${net.name}`);
    if (req.internal !== net.internal) {
      throw conflict(
        `network ${net.name} is ${net.internal ? "" : "not "}internal: ${net.internal ? "add" : "drop"} --internal`,
      );
    }
    const pools = poolsOf(store, net);
    const wanted = pools
      .map((p) => `--subnet ${p.subnet}${p.gateway ? ` --gateway ${p.gateway}` : ""}`)
      .join(" ");
    const data = [...req.ipv4, ...req.ipv6];
    for (const d of data) {
      const pool = pools.find((p) => p.subnet === canonicalCidr(d.pool));
      const gateway = bare(d.gateway);
      if (!pool || (gateway !== undefined && pool.gateway !== gateway)) {
        throw conflict(
          `network ${net.name} already exists with other addresses: create it on this engine with ${wanted}`,
        );
      }
    }
    store.transaction(() => {
      for (const d of data) {
        const pending = store.listPools(PENDING_POOL_OWNER).find((p) => p.subnet === canonicalCidr(d.pool));
        if (pending) this.toAlias(pending, net.name);
      }
      this.deps.state.setNetworkOf(req.networkId, net.name);
    });
  }

  private toAlias(pool: PoolRecord, network: string) {
    this.deps.ctx.ipam.releasePool(pool.id);
    this.deps.state.setPoolAlias(pool.id, network, pool.subnet);
  }

  /** The pool the engine took from trellis's IPAM for this subnet, not yet any network's. */
  private pendingPool(cidr: string): PoolRecord {
    const subnet = canonicalCidr(cidr);
    const { store } = this.deps.ctx;
    const pool = store.listPools(PENDING_POOL_OWNER).find((p) => p.subnet === subnet);
    if (pool) return pool;
    // The engine asked for exactly the subnet of a trellis network: IPAM handed out that network's pool.
    const holder = store.listNetworks().find((n) => poolsOf(store, n).some((p) => p.subnet === subnet));
    if (holder) {
      throw conflict(
        `subnet ${subnet} is trellis network ${holder.name}'s: add -o trellis.name=${holder.name} to use that network, or choose another subnet`,
      );
    }
    throw notFound(`no trellis address pool for subnet ${subnet} (was it requested from trellis?)`);
  }

  /**
   * Gives a bridge network the engine's name for it, when trellis had to make one up and the name
   * is free in trellis (a trellis network may hold it); the id stays the engine's.
   */
  rename(dockerNetworkId: string, name: string): void {
    const { store, log } = this.deps.ctx;
    const net = store.getNetwork(dockerNetworkId);
    if (!net?.docker || net.name !== defaultDockerNetworkName(dockerNetworkId)) return;
    const holder = store.findNetworkByName(name);
    if (holder) {
      log.info(
        { dockerNetworkId, name, holder: holder.id },
        "docker: network keeps its name, the engine's is taken",
      );
      return;
    }
    store.putNetwork({ ...net, name });
    log.info({ dockerNetworkId, name }, "docker: network named as in the engine");
  }

  async delete(dockerNetworkId: string): Promise<void> {
    const { ctx, state, networks } = this.deps;
    const net = this.find(dockerNetworkId);
    if (!net) {
      state.forgetNetwork(dockerNetworkId); // a retry, or a network removed through trellis
      return;
    }
    await this.deps.dropLeftovers(net, dockerNetworkId);
    if (net.docker) {
      await networks.remove(net.id, { byEngine: true });
    } else {
      // An overlay or an adopted network is not the engine's: other engines, or namespaces trellis
      // attached, may use it. The engine lets go of it only; `trellis network rm` removes it.
      state.forgetNetwork(dockerNetworkId);
    }
    ctx.log.info({ dockerNetworkId, name: net.name }, "docker: network deleted");
  }
}
