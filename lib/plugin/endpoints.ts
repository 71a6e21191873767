/**
 * An engine's endpoints on trellis networks. The engine assigns the addresses (through an IPAM
 * driver) and configures the container's interface itself; trellis records the endpoint, creates a
 * veth pair whose far end stays in the daemon's own namespace (dockerd shares it) with a name
 * derived from the EndpointID, and hands that name to the engine at Join, which moves the link into
 * the container. So DeleteEndpoint can always find the pair, even after a restart of either side.
 *
 * The endpoint is "connected" in trellis's sense (DNS names, overlay announcement) from Join to
 * Leave. Every call is idempotent: the engine retries calls a restarting trellisd did not answer.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { desiredEndpoint, endpointMac, hostIfNameOf } from "../bridge/desired.js";
import { conflict, messageOf, notFound } from "../common/errors.js";
import type { DaemonContext } from "../daemon/context.js";
import type { OverlayAddressing } from "../daemon/endpoints.js";
import { publishedPortsOf } from "../daemon/firewall.js";
import { KeyedLock } from "../daemon/keyed-lock.js";
import { poolsOf } from "../daemon/lookup.js";
import type { NetworkManager } from "../daemon/networks.js";
import type { EndpointRecord, NetworkRecord } from "../store/records.js";
import { claimAddress, poolFor, releaseAddresses } from "./addresses.js";
import type { CreateEndpointResult, JoinResult } from "./backend.js";
import type { DockerNetworks } from "./networks.js";
import { assignPorts, samePorts } from "./ports.js";
import type { CreateEndpointRequest, EndpointRef, JoinRequest, ProgramRequest } from "./protocol.js";

/** The veth's far end until the engine renames it: 15 characters, derived from the EndpointID. */
export function farEndNameOf(endpointId: string): string {
  return `vdk${endpointId.slice(0, 12)}`;
}

/** One id per engine sandbox (container), so its endpoints on several networks share a DNS scope. */
export function sandboxContainerId(sandboxKey: string): string {
  return createHash("sha256").update(`docker-sandbox:${sandboxKey}`).digest("hex");
}

const short = (id: string) => id.slice(0, 12);

export interface DockerEndpointsDeps {
  ctx: DaemonContext;
  networks: NetworkManager;
  dockerNetworks: DockerNetworks;
  overlay: () => OverlayAddressing | undefined;
  /** told when an endpoint joined, so its container's name can be learnt from the engine */
  joined?: (ep: EndpointRecord) => void;
}

export class DockerEndpoints {
  private readonly lock = new KeyedLock();
  private readonly log: Logger;
  private readonly deletions = new Set<Promise<void>>();

  constructor(private readonly deps: DockerEndpointsDeps) {
    this.log = deps.ctx.log.child({ component: "docker-plugin" });
  }

  private known(endpointId: string): EndpointRecord {
    const ep = this.deps.ctx.store.getEndpoint(endpointId);
    if (ep?.docker) return ep;
    throw notFound(
      `endpoint ${short(endpointId)} is unknown to trellis (was trellis's state dir reset?): restart the container`,
    );
  }

  create(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    return this.lock.run(req.endpointId, () => this.createLocked(req));
  }

  private async createLocked(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    const { ctx, networks } = this.deps;
    const net = this.deps.dockerNetworks.resolve(req.networkId);
    const existing = ctx.store.getEndpoint(req.endpointId);
    if (existing) {
      if (existing.networkId !== net.id)
        throw conflict(`endpoint ${short(req.endpointId)} exists on another network`);
      await this.ensureLink(net, existing);
      return this.createResult(req, existing);
    }
    const ep = await this.record(net, req);
    try {
      const pools = poolsOf(ctx.store, net);
      await ctx.links.plumbHostPeer(desiredEndpoint(net, pools, ep), await networks.bridgeIndex(net));
      ctx.store.putEndpoint({ ...ep, state: "active" });
    } catch (err) {
      this.log.warn({ endpointId: ep.id, networkId: net.id, err: messageOf(err) }, "docker: endpoint failed");
      await this.discard(net, ep);
      throw err;
    }
    this.log.info(
      { endpointId: ep.id, networkId: net.id, ipv4: ep.ipv4, ipv6: ep.ipv6, srcName: ep.ifName },
      "docker: endpoint created",
    );
    return this.createResult(req, ep);
  }

