/**
 * The overlay driver. An overlay network is defined once in the cluster table ("net" keyspace) and
 * materialised on every host as a bridge (the anycast gateway, egress NAT like a bridge network)
 * plus a VXLAN device on it. Each host announces its own endpoints ("ep:<net>" keyspace) and
 * programs one FDB and one neighbour entry per endpoint of every OTHER host; nothing is learned
 * or flooded. Addresses come from blocks this host owns (address-blocks.ts).
 */
import { conflict, exhausted, forbidden, invalid, messageOf } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import { newId } from "../daemon/ids.js";
import type { CreateNetworkInput, NetworkView } from "../daemon/inputs.js";
import { KeyedLock } from "../daemon/keyed-lock.js";
import { poolsOf, viewOf } from "../daemon/lookup.js";
import type { NetworkManager, OverlayDriverHooks } from "../daemon/networks.js";
import { canonicalCidr, formatAddress, overlaps, parseCidr } from "../ipam/cidr.js";
import type { EndpointRecord, NetworkRecord, PoolRecord } from "../store/records.js";
import { AddressBlocks, blockBitsFor } from "./address-blocks.js";
import {
  epKeyspace,
  NET_KEYSPACE,
  type OverlayEndpointEntry,
  type OverlayNetworkSpec,
  readEndpoint,
  readNetworkSpec,
} from "./catalog.js";
import type { Cluster } from "./cluster.js";
import { desiredVxlan, overlayBridgeName, overlayMtu, type RemoteEndpoint, vniFor } from "./desired.js";
import type { TableEntry } from "./gossip/index.js";
import { VxlanProgrammer } from "./vxlan-programmer.js";

/** How long a connect waits for the cluster to grant an address block. */
const BLOCK_WAIT_MS = 5000;
/**
 * Endpoints of a host declared dead stay programmed this long: a daemon restart (upgrade, crash)
 * that outlasts failure detection must not flap every other host's data plane. Entries of a host
 * that left gracefully, or that its host deleted, go at once.
 */
const DEAD_HOLD_DOWN_MS = 5000;

