/**
 * Services: definitions, VIPs, backends and health, and keeping this host's data plane equal to
 * them. The store holds every service this host knows and the backends it runs; in a cluster the
 * replicated table carries definitions ("svc") and every host's backends ("be:<id>"), and this host
 * mirrors definitions into its store (a restart starts from them) and programs every live host's
 * backends. Every change ends in one reconcile pass (sync) that computes the desired state from
 * scratch (desired.ts) and applies only the difference: VIP map elements, bridge /32s, firewall sets,
 * DNS answers.
 */
import { conflict, forbidden, invalid, messageOf, notFound } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import { samePort } from "../daemon/endpoints.js";
import { containerIdOf, newId } from "../daemon/ids.js";
import { KeyedLock } from "../daemon/keyed-lock.js";
import { findNetwork, poolsOf } from "../daemon/lookup.js";
import type { DnsServiceEntry } from "../dns/services.js";
import type { TableEntry } from "../overlay/gossip/index.js";
import type { OverlayManager } from "../overlay/manager.js";
import type { BackendRecord, NetworkRecord, PoolRecord } from "../store/records.js";
import {
  type BackendEntry,
  BE_PREFIX,
  beKeyspace,
  readBackend,
  readServiceSpec,
  SVC_KEYSPACE,
  specValue,
} from "./catalog.js";
import { desiredServices, type LocalNetwork, meshNetworks } from "./desired.js";
import { HealthChecker } from "./health.js";
import { ServiceLinks } from "./links.js";
import { MeshPorts } from "./mesh-ports.js";
import type { ServiceProgrammer } from "./programmer.js";
import {
  type BackendHealth,
  type CreateServiceInput,
  SERVICE_NAME,
  type ServiceOperations,
  type ServiceSpec,
  type ServiceView,
} from "./spec.js";
import { viewOfService } from "./view.js";

/** What services need of the embedded DNS (lib/dns/service.ts). */
export interface ServiceDns {
  setService(entry: DnsServiceEntry): void;
  removeService(id: string): void;
}

export interface ServiceManagerOptions {
  dns: ServiceDns;
  programmer: ServiceProgrammer;
  /** ms between active health probes (`--health-tcp`) */
  healthIntervalMs?: number;
}

const vipOwner = (serviceId: string) => `service:${serviceId}`;
const RETRY_MS = 1000;

export class ServiceManager implements ServiceOperations {
  /** set before start() when the daemon is in a cluster */
  overlay: OverlayManager | undefined;
  private readonly links: ServiceLinks;
  private mesh: MeshPorts | undefined;
  private readonly health: HealthChecker;
  private readonly lock = new KeyedLock();
  private readonly unitIds = new Map<string, number>();
  private nextUnit = 0;
  private readonly dnsIds = new Set<string>();
  /** whether the VIP table may exist in the kernel (so an empty state deletes it once) */
  private tableMayExist = true;
  private requested = 0;
  private applied = 0;
  private running: Promise<void> | undefined;
  private readonly waiters: Array<{ gen: number; resolve: () => void; reject: (e: unknown) => void }> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private lastConflicts = "";

  constructor(
    private readonly ctx: DaemonContext,
    private readonly opts: ServiceManagerOptions,
  ) {
    this.links = new ServiceLinks(ctx.kernel);
    this.health = new HealthChecker(
      () => this.probeTargets(),
      (key, health) => this.onHealthChange(key, health),
      opts.healthIntervalMs ?? 1000,
    );
  }

  private get self(): string {
    return this.overlay?.cluster.self ?? "local";
  }

  private get table() {
    return this.overlay?.cluster.node.table;
  }

