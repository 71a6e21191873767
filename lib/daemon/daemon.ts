/** Wiring: store, IPAM, kernel, managers, reconcile, API. Everything the daemon owns, owned here. */
import type { Server } from "node:http";
import { release } from "node:os";
import type { Logger } from "pino";
import { type ClusterOperations, clusterRoutes } from "../api/cluster-routes.js";
import { dnsRoutes } from "../api/dns-routes.js";
import { dockerRoutes } from "../api/docker-routes.js";
import { serve } from "../api/http.js";
import { serviceRoutes } from "../api/service-routes.js";
import { DnsService } from "../dns/service.js";
import { ServiceManager } from "../ingress/manager.js";
import { ServiceProgrammer } from "../ingress/programmer.js";
import { Ipam } from "../ipam/ipam.js";
import { createKernel } from "../kernel/index.js";
import type { Kernel, NftSession } from "../kernel/types.js";
import { Cluster } from "../overlay/cluster.js";
import { debugOverlay, OverlayManager } from "../overlay/manager.js";
import { DockerPlugin } from "../plugin/plugin.js";
import { SqliteStore } from "../store/sqlite-store.js";
import type { DaemonConfig } from "./config.js";
import type { DaemonContext } from "./context.js";
import { DockerUserChain } from "./docker-user.js";
import { EndpointManager } from "./endpoints.js";
import { DaemonEvents } from "./events.js";
import { FirewallManager } from "./firewall.js";
import type { NetworkOperations, NetworkView } from "./inputs.js";
import { LinkProgrammer } from "./links.js";
import { findNetwork } from "./lookup.js";
import { NetworkManager } from "./networks.js";
import { Reconciler } from "./reconciler.js";
import { VERSION } from "./version.js";

export class Daemon {
  readonly networks: NetworkManager;
  readonly endpoints: EndpointManager;
  readonly reconciler: Reconciler;
  /** embedded DNS; listens in containers once "reconciled" fires (see lib/dns/service.ts) */
  readonly dns: DnsService;
  private server: Server | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** present when started with --advertise-addr: overlay networks across the cluster */
  cluster: Cluster | undefined;
  overlay: OverlayManager | undefined;
  /** present when started with --docker-plugin: a Docker engine's network and IPAM driver */
  plugin: DockerPlugin | undefined;
  /** services: VIPs, backends, the routing mesh (lib/ingress) */
  readonly services: ServiceManager;
  private readonly nftSession: NftSession | undefined;

  private constructor(
    readonly config: DaemonConfig,
    readonly ctx: DaemonContext,
  ) {
    this.networks = new NetworkManager(ctx);
    this.endpoints = new EndpointManager(ctx, this.networks);
    this.reconciler = new Reconciler(ctx, this.networks, this.endpoints);
    this.dns = new DnsService(ctx, {
      upstreams: config.dnsUpstreams,
      search: config.dnsSearch,
      cacheSize: config.dnsCacheSize,
    });
    // One long-lived nft for the VIP table: a service change costs an element diff, not a process.
    this.nftSession = ctx.kernel.nftSession?.();
    const session = this.nftSession;
    this.services = new ServiceManager(ctx, {
      dns: this.dns,
      programmer: new ServiceProgrammer({
        nftApply: (script) => (session ? session.apply(script) : ctx.kernel.nftApply(script)),
        log: ctx.log,
      }),
    });
    this.networks.removalGuard = (net) => this.services.checkNetworkRemovable(net);
  }

  static create(config: DaemonConfig, log: Logger, kernel: Kernel = createKernel()): Daemon {
    const store = SqliteStore.open(config.stateDir);
    const describeOwner = (owner: string) => {
      const net = store.getNetwork(owner);
      if (net) return `network "${net.name}"`;
      const ep = store.getEndpoint(owner);
      if (ep) return `endpoint ${ep.name}`;
      if (owner.startsWith("service:")) {
        const svc = store.getService(owner.slice("service:".length));
        return svc ? `the VIP of service ${svc.name}` : "a service VIP";
      }
      if (owner === "mesh") return "this host's mesh address";
      return owner === "gateway" ? "the gateway" : owner;
    };
    const ipam = new Ipam({ store, describeOwner });
    const ctx: DaemonContext = {
      store,
      ipam,
      kernel,
      links: new LinkProgrammer(kernel),
      firewall: new FirewallManager(kernel, store, new DockerUserChain(kernel, log)),
      log,
      events: new DaemonEvents(),
    };
    return new Daemon(config, ctx);
  }

  /** Overlay networks show the endpoints of every host, each with its node. */
  private withRemotes(view: NetworkView): NetworkView {
    if (view.network.driver !== "overlay" || !this.overlay) return view;
    const remote = this.overlay
      .remoteEndpoints(view.network.id)
      .filter((r) => !r.mesh)
      .map((r) => ({
        id: r.id,
        containerId: r.containerId,
        name: r.name,
        aliases: r.aliases,
        ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
        mac: r.mac,
        node: r.node,
      }));
    return { ...view, node: this.overlay.cluster.self, remote };
  }

