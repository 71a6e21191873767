/**
 * The Docker plugin: trellis as a Docker engine's network driver and IPAM driver ("trellis"),
 * served on a unix socket where the engine discovers it (`/run/docker/plugins/trellis.sock`).
 * Wiring only: the protocol is routes.ts/protocol.ts, the mapping onto trellis is networks.ts,
 * endpoints.ts and ipam.ts.
 */
import type { Server } from "node:http";
import type { Logger } from "pino";
import { serve } from "../api/http.js";
import { messageOf } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import type { EndpointManager } from "../daemon/endpoints.js";
import type { NetworkManager } from "../daemon/networks.js";
import type { DnsService } from "../dns/service.js";
import type { NetworkDriverBackend } from "./backend.js";
import type { DockerPluginConfig } from "./config.js";
import { driverBackend } from "./driver.js";
import { DockerEndpoints } from "./endpoints.js";
import { EngineNames } from "./engine-names.js";
import { GatewayDns } from "./gateway-dns.js";
import { DockerIpam } from "./ipam.js";
import { DockerNetworks } from "./networks.js";
import { PluginRouter, pluginErrorReply } from "./routes.js";
import { PluginState } from "./state.js";

export interface DockerPluginDeps {
  ctx: DaemonContext;
  networks: NetworkManager;
  endpoints: EndpointManager;
  dns: DnsService;
  config: DockerPluginConfig;
}

export class DockerPlugin {
  readonly driver: NetworkDriverBackend;
  readonly ipam: DockerIpam;
  private readonly names: EngineNames;
  private readonly endpoints: DockerEndpoints;
  private readonly gatewayDns: GatewayDns;
  private readonly log: Logger;
  private server: Server | undefined;

  constructor(private readonly deps: DockerPluginDeps) {
    const { ctx, networks, endpoints, config } = deps;
    this.log = ctx.log.child({ component: "docker-plugin" });
    const state = new PluginState(ctx.store);
    const overlay = () => endpoints.overlay;
    let dockerEndpoints: DockerEndpoints | undefined;
    this.names = new EngineNames(config.engineSocket, this.log);
    const dockerNetworks: DockerNetworks = new DockerNetworks({
      ctx,
      networks,
      state,
      created: (id) =>
        void this.names
          .networkName(id)
          .then((name) => name && dockerNetworks.rename(id, name))
          .catch((err) =>
            this.log.warn({ dockerNetworkId: id, err: messageOf(err) }, "docker: rename failed"),
          ),
      dropLeftovers: async (net, dockerNetworkId) => dockerEndpoints?.dropLeftovers(net, dockerNetworkId),
    });
    const eps = new DockerEndpoints({
      ctx,
      networks,
      dockerNetworks,
      overlay,
      joined: (ep) =>
        this.names.learn(
          ep.docker!.dockerNetworkId,
          ep.id,
          (n) => eps.rename(ep.id, n.name, n.aliases),
          () => ctx.store.getEndpoint(ep.id)?.docker?.joined === true,
        ),
    });
    dockerEndpoints = eps;
    this.endpoints = eps;
    this.driver = driverBackend(dockerNetworks, eps);
    this.ipam = new DockerIpam({ ctx, networks, state, overlay });
    this.gatewayDns = new GatewayDns({
      store: ctx.store,
      records: deps.dns.records,
      answer: (asker, msg, transport) => deps.dns.resolver.answer(asker, msg, transport),
      log: this.log,
    });
  }

  async start(): Promise<void> {
    const { ctx, config } = this.deps;
    const resync = () => void this.gatewayDns.sync();
    ctx.events.on("network-created", resync);
    ctx.events.on("network-removed", resync);
    await this.gatewayDns.sync();
    this.server = await serve({
      socketPath: config.socket,
      router: new PluginRouter(this.driver, this.ipam, this.log),
      log: this.log,
      errorReply: pluginErrorReply,
    });
    this.log.info({ socket: config.socket, engine: config.engineSocket }, "docker plugin listening");
  }

  async stop(): Promise<void> {
    this.names.stop();
    this.gatewayDns.stop();
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    }
    await this.endpoints.settle();
  }
}