  /** Whether a service travels in the cluster table: it has an overlay network and there is a cluster. */
  private gossiped(spec: ServiceSpec): boolean {
    if (!this.overlay) return false;
    return spec.networks.some((n) => this.ctx.store.getNetwork(n.networkId)?.driver === "overlay");
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    const { store, events } = this.ctx;
    if (this.overlay) this.mesh = new MeshPorts(this.ctx, this.links, this.overlay);
    events.on("endpoint-disconnected", (ep) => this.dropEndpoint(ep.id));
    events.on("network-created", () => this.onNetworksChanged());
    events.on("network-removed", () => this.onNetworksChanged());
    const table = this.table;
    if (table && this.overlay) {
      table.on("change", (ev) => this.onTableChange(ev));
      this.overlay.cluster.node.on("member", () => this.schedule());
      for (const spec of store.listServices()) {
        if (!this.gossiped(spec)) continue;
        const entry = table.get(SVC_KEYSPACE, spec.name);
        if (entry === undefined) table.set(SVC_KEYSPACE, spec.name, specValue(spec));
        else if (entry.deleted && this.overlay.cluster.stateOf(entry.owner) === "alive")
          this.forgetLocally(spec, "deleted in the cluster while this host was down");
      }
      for (const e of table.entries(SVC_KEYSPACE)) this.adopt(e);
    }
    for (const spec of store.listServices()) this.reserveVips(spec);
    for (const b of store.listBackends()) this.announce(b);
    this.health.start();
    await this.syncNow();
  }

