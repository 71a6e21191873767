/**
 * Embedded DNS for the daemon: keeps the record index in step with the daemon's events, runs the
 * listeners of every attached container, and answers the lookup API. One instance per daemon.
 */
import type { Logger } from "pino";
import { notFound } from "../common/errors.js";
import type { DaemonEvents } from "../daemon/events.js";
import { containerIdOf } from "../daemon/ids.js";
import type { Kernel } from "../kernel/types.js";
import type { EndpointRecord, NetworkRecord, PoolRecord } from "../store/records.js";
import type { Final } from "./chain.js";
import { Forwarder, forwardHandler } from "./forwarder.js";
import { reverseNames, singleLabelNxdomain, trellisNames } from "./handlers.js";
import { ListenerManager, type ListenerOptions } from "./listeners.js";
import { DnsRecords, dnsEndpointOf } from "./records.js";
import { Resolver } from "./resolver.js";
import type { DnsServiceEntry } from "./services.js";
import { readResolvConf, type Upstream } from "./upstreams.js";

export interface DnsConfig {
  /** undefined: the nameservers of the daemon's /etc/resolv.conf, read at start */
  upstreams?: readonly Upstream[];
  /** undefined: the search/domain line of the daemon's /etc/resolv.conf */
  search?: readonly string[];
  /** forwarded answers cached at most (0 disables the cache) */
  cacheSize?: number;
  /** per upstream, in ms */
  upstreamTimeoutMs?: number;
  listen?: ListenerOptions;
}

/** What the service reads from the store: the daemon's records, as of now. */
export interface DnsStore {
  listNetworks(): NetworkRecord[];
  listEndpoints(networkId?: string): EndpointRecord[];
  getPool(id: string): PoolRecord | undefined;
}

export interface DnsDeps {
  store: DnsStore;
  kernel: Kernel;
  events: DaemonEvents;
  log: Logger;
}

export interface LookupResult {
  /** the asking container's id; undefined for the administrator's view (every network) */
  from?: string;
  scope: string[];
  final: Final;
}

export class DnsService {
  readonly records = new DnsRecords();
  readonly forwarder: Forwarder;
  readonly resolver: Resolver;
  readonly listeners: ListenerManager;
  readonly search: readonly string[];
  private readonly log: Logger;
  private rebuilt: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: DnsDeps,
    config: DnsConfig = {},
  ) {
    this.log = deps.log.child({ component: "dns" });
    const conf = config.upstreams && config.search ? undefined : readResolvConf();
    const upstreams = config.upstreams ?? conf?.upstreams ?? [];
    this.search = config.search ?? conf?.search ?? [];
    this.forwarder = new Forwarder({
      upstreams,
      log: this.log,
      ...(config.cacheSize !== undefined ? { cacheSize: config.cacheSize } : {}),
      ...(config.upstreamTimeoutMs !== undefined ? { timeoutMs: config.upstreamTimeoutMs } : {}),
    });
    this.resolver = new Resolver(this.records, [
      trellisNames(this.records, this.search),
      reverseNames(this.records),
      singleLabelNxdomain(),
      forwardHandler(this.forwarder),
    ]);
    this.listeners = new ListenerManager(
      deps.kernel,
      (asker, msg, transport) => this.resolver.answer(asker, msg, transport),
      this.log,
      config.listen,
    );
    this.subscribe();
    this.log.info({ upstreams, search: this.search }, "embedded DNS configured");
  }

  private subscribe(): void {
    const { events } = this.deps;
    events.on("network-created", (net) => this.records.setSubnets(net.id, this.subnetsOf(net)));
    events.on("network-removed", (net) => this.records.removeNetwork(net.id));
    events.on("endpoint-connected", (ep) => this.connected(ep));
    events.on("endpoint-disconnected", (ep) => this.disconnected(ep));
    events.on("reconciled", () => this.rebuild());
  }

  private subnetsOf(net: NetworkRecord): string[] {
    return net.poolIds.flatMap((id) => {
      const pool = this.deps.store.getPool(id);
      return pool ? [pool.subnet] : [];
    });
  }

  private connected(ep: EndpointRecord): void {
    if (ep.state !== "active") return;
    this.records.add(dnsEndpointOf(ep));
    // In a Docker engine's container 127.0.0.11 is the engine's own resolver (lib/plugin/gateway-dns.ts).
    if (!ep.docker) void this.listeners.ensure(ep.containerId, ep.netns);
  }

  /** Resolves when the container's 127.0.0.11:53 answers (or its set-up failed, as logged); the
   * daemon awaits it before replying to a connect. */
  ready(containerId: string): Promise<void> {
    return this.listeners.settled(containerId);
  }

  /** Resolves when the listeners of the last rebuild are up (the daemon awaits it at start). */
  settled(): Promise<void> {
    return this.rebuilt;
  }

  private disconnected(ep: EndpointRecord): void {
    this.records.remove(ep.id);
    if (!this.records.hasContainer(ep.containerId)) this.listeners.close(ep.containerId);
  }

  /**
   * Creates or replaces a service's names (by id), as the service manager sees it now; the next
   * query sees the change (the resolver's memo follows the records' generation).
   */
  setService(entry: DnsServiceEntry): void {
    this.records.services.set(entry);
  }

  /** Removes a service's names; an unknown id is a no-op. */
  removeService(id: string): void {
    this.records.services.remove(id);
  }

  /**
   * After the start-up reconcile: the store holds exactly the live, programmed endpoints. Services
   * are not in that store; the records keep them across the rebuild.
   */
  rebuild(): void {
    this.records.clear();
    const alive = new Map<string, EndpointRecord>();
    for (const net of this.deps.store.listNetworks()) {
      this.records.setSubnets(net.id, this.subnetsOf(net));
      for (const ep of this.deps.store.listEndpoints(net.id)) {
        if (ep.state !== "active" || ep.docker?.joined === false) continue;
        this.records.add(dnsEndpointOf(ep));
        if (!ep.docker) alive.set(ep.containerId, ep);
      }
    }
    const ensured = [...alive].map(([containerId, ep]) => this.listeners.ensure(containerId, ep.netns));
    this.rebuilt = Promise.all(ensured).then((ok) => {
      const up = ok.filter(Boolean).length;
      this.log.info({ endpoints: alive.size, containers: ok.length, listening: up }, "DNS records rebuilt");
    });
  }

  /**
   * What `name` resolves to for container `from` (a netns name or path, pid:PID, a container id, or
   * an endpoint name); without `from`, with every network in scope.
   */
  async lookup(name: string, type: string, from?: string): Promise<LookupResult> {
    if (from === undefined) {
      const scope = [...this.records.allNetworks()];
      return { scope, final: await this.resolver.lookup(scope, name, type) };
    }
    const containerId = await this.containerOf(from);
    const scope = [...this.records.scopeOf(containerId)];
    return { from: containerId, scope, final: await this.resolver.lookup(scope, name, type) };
  }

  /** A container reference as the CLI takes it first; failing that, an endpoint name or id. */
  private async containerOf(ref: string): Promise<string> {
    try {
      const id = containerIdOf(await this.deps.kernel.resolveNetns(ref));
      if (this.records.hasContainer(id)) return id;
    } catch {
      // not a namespace: maybe an endpoint name
    }
    const known = this.records.containerByEndpointName(ref);
    if (known) return known;
    throw notFound(`container ${ref} is not attached to any network`);
  }

  stop(): void {
    this.listeners.closeAll();
  }
}
