/**
 * Applies an overlay network's VXLAN desired state on this host: the device itself, and exactly the
 * FDB and neighbour entries of remote endpoints. `sync` is both the fast path (an endpoint appeared
 * or left somewhere) and the periodic audit: it compares the kernel's entries with the table and
 * repairs any drift, returning how many repairs it made (Docker's overlay loses FDB entries
 * silently, moby/moby#52661; here drift is found and counted).
 */
import { conflict } from "../common/errors.js";
import type { Kernel, LinkInfo } from "../kernel/types.js";
import { type DesiredFdb, type DesiredNeighbour, type DesiredVxlan, diffEntries } from "./desired.js";

export interface SyncResult {
  added: number;
  removed: number;
}

export class VxlanProgrammer {
  constructor(private readonly kernel: Kernel) {}

  /** Creates (or recreates, when VNI/port/local differ) the VXLAN device on the bridge; returns its ifindex. */
  async ensureDevice(d: DesiredVxlan, bridgeIndex: number, underlayIndex?: number): Promise<number> {
    const host = this.kernel.host();
    let link = await host.getLink(d.name);
    if (link && !this.matches(link, d)) {
      if (link.alias !== d.alias) throw conflict(`interface ${d.name} exists and does not belong to trellis`);
      await host.deleteLink(link.index);
      link = undefined;
    }
    if (!link) {
      await host.createVxlan({
        name: d.name,
        vni: d.vni,
        dstPort: d.port,
        local: d.local,
        ...(underlayIndex !== undefined ? { dev: underlayIndex } : {}),
        mtu: d.mtu,
        learning: false,
        proxy: true,
        alias: d.alias,
        master: bridgeIndex,
        up: true,
      });
      link = await host.getLink(d.name);
      if (!link) throw conflict(`vxlan ${d.name} vanished right after it was created`);
    } else if (link.master !== bridgeIndex || !link.up || link.mtu !== d.mtu) {
      await host.setLink(link.index, { master: bridgeIndex, up: true, mtu: d.mtu });
    }
    return link.index;
  }

  private matches(link: LinkInfo, d: DesiredVxlan): boolean {
    const v = link.vxlan;
    return (
      link.kind === "vxlan" &&
      v !== undefined &&
      v.vni === d.vni &&
      v.port === d.port &&
      v.local === d.local &&
      !v.learning &&
      v.proxy
    );
  }

  /** What trellis programmed: permanent self entries with a remote VTEP; permanent neighbours. */
  async observe(index: number): Promise<{ fdb: DesiredFdb[]; neighbours: DesiredNeighbour[] }> {
    const host = this.kernel.host();
    const fdb = (await host.listFdb(index))
      .filter((e) => e.index === index && e.self && e.permanent && e.dst !== undefined)
      .map((e) => ({ mac: e.mac, dst: e.dst! }));
    const neighbours = (await host.listNeighbours(index))
      .filter((n) => n.index === index && n.permanent && n.mac !== undefined)
      .map((n) => ({ address: n.address, mac: n.mac! }));
    return { fdb, neighbours };
  }

  /** Makes the device's entries equal the desired ones. */
  async sync(index: number, d: Pick<DesiredVxlan, "fdb" | "neighbours">): Promise<SyncResult> {
    const host = this.kernel.host();
    const diff = diffEntries(d, await this.observe(index));
    for (const n of diff.removeNeighbours) await host.deleteNeighbour({ index, address: n.address });
    for (const f of diff.removeFdb) await host.deleteFdb({ index, mac: f.mac, self: true, master: true });
    // The bridge's own (master) entry stops it flooding unknown unicast to every port.
    for (const f of diff.addFdb)
      await host.addFdb({ index, mac: f.mac, dst: f.dst, self: true, master: true });
    for (const n of diff.addNeighbours) await host.addNeighbour({ index, address: n.address, mac: n.mac });
    return {
      added: diff.addFdb.length + diff.addNeighbours.length,
      removed: diff.removeFdb.length + diff.removeNeighbours.length,
    };
  }

  async removeDevice(name: string): Promise<void> {
    await this.kernel.host().deleteLinkByName(name);
  }
}