  stop(): void {
    this.health.stop();
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  // ------------------------------------------------------------------ operations

  async createService(input: CreateServiceInput): Promise<ServiceView> {
    return this.lock.run(`name:${input.name}`, () => this.createLocked(input));
  }

  private async createLocked(input: CreateServiceInput): Promise<ServiceView> {
    const { store, ipam } = this.ctx;
    if (!SERVICE_NAME.test(input.name)) throw invalid(`invalid service name "${input.name}"`);
    if (input.networks.length === 0) throw invalid("a service needs at least one --network");
    const nets: NetworkRecord[] = [];
    for (const ref of input.networks) {
      const net = findNetwork(store, ref);
      if (nets.some((n) => n.id === net.id)) throw invalid(`network ${net.name} is given twice`);
      if (net.driver === "overlay" && !this.overlay) throw invalid(`network ${net.name} needs a cluster`);
      nets.push(net);
    }
    this.checkName(input.name);
    this.checkPorts(input);
    const id = newId();
    const vipMode = input.endpointMode === "vip";
    const releases: Array<() => void> = [];
    let spec: ServiceSpec;
    try {
      for (const net of nets) {
        if (vipMode && net.driver === "overlay" && this.overlay)
          releases.push(await this.overlay.reserveCapacity(net));
      }
      spec = store.transaction(() => {
        const networks = nets.map((net) => {
          if (!vipMode) return { networkId: net.id };
          const pool = this.v4Pool(net);
          const pick = net.driver === "overlay" ? this.overlay?.pickAddress(net, pool, undefined) : undefined;
          const vip = ipam.requestAddress(pool.id, {
            owner: vipOwner(id),
            ...(pick ? { address: pick } : {}),
          });
          return { networkId: net.id, vip };
        });
        const created: ServiceSpec = {
          id,
          name: input.name,
          networks,
          endpointMode: input.endpointMode,
          ports: input.ports.map((p) => ({ ...p })),
          affinity: input.affinity,
          ...(input.healthTcp !== undefined ? { healthTcp: input.healthTcp } : {}),
          labels: { ...input.labels },
          created: new Date().toISOString(),
        };
        store.putService(created);
        return created;
      });
    } finally {
      for (const release of releases) release();
    }
    if (this.gossiped(spec)) this.table?.set(SVC_KEYSPACE, spec.name, specValue(spec));
    try {
      await this.syncNow();
    } catch (err) {
      // Nothing half-done stays: the definition, its VIPs and the cluster's copy go again.
      this.forgetLocally(spec, "rolled back");
      if (this.gossiped(spec)) this.table?.delete(SVC_KEYSPACE, spec.name);
      await this.syncNow().catch(() => {});
      throw err;
    }
    this.ctx.log.info({ serviceId: id, name: spec.name }, "service created");
    return this.view(spec);
  }

  private checkName(name: string): void {
    if (this.ctx.store.findServiceByName(name)) throw conflict(`service ${name} already exists`);
    const entry = this.table?.get(SVC_KEYSPACE, name);
    if (entry && readServiceSpec(entry)) throw conflict(`service ${name} already exists in the cluster`);
  }

  private checkPorts(input: CreateServiceInput): void {
    const published = input.ports.some((p) => p.published !== undefined);
    const services = published ? this.ctx.store.listServices() : [];
    const endpoints = published ? this.ctx.store.listPublishingEndpoints() : [];
    const seen = new Set<string>();
    for (const p of input.ports) {
      if (p.published === undefined) continue;
      const key = `${p.published}/${p.proto}`;
      if (seen.has(key)) throw invalid(`port ${key} is published twice`);
      seen.add(key);
      if (input.endpointMode === "dnsrr" && p.mode === "ingress")
        throw invalid("port published with ingress mode can't be used with dnsrr mode");
      for (const other of services) {
        if (other.ports.some((q) => q.published === p.published && q.proto === p.proto))
          throw conflict(`port ${key} is already published by service ${other.name}`);
      }
      for (const ep of endpoints) {
        const mapping = { proto: p.proto, hostPort: p.published, containerPort: p.target };
        if (ep.publish.some((q) => samePort(mapping, q)))
          throw conflict(`port ${key} is already published by endpoint ${ep.name}`);
      }
    }
  }

  listServices(): ServiceView[] {
    return this.ctx.store.listServices().map((s) => this.view(s));
  }

  getService(ref: string): ServiceView {
    return this.view(this.find(ref));
  }

  async removeService(ref: string): Promise<void> {
    const spec = this.find(ref);
    await this.lock.run(`name:${spec.name}`, async () => {
      if (!this.ctx.store.getService(spec.id)) return;
      const gossiped = this.gossiped(spec);
      this.forgetLocally(spec, "removed");
      if (gossiped) this.table?.delete(SVC_KEYSPACE, spec.name);
      await this.syncNow();
    });
    this.ctx.log.info({ serviceId: spec.id, name: spec.name }, "service removed");
  }

  async addBackend(ref: string, container: string): Promise<ServiceView> {
    const spec = this.find(ref);
    const containerId = await this.containerIdOf(container);
    const { store } = this.ctx;
    const wanted = new Set(spec.networks.map((n) => n.networkId));
    const endpoints = store
      .listEndpointsOfContainer(containerId)
      .filter((ep) => wanted.has(ep.networkId) && ep.ipv4 && ep.state === "active");
    if (endpoints.length === 0) {
      const names = spec.networks.map((n) => store.getNetwork(n.networkId)?.name ?? n.networkId.slice(0, 12));
      throw invalid(
        `container ${container} is not connected to a network of service ${spec.name} (${names.join(", ")}) ` +
          `on this host: connect it first, e.g. trellis network connect --service ${spec.name} ${names[0]} ${container}`,
      );
    }
    const records: BackendRecord[] = endpoints.map((ep) => ({
      serviceId: spec.id,
      endpointId: ep.id,
      networkId: ep.networkId,
      containerId,
      name: ep.name,
      ip: ep.ipv4!.slice(0, ep.ipv4!.indexOf("/")),
    }));
    store.transaction(() => {
      for (const r of records) store.putBackend(r);
    });
    for (const r of records) this.announce(r);
    if (spec.healthTcp !== undefined) await this.health.round();
    await this.syncNow();
    return this.view(spec);
  }

  async removeBackend(ref: string, container: string): Promise<ServiceView> {
    const spec = this.find(ref);
    const containerId = await this.containerIdOf(container);
    const mine = this.ctx.store.listBackends(spec.id).filter((b) => b.containerId === containerId);
    if (mine.length === 0) throw notFound(`container ${container} is not a backend of service ${spec.name}`);
    for (const b of mine) this.dropBackend(b);
    await this.syncNow();
    return this.view(spec);
  }

  private async containerIdOf(container: string): Promise<string> {
    const ns = await this.ctx.kernel.resolveNetns(container);
    try {
      return containerIdOf(ns);
    } finally {
      this.ctx.kernel.releaseNetns(ns);
    }
  }

  /** By full id, exact name, or unique id prefix (like networks). */
  private find(ref: string): ServiceSpec {
    const { store } = this.ctx;
    const found = store.getService(ref) ?? store.findServiceByName(ref);
    if (found) return found;
    if (/^[0-9a-f]+$/.test(ref)) {
      const matches = store.listServices().filter((s) => s.id.startsWith(ref));
      if (matches.length === 1) return matches[0]!;
      if (matches.length > 1)
        throw conflict(`service id prefix ${ref} is ambiguous (${matches.length} services)`);
    }
    throw notFound(`service ${ref} not found`);
  }

  /** Refuses to remove a network a service still uses (its VIP lives there). */
  checkNetworkRemovable(net: NetworkRecord): void {
    const users = this.ctx.store.listServices().filter((s) => s.networks.some((n) => n.networkId === net.id));
    if (users.length > 0)
      throw forbidden(
        `network ${net.name} is used by service(s) ${users.map((s) => s.name).join(", ")}: remove them first`,
      );
  }

  // ------------------------------------------------------------------ backends and health

  private backendKey = (b: { serviceId: string; endpointId: string }) => `${b.serviceId}/${b.endpointId}`;

  private entryOf(b: BackendRecord, spec = this.ctx.store.getService(b.serviceId)): BackendEntry {
    return {
      ...b,
      node: this.self,
      health: this.health.healthOf(this.backendKey(b), spec?.healthTcp !== undefined),
    };
  }

  private announce(b: BackendRecord): void {
    const spec = this.ctx.store.getService(b.serviceId);
    if (!spec || !this.gossiped(spec)) return;
    this.table?.set(beKeyspace(b.serviceId), b.endpointId, { ...this.entryOf(b, spec) });
  }

  private dropBackend(b: BackendRecord): void {
    this.ctx.store.deleteBackend(b.serviceId, b.endpointId);
    this.health.forget(this.backendKey(b));
    const entry = this.table?.get(beKeyspace(b.serviceId), b.endpointId);
    if (entry && !entry.deleted && entry.owner === this.self)
      this.table?.delete(beKeyspace(b.serviceId), b.endpointId);
  }

  /** A disconnected endpoint stops being a backend everywhere at once. */
  private dropEndpoint(endpointId: string): void {
    const backends = this.ctx.store.backendsOfEndpoint(endpointId);
    if (backends.length === 0) return;
    for (const b of backends) this.dropBackend(b);
    this.schedule();
  }

  private probeTargets() {
    const out = [];
    for (const spec of this.ctx.store.listServices()) {
      if (spec.healthTcp === undefined) continue;
      for (const b of this.ctx.store.listBackends(spec.id))
        out.push({ key: this.backendKey(b), ip: b.ip, port: spec.healthTcp });
    }
    return out;
  }

  private onHealthChange(key: string, health: BackendHealth): void {
    const [serviceId, endpointId] = key.split("/") as [string, string];
    const b = this.ctx.store.listBackends(serviceId).find((x) => x.endpointId === endpointId);
    this.ctx.log.info({ serviceId, endpointId, health }, "service backend health changed");
    if (b) this.announce(b);
    this.schedule();
  }

  /** The backends of `specs` this host knows: its own (`local`, with their health) and the table's live ones. */
  private allBackends(specs: readonly ServiceSpec[], local: readonly BackendRecord[]): BackendEntry[] {
    const byId = new Map(specs.map((s) => [s.id, s]));
    const out = local.map((b) => this.entryOf(b, byId.get(b.serviceId)));
    const table = this.table;
    if (!table) return out;
    for (const spec of specs) {
      for (const e of table.entries(beKeyspace(spec.id))) {
        if (e.owner === this.self) continue;
        const entry = readBackend(e);
        // A suspect host still serves: only a host declared dead (or gone) loses its backends.
        const state = this.overlay?.cluster.stateOf(e.owner);
        if (entry && (state === "alive" || state === "suspect")) out.push(entry);
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ cluster table

  private onTableChange(ev: TableEntry): void {
    if (ev.keyspace === SVC_KEYSPACE) {
      this.adopt(ev);
      this.schedule();
    } else if (ev.keyspace.startsWith(BE_PREFIX)) {
      this.schedule();
    }
  }

  /** Mirrors one "svc" entry into the store: a new or changed definition, or a deletion. */
  private adopt(e: TableEntry): void {
    const { store } = this.ctx;
    const spec = readServiceSpec(e);
    const local = store.findServiceByName(e.key);
    if (spec) {
      if (local && local.id !== spec.id)
        this.forgetLocally(local, "lost its name to a service created elsewhere");
      if (JSON.stringify(store.getService(spec.id)) !== JSON.stringify(spec)) {
        try {
          store.putService(spec);
        } catch (err) {
          this.ctx.log.error(
            { name: spec.name, err: messageOf(err) },
            "services: cannot store a cluster service",
          );
          return;
        }
      }
      this.reserveVips(spec);
      return;
    }
    if (!e.deleted || !local || !this.gossiped(local)) return;
    const owner = this.overlay?.cluster.stateOf(e.owner);
    if (owner === "alive" || e.owner === this.self) {
      this.forgetLocally(local, "removed in the cluster");
    } else {
      // The member that last wrote the definition died or left: the service lives on; adopt it.
      this.table?.set(SVC_KEYSPACE, local.name, specValue(local));
    }
  }

  /** Drops a service from this host: its backends here, its VIP reservations, its record. */
  private forgetLocally(spec: ServiceSpec, why: string): void {
    const { store } = this.ctx;
    for (const b of store.listBackends(spec.id)) this.dropBackend(b);
    for (const n of spec.networks) {
      const net = n.vip ? store.getNetwork(n.networkId) : undefined;
      if (!net || !n.vip) continue;
      for (const pool of poolsOf(store, net)) {
        if (store.getAllocation(pool.id, n.vip)?.owner === vipOwner(spec.id))
          this.ctx.ipam.releaseAddress(pool.id, n.vip);
      }
    }
    store.deleteService(spec.id);
    this.ctx.log.info({ serviceId: spec.id, name: spec.name, why }, "service forgotten on this host");
  }

  /** Holds a service's VIPs in this host's IPAM, so no local endpoint is ever given one. */
  private reserveVips(spec: ServiceSpec): void {
    const { store, ipam } = this.ctx;
    for (const n of spec.networks) {
      const net = n.vip ? store.getNetwork(n.networkId) : undefined;
      if (!net || !n.vip) continue;
      const pool = this.v4Pool(net);
      const holder = store.getAllocation(pool.id, n.vip)?.owner;
      if (holder === vipOwner(spec.id)) continue;
      if (holder !== undefined) {
        this.ctx.log.error(
          { service: spec.name, vip: n.vip, holder },
          "services: the VIP is already allocated on this host",
        );
        continue;
      }
      try {
        ipam.requestAddress(pool.id, { owner: vipOwner(spec.id), address: n.vip });
      } catch (err) {
        this.ctx.log.error(
          { service: spec.name, vip: n.vip, err: messageOf(err) },
          "services: cannot reserve VIP",
        );
      }
    }
  }

  private v4Pool(net: NetworkRecord): PoolRecord {
    const pool = poolsOf(this.ctx.store, net).find((p) => p.family === 4);
    if (!pool) throw invalid(`network ${net.name} has no IPv4 subnet: services need one`);
    return pool;
  }

  private onNetworksChanged(): void {
    // A network of a cluster service may have just appeared here: reserve its VIPs, program it.
    for (const spec of this.ctx.store.listServices()) this.reserveVips(spec);
    this.schedule();
  }

  // ------------------------------------------------------------------ reconcile

  /** Runs a sync soon; errors are logged and retried. */
  schedule(): void {
    void this.syncNow().catch((err) => {
      this.ctx.log.warn({ err: messageOf(err) }, "services: sync failed; retrying");
      if (!this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.schedule();
        }, RETRY_MS);
        this.retryTimer.unref();
      }
    });
  }

  /** Resolves once a sync that started after this call has applied; rejects if that sync failed. */
  syncNow(): Promise<void> {
    const gen = ++this.requested;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ gen, resolve, reject }));
    if (!this.running) this.running = this.loop();
    return done;
  }

  private async loop(): Promise<void> {
    // Let events of the same tick coalesce into one pass.
    await new Promise((r) => setImmediate(r));
    while (this.applied < this.requested) {
      const gen = this.requested;
      let error: unknown;
      try {
        await this.apply();
      } catch (err) {
        error = err;
      }
      this.applied = gen;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const w = this.waiters[i]!;
        if (w.gen > gen) continue;
        this.waiters.splice(i, 1);
        if (error === undefined) w.resolve();
        else w.reject(error);
      }
    }
    this.running = undefined;
  }

  private localNetworks(): Map<string, LocalNetwork> {
    const out = new Map<string, LocalNetwork>();
    for (const net of this.ctx.store.listNetworks()) {
      out.set(net.id, { id: net.id, bridgeName: net.bridge.bridgeName, overlay: net.driver === "overlay" });
    }
    return out;
  }

  private unitId(key: string): number {
    let id = this.unitIds.get(key);
    if (id === undefined) {
      id = this.nextUnit++;
      this.unitIds.set(key, id);
    }
    return id;
  }

  private async apply(): Promise<void> {
    const { store, firewall } = this.ctx;
    const specs = store.listServices();
    const networks = this.localNetworks();
    const meshSources = this.mesh
      ? await this.mesh.sync(meshNetworks(specs, networks))
      : new Map<string, string>();
    const used = new Set<string>();
    const d = desiredServices({
      services: specs,
      backends: this.allBackends(specs, store.listBackends()),
      self: this.self,
      networks,
      meshSources,
      unitId: (key) => {
        used.add(key);
        return this.unitId(key);
      },
    });
    await this.links.syncBridgeVips(
      [...networks.values()].map((n) => n.bridgeName),
      d.bridgeVips,
    );
    await firewall.setServiceAddresses(d.vips, d.serviceNetworks);
    if (d.units.length > 0 || d.snat.length > 0) {
      await this.opts.programmer.sync(d.units);
      await this.opts.programmer.setSnat(d.snat);
      this.tableMayExist = true;
    } else if (this.tableMayExist) {
      await this.opts.programmer.clear();
      this.tableMayExist = false;
    }
    for (const key of [...this.unitIds.keys()]) if (!used.has(key)) this.unitIds.delete(key);
    const live = new Set<string>();
    for (const entry of d.dns) {
      this.opts.dns.setService(entry);
      live.add(entry.id);
    }
    for (const id of this.dnsIds) if (!live.has(id)) this.opts.dns.removeService(id);
    this.dnsIds.clear();
    for (const id of live) this.dnsIds.add(id);
    const conflicts = d.conflicts.join("; ");
    if (conflicts !== this.lastConflicts) {
      this.lastConflicts = conflicts;
      if (conflicts) this.ctx.log.error({ conflicts: d.conflicts }, "services: some could not be programmed");
    }
  }

  // ------------------------------------------------------------------ views

  private view(spec: ServiceSpec): ServiceView {
    return viewOfService(
      spec,
      this.allBackends([spec], this.ctx.store.listBackends(spec.id)),
      this.ctx.store,
    );
  }
}
