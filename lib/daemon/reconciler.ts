/**
 * Start-up convergence: rebuild desired state from the store, compare with the kernel, apply the
 * difference. Safe to run at any time and any number of times; healthy endpoints are only checked,
 * never torn down, so their traffic keeps flowing across a daemon restart.
 */

import { desiredEndpoint, ENDPOINT_ALIAS_PREFIX, NETWORK_ALIAS_PREFIX } from "../bridge/desired.js";
import { messageOf } from "../common/errors.js";
import type { EndpointRecord } from "../store/records.js";
import type { DaemonContext } from "./context.js";
import type { EndpointManager } from "./endpoints.js";
import { findNetwork, poolsOf } from "./lookup.js";
import type { NetworkManager } from "./networks.js";

export interface ReconcileReport {
  pendingDeletionsDone: number;
  rolledBack: number;
  staleRemoved: number;
  strayLinksRemoved: string[];
  endpointsRecreated: number;
  endpointsChecked: number;
  errors: string[];
}

export class Reconciler {
  constructor(
    private readonly ctx: DaemonContext,
    private readonly networks: NetworkManager,
    private readonly endpoints: EndpointManager,
  ) {}

  async run(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      pendingDeletionsDone: 0,
      rolledBack: 0,
      staleRemoved: 0,
      strayLinksRemoved: [],
      endpointsRecreated: 0,
      endpointsChecked: 0,
      errors: [],
    };
    await this.finishDeletions(report);
    await this.dropUnfinishedAndStale(report);
    await this.removeStrayLinks(report);
    for (const net of this.ctx.store.listNetworks()) {
      try {
        await this.networks.program(net);
      } catch (err) {
        report.errors.push(`network ${net.name}: ${messageOf(err)}`);
        continue;
      }
      for (const ep of this.ctx.store.listEndpoints(net.id)) await this.ensureEndpoint(ep, report);
    }
    await this.ctx.firewall.sync();
    this.ctx.log.info({ report }, "reconciled");
    return report;
  }

  private async finishDeletions(report: ReconcileReport) {
    for (const d of this.ctx.store.listPendingDeletions()) {
      try {
        await this.ctx.kernel.host().deleteLinkByName(d.name);
        this.ctx.store.removePendingDeletion(d.id);
        report.pendingDeletionsDone++;
      } catch (err) {
        report.errors.push(`pending deletion of ${d.name}: ${messageOf(err)}`);
      }
    }
  }

  /** Connects that never finished are rolled back; endpoints whose namespace is gone are dropped. */
  private async dropUnfinishedAndStale(report: ReconcileReport) {
    for (const ep of this.ctx.store.listEndpoints()) {
      // A Docker engine's endpoint lives until the engine deletes it; its namespace is the engine's.
      const alive = ep.docker !== undefined || (await this.ctx.kernel.netnsAlive(ep.netns));
      if (ep.state === "active" && alive) continue;
      await this.ctx.links.removeEndpoint(ep.hostIfName).catch((err) => {
        report.errors.push(`remove ${ep.hostIfName}: ${messageOf(err)}`);
      });
      this.endpoints.forget(ep);
      if (ep.state === "active") report.staleRemoved++;
      else report.rolledBack++;
    }
  }

  /** Links trellis marked as its own (by alias) that no record accounts for. */
  private async removeStrayLinks(report: ReconcileReport) {
    const { store } = this.ctx;
    const wanted = new Set<string>();
    for (const net of store.listNetworks()) wanted.add(net.bridge.bridgeName);
    for (const ep of store.listEndpoints()) {
      wanted.add(ep.hostIfName);
      if (ep.docker) wanted.add(ep.ifName); // the far end, while it is in this namespace
    }
    for (const link of await this.ctx.kernel.host().listLinks()) {
      const ours =
        link.alias?.startsWith(NETWORK_ALIAS_PREFIX) || link.alias?.startsWith(ENDPOINT_ALIAS_PREFIX);
      if (!ours || wanted.has(link.name)) continue;
      await this.ctx.kernel.host().deleteLink(link.index);
      report.strayLinksRemoved.push(link.name);
    }
  }

  private async ensureEndpoint(ep: EndpointRecord, report: ReconcileReport) {
    if (ep.docker) return this.ensureDockerEndpoint(ep, report);
    try {
      const net = findNetwork(this.ctx.store, ep.networkId);
      const desired = desiredEndpoint(net, poolsOf(this.ctx.store, net), ep);
      const outcome = await this.ctx.links.ensureEndpoint(
        desired,
        ep.netns,
        await this.networks.bridgeIndex(net),
      );
      if (outcome === "created") report.endpointsRecreated++;
      else report.endpointsChecked++;
    } catch (err) {
      report.errors.push(`endpoint ${ep.name}: ${messageOf(err)}`);
    } finally {
      this.ctx.kernel.releaseNetns(ep.netns);
    }
  }

  /** The host end of a Docker engine's endpoint; the container end is the engine's business. */
  private async ensureDockerEndpoint(ep: EndpointRecord, report: ReconcileReport) {
    try {
      const net = findNetwork(this.ctx.store, ep.networkId);
      const desired = desiredEndpoint(net, poolsOf(this.ctx.store, net), ep);
      const bridge = await this.networks.bridgeIndex(net);
      const outcome = await this.ctx.links.ensureHostPeer(desired, bridge, ep.docker?.joined ?? false);
      if (outcome === "created") report.endpointsRecreated++;
      else if (outcome === "checked") report.endpointsChecked++;
      else report.errors.push(`endpoint ${ep.name}: its veth is gone from the container (re-run it)`);
    } catch (err) {
      report.errors.push(`endpoint ${ep.name}: ${messageOf(err)}`);
    }
  }

  /** Periodic: endpoints whose namespace disappeared (container gone) give their addresses back. */
  async sweepStale(): Promise<number> {
    let removed = 0;
    for (const ep of this.ctx.store.listEndpoints()) {
      if (ep.docker) continue; // the engine says when its endpoints go
      if (ep.state !== "active" || (await this.ctx.kernel.netnsAlive(ep.netns))) continue;
      const net = this.ctx.store.getNetwork(ep.networkId);
      if (net) await this.endpoints.rollback(net, ep, ep.publish.length > 0);
      else this.endpoints.forget(ep);
      this.ctx.log.info({ endpointId: ep.id, name: ep.name }, "container namespace gone: endpoint removed");
      removed++;
    }
    return removed;
  }
}