  clusterOperations(): ClusterOperations | undefined {
    const cluster = this.cluster;
    const overlay = this.overlay;
    if (!cluster || !overlay) return undefined;
    return {
      nodes: () =>
        cluster.members().map((m) => ({
          Name: m.name,
          Addr: m.addr,
          Port: m.port,
          State: m.state,
          Incarnation: m.incarnation,
          LastContactMs: m.lastContactMs,
          Self: m.name === cluster.self,
        })),
      join: (seeds) => cluster.join(seeds),
      leave: () => cluster.leave(),
      rotateKey: (key) => {
        if (!cluster.rotation) throw new Error("key rotation is not available");
        return cluster.rotation.rotate(key);
      },
      debugOverlay: async (ref) => {
        const net = findNetwork(this.ctx.store, ref);
        return debugOverlay(overlay, net, overlay.vxlanIndex(net.id));
      },
    };
  }

  operations(): NetworkOperations {
    return {
      createNetwork: async (input) => this.withRemotes(await this.networks.create(input)),
      listNetworks: () => this.networks.list().map((v) => this.withRemotes(v)),
      getNetwork: (ref) => this.withRemotes(this.networks.get(ref)),
      removeNetwork: (ref) => this.networks.remove(ref),
      pruneNetworks: () => this.networks.prune(),
      connect: async (ref, input) => {
        const ep = await this.endpoints.connect(ref, input);
        await this.dns.ready(ep.containerId); // the container's 127.0.0.11 answers before we reply
        return ep;
      },
      disconnect: (ref, input) => this.endpoints.disconnect(ref, input),
    };
  }

  async start(): Promise<void> {
    await this.reconciler.run();
    this.ctx.events.emit("reconciled");
    await this.dns.settled();
    this.cluster = await Cluster.start(this.config.cluster, this.ctx.store, this.ctx.log);
    if (this.cluster) {
      this.overlay = new OverlayManager(
        this.ctx,
        this.networks,
        this.cluster,
        this.config.cluster.auditIntervalMs,
      );
      const records = this.dns.records;
      // Names of endpoints on other hosts resolve in the embedded DNS of every host.
      this.overlay.remoteListener = {
        appeared: (id, e) => {
          if (e.mesh) return;
          records.add({
            id,
            networkId: e.networkId,
            containerId: `remote:${e.node}:${e.containerId}`,
            name: e.name,
            aliases: e.aliases,
            ...(e.ipv4 ? { ipv4: e.ipv4.split("/")[0]! } : {}),
          });
        },
        gone: (id) => void records.remove(id),
      };
      this.networks.overlay = this.overlay;
      this.endpoints.overlay = this.overlay;
      await this.overlay.start();
      this.services.overlay = this.overlay;
    }
    await this.services.start();
    if (this.config.dockerPlugin) {
      const { ctx, networks, endpoints, dns } = this;
      this.plugin = new DockerPlugin({ ctx, networks, endpoints, dns, config: this.config.dockerPlugin });
      await this.plugin.start();
    }
    const router = dockerRoutes(this.operations(), { version: VERSION, kernelVersion: release() });
    dnsRoutes(router, this.dns);
    clusterRoutes(router, () => this.clusterOperations());
    serviceRoutes(router, () => this.services);
    this.server = await serve({
      socketPath: this.config.socket,
      router,
      log: this.ctx.log,
      versionedPaths: true,
      commonHeaders: {
        "Api-Version": "1.41",
        "Docker-Experimental": "false",
        Ostype: "linux",
        Server: `trellis/${VERSION}`,
      },
    });
    if (this.config.sweepIntervalMs > 0) {
      this.sweepTimer = setInterval(() => {
        this.reconciler
          .sweepStale()
          .catch((err) => this.ctx.log.error({ err }, "stale endpoint sweep failed"));
        this.ctx.firewall
          .syncDockerUser()
          .catch((err) => this.ctx.log.error({ err }, "DOCKER-USER sync failed"));
      }, this.config.sweepIntervalMs);
      this.sweepTimer.unref();
    }
    this.ctx.log.info(
      { socket: this.config.socket, stateDir: this.config.stateDir, version: VERSION },
      "trellisd ready",
    );
  }

  /** Stops serving; the data plane (links, addresses, rules) stays as it is. */
  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    }
    await this.plugin?.stop();
    await this.endpoints.settle();
    this.services.stop();
    await this.nftSession?.close();
    this.overlay?.stop();
    // No graceful leave: a restart within the failure-detection window must not make the other
    // hosts drop this host's endpoints (`trellis cluster leave` is the explicit goodbye).
    await this.cluster?.stop();
    this.dns.stop();
    this.ctx.kernel.close();
    this.ctx.store.close();
  }
}
