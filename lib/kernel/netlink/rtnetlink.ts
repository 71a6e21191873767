/**
 * Netlink (see ../types.ts) for one network namespace over one cached NETLINK_ROUTE socket.
 * Every operation is a single netlink round trip (two when an alias must be set after creation),
 * with no process spawned, which is what keeps the container attach path within its budget.
 */
import { closeSync, fstatSync, openSync } from "node:fs";
import { invalid, KernelError, notFound } from "../../common/errors.js";
import { errnoOf, errnoText } from "../errno.js";
import type {
  AddressInfo,
  BridgeSpec,
  FdbEntry,
  FdbKey,
  FdbSpec,
  LinkChange,
  LinkInfo,
  NeighbourEntry,
  NeighbourKey,
  NeighbourSpec,
  Netlink,
  NetnsRef,
  RouteInfo,
  RouteSpec,
  VethSpec,
  VxlanSpec,
} from "../types.js";
import {
  EADDRNOTAVAIL,
  EEXIST,
  ENODEV,
  ENOENT,
  EOPNOTSUPP,
  ESRCH,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
} from "./constants.js";
import * as M from "./messages.js";
import * as N from "./neigh.js";
import type { NetlinkSocket } from "./socket.js";

/** Resolves to the Netlink of another namespace (the kernel's per-namespace cache). */
export type PeerNetlink = (ns: NetnsRef) => RtNetlink;

export class RtNetlink implements Netlink {
  constructor(
    private readonly sock: NetlinkSocket,
    private readonly peerNetlink: PeerNetlink,
  ) {}

  async listLinks(): Promise<LinkInfo[]> {
    const msgs = await this.sock.dump("list links", M.linkDump());
    return msgs.filter((m) => m.type === RTM_NEWLINK).map(M.parseLink);
  }

  getLink(name: string): Promise<LinkInfo | undefined> {
    return this.getOne(`get link ${name}`, M.linkGetByName(name));
  }

  getLinkByIndex(index: number): Promise<LinkInfo | undefined> {
    return this.getOne(`get link #${index}`, M.linkGetByIndex(index));
  }

  async createBridge(spec: BridgeSpec): Promise<void> {
    await this.sock.request(`create bridge ${spec.name}`, M.newBridge(spec));
    if (spec.alias !== undefined) await this.setAliasByName(spec.name, spec.alias);
  }

  async createVeth(spec: VethSpec): Promise<void> {
    const peerFd = openNetns(spec.peer.netns);
    try {
      const req = M.newVeth({ ...spec, peer: { ...spec.peer, netnsFd: peerFd } });
      await this.sock.request(`create veth ${spec.name} (peer ${spec.peer.name})`, req);
    } finally {
      closeSync(peerFd);
    }
    // The kernel ignores IFLA_IFALIAS when it creates a link, so aliases are a second step.
    if (spec.alias !== undefined) await this.setAliasByName(spec.name, spec.alias);
    if (spec.peer.alias !== undefined) {
      await this.peerNetlink(spec.peer.netns).setAliasByName(spec.peer.name, spec.peer.alias);
    }
  }

  async setLink(index: number, change: LinkChange): Promise<void> {
    await this.sock.request(`set link #${index}${describeChange(change)}`, M.setLink(index, change));
  }

  async setAliasByName(name: string, alias: string): Promise<void> {
    await this.sock.request(`set alias of ${name}`, M.setAliasByName(name, alias));
  }

  setBridgePortHairpin(index: number, on: boolean): Promise<void> {
    return this.setBridgePort(index, { hairpin: on });
  }

  async setBridgePort(index: number, flags: M.BridgePortFlags): Promise<void> {
    if (flags.hairpin === undefined && flags.isolated === undefined) return;
    await this.sock.request(`set bridge port #${index}${describeChange(flags)}`, M.bridgePort(index, flags));
  }

  deleteLink(index: number): Promise<boolean> {
    return tolerate(this.sock.request(`delete link #${index}`, M.delLink(index)), ENODEV);
  }

  deleteLinkByName(name: string): Promise<boolean> {
    return tolerate(this.sock.request(`delete link ${name}`, M.delLinkByName(name)), ENODEV);
  }

  async listAddresses(family?: 4 | 6): Promise<AddressInfo[]> {
    const msgs = await this.sock.dump("list addresses", M.addrDump(family));
    return msgs.flatMap((m) => (m.type === RTM_NEWADDR ? (M.parseAddress(m) ?? []) : []));
  }

  async addAddress(index: number, address: string, prefixLen: number): Promise<void> {
    const what = `add address ${address}/${prefixLen} to link #${index}`;
    await tolerate(this.sock.request(what, M.newAddr(index, address, prefixLen)), EEXIST);
  }

  deleteAddress(index: number, address: string, prefixLen: number): Promise<boolean> {
    const what = `delete address ${address}/${prefixLen} from link #${index}`;
    return tolerate(this.sock.request(what, M.delAddr(index, address, prefixLen)), EADDRNOTAVAIL, ENODEV);
  }

  async listRoutes(family: 4 | 6): Promise<RouteInfo[]> {
    const msgs = await this.sock.dump(`list IPv${family} routes`, M.routeDump(family));
    return msgs.flatMap((m) => (m.type === RTM_NEWROUTE ? (M.parseRoute(m) ?? []) : []));
  }

  async addRoute(route: RouteSpec): Promise<void> {
    await tolerate(this.sock.request(`add route ${describeRoute(route)}`, M.newRoute(route)), EEXIST);
  }