  /** Records the endpoint ("creating") with its addresses, in one transaction. */
  private async record(net: NetworkRecord, req: CreateEndpointRequest): Promise<EndpointRecord> {
    const { ctx } = this.deps;
    const overlay = net.driver === "overlay" ? this.deps.overlay() : undefined;
    const release = overlay && req.iface.address === "" ? await overlay.reserveCapacity(net) : undefined;
    try {
      return ctx.store.transaction(() => {
        const pools = poolsOf(ctx.store, net);
        const v4 = poolFor(pools, 4, net, overlay);
        const v6 = poolFor(pools, 6, net, undefined);
        const id = req.endpointId;
        const claim4 = v4 && claimAddress(ctx, v4.pool, req.iface.address, id, v4.pick);
        const claim6 = v6 && claimAddress(ctx, v6.pool, req.iface.addressIPv6, id);
        const ipv4 = claim4?.cidr;
        const ipv6 = claim6?.cidr;
        const fromDriver = claim4?.fromDriver === true || claim6?.fromDriver === true;
        const rec: EndpointRecord = {
          id,
          networkId: net.id,
          name: `docker-${short(id)}`,
          containerId: `docker-endpoint:${id}`,
          netns: { path: "", dev: 0, ino: 0 },
          ifName: farEndNameOf(id),
          hostIfName: hostIfNameOf(id),
          mac: req.iface.macAddress || endpointMac(id, ipv4),
          ...(ipv4 ? { ipv4 } : {}),
          ...(ipv6 ? { ipv6 } : {}),
          aliases: [],
          publish: [],
          gatewayEndpoint: !net.internal,
          state: "creating",
          created: new Date().toISOString(),
          docker: { joined: false, dockerNetworkId: req.networkId, fromDriver },
        };
        ctx.store.putEndpoint(rec);
        return rec;
      });
    } finally {
      release?.();
    }
  }

  /** Only what the engine left empty may be filled in. */
  private createResult(req: CreateEndpointRequest, ep: EndpointRecord): CreateEndpointResult {
    const iface: NonNullable<CreateEndpointResult["Interface"]> = {};
    if (req.iface.address === "" && ep.ipv4) iface.Address = ep.ipv4;
    if (req.iface.addressIPv6 === "" && ep.ipv6) iface.AddressIPv6 = ep.ipv6;
    if (req.iface.macAddress === "") iface.MacAddress = ep.mac;
    return { Interface: iface };
  }

  /** The pair, recreated if it is gone (the far end only while the engine does not hold it). */
  private async ensureLink(net: NetworkRecord, ep: EndpointRecord, handedOver = ep.docker?.joined ?? false) {
    const { ctx, networks } = this.deps;
    const desired = desiredEndpoint(net, poolsOf(ctx.store, net), ep);
    return ctx.links.ensureHostPeer(desired, await networks.bridgeIndex(net), handedOver);
  }

  join(req: JoinRequest): Promise<JoinResult> {
    return this.lock.run(req.endpointId, async () => {
      const { ctx } = this.deps;
      const ep = this.known(req.endpointId);
      const net = this.deps.dockerNetworks.resolve(req.networkId);
      // A retried Join may find the far end already in the container: then the pair is intact.
      await this.ensureLink(net, ep, false);
      const joined: EndpointRecord = {
        ...ep,
        containerId: sandboxContainerId(req.sandboxKey),
        netns: { path: req.sandboxKey, dev: 0, ino: 0 },
        docker: { ...ep.docker!, joined: true, sandboxKey: req.sandboxKey },
      };
      ctx.store.putEndpoint(joined);
      if (!ep.docker?.joined) {
        ctx.events.emit("endpoint-connected", joined);
        this.deps.joined?.(joined);
      }
      this.log.info({ endpointId: ep.id, networkId: net.id, sandboxKey: req.sandboxKey }, "docker: joined");
      return this.joinResult(net, ep);
    });
  }

  private joinResult(net: NetworkRecord, ep: EndpointRecord): JoinResult {
    const pools = poolsOf(this.deps.ctx.store, net);
    const gateway = (family: 4 | 6) =>
      net.internal ? undefined : pools.find((p) => p.family === family && p.gateway !== undefined)?.gateway;
    const v4 = ep.ipv4 ? gateway(4) : undefined;
    const v6 = ep.ipv6 ? gateway(6) : undefined;
    return {
      InterfaceName: { SrcName: ep.ifName, DstPrefix: "eth" },
      ...(v4 ? { Gateway: v4 } : {}),
      ...(v6 ? { GatewayIPv6: v6 } : {}),
      // trellis networks route to the outside themselves (masquerade); an internal one must not
      // get the engine's docker_gwbridge as a way out either
      DisableGatewayService: true,
    };
  }

  leave(ref: EndpointRef): Promise<void> {
    return this.lock.run(ref.endpointId, async () => {
      const ep = this.deps.ctx.store.getEndpoint(ref.endpointId);
      if (!ep?.docker) return; // already gone: the engine forgets it whatever we say
      await this.unpublish(ep);
      const left: EndpointRecord = { ...ep, publish: [], docker: { ...ep.docker, joined: false } };
      this.deps.ctx.store.putEndpoint(left);
      if (ep.docker.joined) this.deps.ctx.events.emit("endpoint-disconnected", ep);
      this.log.info({ endpointId: ep.id }, "docker: left");
    });
  }

  delete(ref: EndpointRef): Promise<void> {
    return this.lock.run(ref.endpointId, async () => {
      const ep = this.deps.ctx.store.getEndpoint(ref.endpointId);
      if (!ep?.docker) return;
      const net = this.deps.ctx.store.getNetwork(ep.networkId);
      await this.unpublish(ep);
      if (ep.docker.joined) this.deps.ctx.events.emit("endpoint-disconnected", ep);
      if (net) this.inBackground(this.discard(net, ep).catch((err) => this.deleteFailed(ep, err)));
      else this.deps.ctx.store.deleteEndpoint(ep.id);
      this.log.info({ endpointId: ep.id }, "docker: endpoint deleted");
    });
  }