export class OverlayManager implements OverlayDriverHooks {
  readonly blocks: AddressBlocks;
  private readonly vxlan: VxlanProgrammer;
  private readonly vxIndexes = new Map<string, number>();
  private readonly pendingSync = new Map<string, Promise<void>>();
  private readonly inflight = new Map<string, number>();
  private readonly lock = new KeyedLock();
  /** what each network's last sync programmed, by endpoint id */
  private readonly programmed = new Map<string, Map<string, RemoteEndpoint>>();
  /** endpoints of dead hosts still programmed until `until` (see DEAD_HOLD_DOWN_MS) */
  private readonly held = new Map<string, Map<string, { remote: RemoteEndpoint; until: number }>>();
  private auditTimer: NodeJS.Timeout | undefined;
  /** FDB/neighbour entries the audit found missing or wrong and put right */
  repairs = 0;
  /** told about every other host's endpoint as it appears and goes (the embedded DNS listens) */
  remoteListener: RemoteEndpointListener | undefined;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly networks: NetworkManager,
    readonly cluster: Cluster,
    /** ms between FDB/neighbour audits; 0 disables them */
    private readonly auditIntervalMs = 10_000,
  ) {
    this.blocks = new AddressBlocks(cluster, ctx.store);
    this.vxlan = new VxlanProgrammer(ctx.kernel);
  }

  private get table() {
    return this.cluster.node.table;
  }

  async start(): Promise<void> {
    this.table.on("change", (ev) => this.onTableChange(ev));
    this.cluster.node.on("member", () => this.onMembersChanged());
    this.ctx.events.on("endpoint-connected", (ep) => this.announce(ep));
    this.ctx.events.on("endpoint-disconnected", (ep) => this.withdraw(ep));
    // Re-announce what this host holds: the table may predate our restart or have lost it.
    for (const net of this.ctx.store.listNetworks()) {
      if (net.driver !== "overlay") continue;
      const entry = this.table.get(NET_KEYSPACE, net.name);
      if (entry === undefined) this.table.set(NET_KEYSPACE, net.name, { ...this.specOf(net) });
      else if (entry.deleted && this.cluster.stateOf(entry.owner) === "alive") {
        await this.removeLocal(net).catch((err) => this.warn(net.id, err, "remove deleted overlay"));
        continue;
      }
      this.blocks.reassert(net);
      for (const ep of this.ctx.store.listEndpoints(net.id)) if (ep.state === "active") this.announce(ep);
    }
    for (const e of this.table.entries(NET_KEYSPACE)) {
      const spec = readNetworkSpec(e);
      if (spec) await this.applySpec(spec).catch((err) => this.warn(spec.id, err, "materialise overlay"));
    }
    for (const net of this.ctx.store.listNetworks()) {
      if (net.driver !== "overlay") continue;
      for (const r of this.remoteEndpoints(net.id)) this.remoteListener?.appeared(r.id, r);
    }
    if (this.auditIntervalMs > 0) {
      this.auditTimer = setInterval(() => void this.audit(), this.auditIntervalMs);
      this.auditTimer.unref();
    }
  }

  stop(): void {
    if (this.auditTimer) clearInterval(this.auditTimer);
  }

  private warn(networkId: string, err: unknown, what: string) {
    this.ctx.log.warn({ networkId, err: messageOf(err) }, `overlay: ${what} failed`);
  }

  // ------------------------------------------------------------------ networks

  async create(input: CreateNetworkInput): Promise<NetworkView> {
    if (input.enableIPv6) throw invalid("overlay networks are IPv4-only for now (no --ipv6)");
    if (input.ipamDriver !== "default") throw invalid(`unknown IPAM driver "${input.ipamDriver}"`);
    if (input.ipamConfigs.length > 1) throw invalid("an overlay network takes one --subnet");
    const unknown = Object.keys(input.options);
    if (unknown.length > 0) throw invalid(`unknown option "${unknown[0]}" for the overlay driver`);
    const existing = readNetworkSpec(this.table.get(NET_KEYSPACE, input.name) ?? deletedEntry());
    if (existing) throw conflict(`network with name ${input.name} already exists in the cluster`);
    const config = input.ipamConfigs[0] ?? {};
    if (config.ipRange !== undefined) throw invalid("--ip-range is not supported on overlay networks");
    const subnet = config.subnet !== undefined ? canonicalCidr(config.subnet) : this.pickSubnet();
    this.checkSubnet(subnet);
    const parsed = parseCidr(subnet);
    if (parsed.family !== 4 || parsed.prefixLen > 28) {
      throw invalid(`overlay subnet ${subnet} must be IPv4 and at least a /28`);
    }
    const gateway = config.gateway ?? formatAddress(4, parsed.network + 1n);
    const id = newId();
    const spec: OverlayNetworkSpec = {
      id,
      name: input.name,
      subnet,
      gateway,
      vni: this.pickVni(id),
      blockBits: blockBitsFor(subnet),
      internal: input.internal,
      options: {},
      labels: input.labels,
      created: new Date().toISOString(),
    };
    this.table.set(NET_KEYSPACE, spec.name, { ...spec });
    await this.applySpec(spec);
    this.ctx.log.info({ networkId: id, name: spec.name, subnet, vni: spec.vni }, "overlay network created");
    return viewOf(this.ctx.store, this.ctx.store.getNetwork(id)!);
  }

  /** Subnets of every overlay network known to the cluster and of this host's networks. */
  private usedSubnets(): Array<{ subnet: string; name: string }> {
    const used = this.table
      .entries(NET_KEYSPACE)
      .map(readNetworkSpec)
      .filter((s): s is OverlayNetworkSpec => s !== undefined)
      .map((s) => ({ subnet: s.subnet, name: s.name }));
    for (const pool of this.ctx.store.listPools()) used.push({ subnet: pool.subnet, name: pool.owner });
    return used;
  }

  private checkSubnet(subnet: string) {
    const clash = this.usedSubnets().find((u) => overlaps(u.subnet, subnet));
    if (clash) throw conflict(`subnet ${subnet} overlaps ${clash.subnet} of network ${clash.name}`);
  }

  /** Like Docker swarm's default address pool: 10.0.0.0/8 in /24s. */
  private pickSubnet(): string {
    const used = this.usedSubnets();
    for (let i = 0; i < 65536; i++) {
      const candidate = `10.${i >> 8}.${i & 255}.0/24`;
      if (!used.some((u) => overlaps(u.subnet, candidate))) return candidate;
    }
    throw exhausted("no free /24 left in 10.0.0.0/8 for an overlay network");
  }

  private pickVni(id: string): number {
    const taken = new Set(
      this.table
        .entries(NET_KEYSPACE)
        .map(readNetworkSpec)
        .map((s) => s?.vni),
    );
    for (let attempt = 0; ; attempt++) {
      const vni = vniFor(id, attempt);
      if (!taken.has(vni)) return vni;
    }
  }

  private specOf(net: NetworkRecord): OverlayNetworkSpec {
    const pool = poolsOf(this.ctx.store, net)[0]!;
    return {
      id: net.id,
      name: net.name,
      subnet: pool.subnet,
      gateway: pool.gateway!,
      vni: net.overlay!.vni,
      blockBits: net.overlay!.blockBits,
      internal: net.internal,
      options: net.options,
      labels: net.labels,
      created: net.created,
    };
  }

  /** Makes this host hold the network the cluster defines (bridge, VXLAN, remote entries). */
  private applySpec(spec: OverlayNetworkSpec): Promise<void> {
    // table events and the API may both apply the same network at once: one at a time per name
    return this.lock.run(spec.name, () => this.applySpecLocked(spec));
  }

  private async applySpecLocked(spec: OverlayNetworkSpec): Promise<void> {
    const { store } = this.ctx;
    const sameName = store.findNetworkByName(spec.name);
    if (sameName && sameName.id !== spec.id) {
      // Two hosts created the name at once: the table's winner is the network; ours goes.
      if (store.countEndpoints(sameName.id) > 0) {
        this.ctx.log.error({ name: spec.name }, "overlay name conflict with local endpoints attached");
        return;
      }
      await this.removeLocalLocked(sameName);
    }
    const underlay = await this.underlay();
    const record: NetworkRecord = {
      id: spec.id,
      name: spec.name,
      driver: "overlay",
      created: spec.created,
      internal: spec.internal,
      enableIPv6: false,
      options: spec.options,
      labels: spec.labels,
      poolIds: [],
      bridge: {
        bridgeName: overlayBridgeName(spec.id),
        mtu: overlayMtu(underlay.mtu),
        icc: true,
        masquerade: true,
      },
      overlay: { vni: spec.vni, blockBits: spec.blockBits },
    };
    await this.networks.materialize(record, { subnet: spec.subnet, gateway: spec.gateway });
    const net = store.getNetwork(spec.id)!;
    const desired = desiredVxlan({
      networkId: net.id,
      vni: spec.vni,
      local: this.cluster.advertiseAddr,
      mtu: net.bridge.mtu,
      remotes: [],
    });
    const index = await this.vxlan.ensureDevice(
      desired,
      await this.networks.bridgeIndex(net),
      underlay.index,
    );
    this.vxIndexes.set(net.id, index);
    await this.sync(net.id);
  }

  /** The link holding the advertise address: the VTEP's device and MTU. */
  private async underlay(): Promise<{ index: number; mtu: number }> {
    const host = this.ctx.kernel.host();
    const addr = (await host.listAddresses(4)).find((a) => a.address === this.cluster.advertiseAddr);
    if (!addr) throw invalid(`--advertise-addr ${this.cluster.advertiseAddr} is not an address of this host`);
    const link = (await host.listLinks()).find((l) => l.index === addr.index);
    return { index: addr.index, mtu: link?.mtu ?? 1500 };
  }

  async remove(net: NetworkRecord): Promise<void> {
    // Hosts' mesh addresses go with the services that needed them; they never hold a network.
    const endpoints = this.table
      .entries(epKeyspace(net.id))
      .map(readEndpoint)
      .filter((e): e is OverlayEndpointEntry => e !== undefined && !e.mesh);
    const local = this.ctx.store.listEndpoints(net.id);
    if (endpoints.length > 0 || local.length > 0) {
      const names = [
        ...new Set([...local.map((e) => e.name), ...endpoints.map((e) => `${e.name}@${e.node}`)]),
      ];
      throw forbidden(
        `network ${net.name} has ${names.length} connected endpoint(s) in the cluster (${names.join(", ")}): disconnect them first`,
      );
    }
    this.table.delete(NET_KEYSPACE, net.name);
    await this.removeLocal(net);
    this.ctx.log.info({ networkId: net.id, name: net.name }, "overlay network removed");
  }

  private removeLocal(net: NetworkRecord): Promise<void> {
    return this.lock.run(net.name, () => this.removeLocalLocked(net));
  }

  private async removeLocalLocked(net: NetworkRecord): Promise<void> {
    if (!this.ctx.store.getNetwork(net.id)) return;
    this.vxIndexes.delete(net.id);
    await this.vxlan.removeDevice(`vx-${net.id.slice(0, 12)}`);
    this.blocks.forget(net.id);
    await this.networks.dematerialize(net);
  }

  private onTableChange(ev: TableEntry): void {
    if (ev.keyspace === NET_KEYSPACE) void this.onNetworkEntry(ev);
    else if (ev.keyspace.startsWith("ep:")) this.onEndpointEntry(ev);
    else if (ev.keyspace.startsWith("ipam:")) this.stepBlocks(ev.keyspace.slice(5));
  }

  private onEndpointEntry(ev: TableEntry): void {
    const networkId = ev.keyspace.slice(3);
    if (ev.owner !== this.cluster.self && this.remoteListener) {
      const entry = readEndpoint(ev);
      if (entry) this.remoteListener.appeared(ev.key, entry);
      else this.remoteListener.gone(ev.key);
    }
    const state = this.cluster.stateOf(ev.owner);
    const last = this.programmed.get(networkId)?.get(ev.key);
    if (ev.deleted && last && (state === "dead" || state === "suspect")) {
      const held = this.held.get(networkId) ?? new Map();
      held.set(ev.key, { remote: last, until: Date.now() + DEAD_HOLD_DOWN_MS });
      this.held.set(networkId, held);
      setTimeout(() => this.scheduleSync(networkId), DEAD_HOLD_DOWN_MS + 10).unref();
    } else {
      this.held.get(networkId)?.delete(ev.key);
    }
    this.scheduleSync(networkId);
  }

  private async onNetworkEntry(ev: TableEntry): Promise<void> {
    const spec = readNetworkSpec(ev);
    if (spec) {
      await this.applySpec(spec).catch((err) => this.warn(spec.id, err, "materialise overlay"));
      return;
    }
    const local = this.ctx.store.findNetworkByName(ev.key);
    if (local?.driver !== "overlay") return;
    const ownerState = this.cluster.stateOf(ev.owner);
    if (ownerState === "alive") {
      // a real delete by a live member
      if (this.ctx.store.countEndpoints(local.id) === 0) {
        await this.removeLocal(local).catch((err) => this.warn(local.id, err, "remove overlay"));
      }
      return;
    }
    // The member that last wrote the definition died or left: the network lives on; adopt it.
    this.table.set(NET_KEYSPACE, local.name, { ...this.specOf(local) });
  }

  private onMembersChanged(): void {
    for (const net of this.ctx.store.listNetworks()) {
      if (net.driver === "overlay") this.stepBlocks(net.id);
    }
  }

  // ------------------------------------------------------------------ endpoints and entries

  private announce(ep: EndpointRecord): void {
    const net = this.ctx.store.getNetwork(ep.networkId);
    if (net?.driver !== "overlay") return;
    const entry: OverlayEndpointEntry = {
      networkId: net.id,
      containerId: ep.containerId,
      name: ep.name,
      aliases: ep.aliases,
      ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}),
      mac: ep.mac,
      vtep: this.cluster.advertiseAddr,
      node: this.cluster.self,
    };
    this.table.set(epKeyspace(net.id), ep.id, { ...entry });
  }

  private withdraw(ep: EndpointRecord): void {
    const net = this.ctx.store.getNetwork(ep.networkId);
    if (net?.driver !== "overlay") return;
    this.table.delete(epKeyspace(net.id), ep.id);
  }

  /** Endpoints of other hosts on an overlay network, as the table has them now. */
  remoteEndpoints(networkId: string): Array<OverlayEndpointEntry & { id: string }> {
    return this.table
      .entries(epKeyspace(networkId))
      .filter((e) => e.owner !== this.cluster.self)
      .map((e) => ({ id: e.key, entry: readEndpoint(e) }))
      .filter((x): x is { id: string; entry: OverlayEndpointEntry } => x.entry !== undefined)
      .map((x) => ({ ...x.entry, id: x.id }));
  }

  private scheduleSync(networkId: string): void {
    if (this.pendingSync.has(networkId)) return;
    const run = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        await this.sync(networkId);
      })
      .catch((err) => this.warn(networkId, err, "FDB sync"))
      .finally(() => this.pendingSync.delete(networkId));
    this.pendingSync.set(networkId, run);
  }

  /** Programs exactly the remote endpoints' FDB and neighbour entries; returns the changes made. */
  async sync(networkId: string): Promise<number> {
    const net = this.ctx.store.getNetwork(networkId);
    const index = this.vxIndexes.get(networkId);
    if (!net?.overlay || index === undefined) return 0;
    const remotes: RemoteEndpoint[] = this.remoteEndpoints(networkId).map((r) => ({
      endpointId: r.id,
      node: r.node,
      vtep: r.vtep,
      mac: r.mac,
      ...(r.ipv4 ? { ipv4: r.ipv4.split("/")[0]! } : {}),
    }));
    const now = Date.now();
    for (const [id, h] of this.held.get(networkId) ?? []) {
      if (h.until <= now) this.held.get(networkId)?.delete(id);
      else if (!remotes.some((r) => r.endpointId === id)) remotes.push(h.remote);
    }
    this.programmed.set(networkId, new Map(remotes.map((r) => [r.endpointId, r])));
    const desired = desiredVxlan({
      networkId,
      vni: net.overlay.vni,
      local: this.cluster.advertiseAddr,
      mtu: net.bridge.mtu,
      remotes,
    });
    const r = await this.vxlan.sync(index, desired);
    return r.added + r.removed;
  }

  vxlanIndex(networkId: string): number | undefined {
    return this.vxIndexes.get(networkId);
  }

  observe(index: number) {
    return this.vxlan.observe(index);
  }

  /** Compares every overlay network's kernel entries with the table and repairs drift. */
  async audit(): Promise<number> {
    let repaired = 0;
    for (const net of this.ctx.store.listNetworks()) {
      if (net.driver !== "overlay") continue;
      try {
        repaired += await this.sync(net.id);
      } catch (err) {
        this.warn(net.id, err, "audit");
      }
    }
    if (repaired > 0) {
      this.repairs += repaired;
      this.ctx.log.warn({ repaired, total: this.repairs }, "overlay audit repaired FDB/neighbour drift");
    }
    return repaired;
  }

  // ------------------------------------------------------------------ addresses

  private stepBlocks(networkId: string): void {
    const net = this.ctx.store.getNetwork(networkId);
    if (!net?.overlay) return;
    try {
      this.blocks.step(net, (this.inflight.get(networkId) ?? 0) > 0 && this.needsBlock(net));
    } catch (err) {
      this.warn(networkId, err, "address block step");
    }
  }

  private needsBlock(net: NetworkRecord): boolean {
    const pool = poolsOf(this.ctx.store, net)[0];
    return pool !== undefined && this.blocks.freeCount(net, pool) < (this.inflight.get(net.id) ?? 0);
  }

  /**
   * Waits until this host owns enough free addresses for the connects in flight on the network,
   * claiming blocks from the cluster as needed. Call `done()` when the connect finished.
   */
  async reserveCapacity(net: NetworkRecord): Promise<() => void> {
    this.inflight.set(net.id, (this.inflight.get(net.id) ?? 0) + 1);
    const done = () => this.inflight.set(net.id, Math.max(0, (this.inflight.get(net.id) ?? 1) - 1));
    const deadline = Date.now() + BLOCK_WAIT_MS;
    while (this.needsBlock(net)) {
      this.blocks.step(net, true);
      if (!this.needsBlock(net)) break;
      if (Date.now() > deadline) {
        done();
        const members = this.blocks.electorate().size;
        throw exhausted(
          `no free address on network ${net.name} on this host and no new address block granted within ` +
            `${BLOCK_WAIT_MS / 1000} s: a block needs the acknowledgement of a majority of the ${members} ` +
            "cluster members (is this host partitioned, or the subnet full?)",
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return done;
  }

  /** An address for a new endpoint (inside the caller's store transaction). */
  pickAddress(net: NetworkRecord, pool: PoolRecord, requested: string | undefined): string {
    if (requested !== undefined) {
      if (!this.blocks.ownsAddress(net, pool, requested)) {
        throw conflict(
          `address ${requested} lies in an address block this host does not own on network ${net.name}`,
        );
      }
      return requested;
    }
    const address = this.blocks.pick(net, pool);
    if (address === undefined)
      throw exhausted(`no free address left in this host's blocks of network ${net.name}`);
    return address;
  }
}

export interface RemoteEndpointListener {
  appeared(endpointId: string, entry: OverlayEndpointEntry): void;
  gone(endpointId: string): void;
}

export interface OverlayDebug {
  Network: string;
  Id: string;
  Vni: number;
  Vxlan: string;
  Node: string;
  Fdb: Array<{ mac: string; dst: string }>;
  Neighbours: Array<{ address: string; mac: string }>;
  Table: Array<{ endpointId: string; name: string; node: string; ipv4?: string; mac: string; vtep: string }>;
  AuditRepairs: number;
}

/** What `trellis debug overlay NET` prints: kernel entries next to the table they came from. */
export async function debugOverlay(
  m: OverlayManager,
  net: NetworkRecord,
  index: number | undefined,
): Promise<OverlayDebug> {
  const kernel = index === undefined ? { fdb: [], neighbours: [] } : await m.observe(index);
  return {
    Network: net.name,
    Id: net.id,
    Vni: net.overlay?.vni ?? 0,
    Vxlan: `vx-${net.id.slice(0, 12)}`,
    Node: m.cluster.self,
    Fdb: kernel.fdb,
    Neighbours: kernel.neighbours,
    Table: m.remoteEndpoints(net.id).map((r) => ({
      endpointId: r.id,
      name: r.name,
      node: r.node,
      ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
      mac: r.mac,
      vtep: r.vtep,
    })),
    AuditRepairs: m.repairs,
  };
}

function deletedEntry(): TableEntry {
  return { keyspace: NET_KEYSPACE, key: "", value: undefined, owner: "", lamport: 0, deleted: true };
}