  deleteRoute(route: RouteSpec): Promise<boolean> {
    return tolerate(this.sock.request(`delete route ${describeRoute(route)}`, M.delRoute(route)), ESRCH);
  }

  async createVxlan(spec: VxlanSpec): Promise<void> {
    await this.sock.request(`create vxlan ${spec.name} (vni ${spec.vni})`, M.newVxlan(spec));
    if (spec.alias !== undefined) await this.setAliasByName(spec.name, spec.alias);
  }

  async listFdb(index?: number): Promise<FdbEntry[]> {
    const msgs = await tolerateDump(this.sock.dump("list fdb", N.fdbDump(index)), ENODEV);
    const entries = msgs.flatMap((m) => (m.type === RTM_NEWNEIGH ? (N.parseFdb(m) ?? []) : []));
    return index === undefined ? entries : entries.filter((e) => e.index === index);
  }

  /** One request per table: each has its own NUD state, and one combined request would stop at
   * the first table that fails, leaving the other unknown. */
  async addFdb(entry: FdbSpec): Promise<void> {
    for (const table of fdbTables(entry)) {
      const dst = table === "self" ? ` dst ${entry.dst}` : "";
      const what = `add fdb ${entry.mac}${dst} ${table} on link #${entry.index}`;
      await this.sock.request(what, N.fdbAdd(entry, table));
    }
  }

  async deleteFdb(key: FdbKey): Promise<boolean> {
    let removed = false;
    for (const table of fdbTables(key)) {
      const what = `delete fdb ${key.mac}${key.dst ? ` dst ${key.dst}` : ""} ${table} on link #${key.index}`;
      // A device that is no longer a bridge port has no master table (EOPNOTSUPP): nothing to delete.
      const missing = table === "master" ? [ENOENT, ENODEV, EOPNOTSUPP] : [ENOENT, ENODEV];
      if (await tolerate(this.sock.request(what, N.fdbDel(key, table)), ...missing)) removed = true;
    }
    return removed;
  }

  async listNeighbours(index?: number, family?: 4 | 6): Promise<NeighbourEntry[]> {
    const msgs = await this.sock.dump("list neighbours", N.neighDump(index, family));
    const entries = msgs.flatMap((m) => (m.type === RTM_NEWNEIGH ? (N.parseNeighbour(m) ?? []) : []));
    return index === undefined ? entries : entries.filter((e) => e.index === index);
  }

  async addNeighbour(entry: NeighbourSpec): Promise<void> {
    const what = `add neighbour ${entry.address} lladdr ${entry.mac} on link #${entry.index}`;
    await this.sock.request(what, N.neighAdd(entry));
  }

  deleteNeighbour(key: NeighbourKey): Promise<boolean> {
    const what = `delete neighbour ${key.address} on link #${key.index}`;
    return tolerate(this.sock.request(what, N.neighDel(key)), ENOENT, ENODEV);
  }

  close(): void {
    this.sock.close();
  }

  private async getOne(what: string, req: M.RtRequest): Promise<LinkInfo | undefined> {
    try {
      const msgs = await this.sock.request(what, req);
      const msg = msgs.find((m) => m.type === RTM_NEWLINK);
      return msg && M.parseLink(msg);
    } catch (err) {
      if (err instanceof KernelError && err.errno === ENODEV) return undefined;
      throw err;
    }
  }
}

/** Resolves true when the operation succeeded, false when it failed with one of `errnos`. */
async function tolerate(op: Promise<unknown>, ...errnos: number[]): Promise<boolean> {
  try {
    await op;
    return true;
  } catch (err) {
    if (err instanceof KernelError && err.errno !== undefined && errnos.includes(err.errno)) return false;
    throw err;
  }
}

/** A dump that fails with one of `errnos` (a device that is gone) is an empty answer. */
async function tolerateDump<T>(op: Promise<T[]>, ...errnos: number[]): Promise<T[]> {
  try {
    return await op;
  } catch (err) {
    if (err instanceof KernelError && err.errno !== undefined && errnos.includes(err.errno)) return [];
    throw err;
  }
}

/** The tables an FDB request addresses; the vxlan's own when none is named. */
function fdbTables(t: { self?: boolean; master?: boolean }): N.FdbTable[] {
  const tables: N.FdbTable[] = [];
  if (t.self ?? true) tables.push("self");
  if (t.master) tables.push("master");
  if (tables.length === 0) throw invalid("an FDB request needs self or master (or both)");
  return tables;
}

/**
 * Opens the peer's namespace file and checks it is still the namespace the caller resolved: a
 * reused `ip netns` name or PID must never receive another container's interface.
 */
function openNetns(ns: NetnsRef): number {
  let fd: number;
  try {
    fd = openSync(ns.path, "r");
  } catch (err) {
    throw notFound(`network namespace ${ns.path} is gone (${errnoText(errnoOf(err) ?? 2)})`);
  }
  const st = fstatSync(fd);
  if (st.dev !== ns.dev || st.ino !== ns.ino) {
    closeSync(fd);
    throw notFound(`network namespace ${ns.path} was replaced (inode ${st.ino}, expected ${ns.ino})`);
  }
  return fd;
}

function describeChange(c: object): string {
  const parts = Object.entries(c)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return parts.length ? ` (${parts.join(" ")})` : "";
}

function describeRoute(r: RouteSpec): string {
  const dst = r.dst ?? "default";
  const via = r.gateway ? ` via ${r.gateway}` : "";
  const dev = r.oif !== undefined ? ` dev #${r.oif}` : "";
  return `${dst}${via}${dev}`;
}