  /**
   * Record and addresses gone at once; the veth after (the kernel takes ~20 ms to destroy one, and
   * the engine need not wait for it). A crash in between: the next start finishes the deletion.
   */
  private discard(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const { store, links } = this.deps.ctx;
    const pending = store.transaction(() => {
      releaseAddresses(this.deps.ctx, poolsOf(store, net), ep);
      store.deleteEndpoint(ep.id);
      return store.addPendingDeletion({ kind: "link", name: ep.hostIfName });
    });
    return (async () => {
      await links.removeEndpoint(ep.hostIfName);
      await links.removeEndpoint(ep.ifName); // the far end of a pair the engine split, if any
      store.removePendingDeletion(pending);
    })();
  }

  private deleteFailed(ep: EndpointRecord, err: unknown) {
    this.log.error({ endpointId: ep.id, err: messageOf(err) }, "docker: veth deletion failed");
  }

  private inBackground(work: Promise<void>) {
    this.deletions.add(work);
    void work.finally(() => this.deletions.delete(work));
  }

  /** Waits for the veth deletions in flight (shutdown, tests). */
  async settle(): Promise<void> {
    await Promise.all([...this.deletions]);
  }

  /** Endpoints of a network the engine is deleting: it forgot them (its DeleteEndpoint failed). */
  async dropLeftovers(net: NetworkRecord, dockerNetworkId: string): Promise<void> {
    for (const ep of this.deps.ctx.store.listEndpoints(net.id)) {
      if (ep.docker?.dockerNetworkId !== dockerNetworkId) continue;
      this.log.warn(
        { endpointId: ep.id, networkId: net.id },
        "docker: dropping an endpoint the engine forgot",
      );
      await this.delete({ networkId: dockerNetworkId, endpointId: ep.id });
    }
  }

  program(req: ProgramRequest): Promise<void> {
    return this.lock.run(req.endpointId, async () => {
      const { ctx } = this.deps;
      const ep = this.known(req.endpointId);
      const net = ctx.store.getNetwork(ep.networkId);
      if (!net || net.internal) return; // an internal network publishes nothing
      const others = ctx.store
        .listPublishingEndpoints()
        .filter((e) => e.id !== ep.id)
        .flatMap((e) => e.publish);
      const wanted = assignPorts(req.portmap, others);
      if (samePorts(wanted, ep.publish)) return; // a retry: the rules are there (restored at start)
      await this.unpublish(ep);
      const published: EndpointRecord = { ...ep, publish: wanted };
      ctx.store.putEndpoint(published);
      const ports = publishedPortsOf(net, published);
      if (ports.length > 0) await ctx.firewall.changePorts({ add: ports });
      await ctx.links.setPortFlags(desiredEndpoint(net, poolsOf(ctx.store, net), published));
      this.log.info({ endpointId: ep.id, ports: wanted }, "docker: ports published");
    });
  }

  revoke(ref: EndpointRef): Promise<void> {
    return this.lock.run(ref.endpointId, async () => {
      const ep = this.deps.ctx.store.getEndpoint(ref.endpointId);
      if (ep?.docker) await this.unpublish(ep);
    });
  }

  /** Removes the endpoint's published ports (rules and record). */
  private async unpublish(ep: EndpointRecord): Promise<void> {
    if (ep.publish.length === 0) return;
    const { ctx } = this.deps;
    const net = ctx.store.getNetwork(ep.networkId);
    const ports = net ? publishedPortsOf(net, ep) : [];
    if (ports.length > 0) await ctx.firewall.changePorts({ remove: ports });
    const current = ctx.store.getEndpoint(ep.id);
    if (current) ctx.store.putEndpoint({ ...current, publish: [] });
  }

  operInfo(ref: EndpointRef): Record<string, unknown> {
    const ep = this.deps.ctx.store.getEndpoint(ref.endpointId);
    if (!ep) return {};
    return {
      name: ep.name,
      networkId: ep.networkId,
      hostInterface: ep.hostIfName,
      ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}),
      ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}),
      mac: ep.mac,
      ports: ep.publish,
    };
  }

  /** The engine's name and aliases for the endpoint's container (DNS, inspect), once known. */
  rename(endpointId: string, name: string, aliases: string[]): void {
    const { store, events } = this.deps.ctx;
    const ep = store.getEndpoint(endpointId);
    if (!ep?.docker?.joined) return;
    const taken = store.findEndpointByName(ep.networkId, name);
    const renamed: EndpointRecord = {
      ...ep,
      name: taken && taken.id !== ep.id ? ep.name : name,
      aliases: aliases.filter((a) => a !== name),
    };
    if (renamed.name === ep.name && renamed.aliases.join() === ep.aliases.join()) return;
    store.putEndpoint(renamed);
    events.emit("endpoint-connected", renamed); // DNS and the overlay table replace what they had
    this.log.info({ endpointId, name: renamed.name, aliases: renamed.aliases }, "docker: endpoint named");
  }
}
