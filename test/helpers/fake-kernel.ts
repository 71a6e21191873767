/**
 * An in-memory Kernel for unit tests: namespaces, links, addresses, routes, FDB and neighbour
 * entries, with the kernel behaviours trellis relies on (checked against `ip` in a scratch netns):
 * - ifindex is allocated per namespace; a new namespace has `lo` (index 1, down);
 * - a veth is created down, its peer directly in the peer's namespace; deleting either end deletes
 *   both, and so does removing the namespace;
 * - createBridge/createVeth/createVxlan of an existing name throw KernelError errno 17 (EEXIST);
 * - getLink of a missing link is undefined; delete* of a missing object returns false;
 * - addAddress of an existing address is a no-op (the real adapter tolerates EEXIST); IPv6
 *   addresses are keyed by address alone, so the same address with another prefix is "existing";
 * - up adds fe80:: (and 127.0.0.1/::1 on lo); down drops the link's IPv6 addresses and its routes;
 *   connected routes follow the addresses of up links;
 * - addRoute needs an up device (ENETDOWN) and an on-link gateway (ENETUNREACH); an existing route
 *   to the same destination is a no-op (the adapter tolerates EEXIST);
 * - bridge-port flags need an enslaved port (EOPNOTSUPP).
 * Every mutating call is recorded in `calls`, in order, with the namespace it ran in.
 */
import { createHash } from "node:crypto";
import { invalid, KernelError, notFound } from "../../lib/common/errors.js";
import { contains, formatAddress, parseAddress, parseCidr, prefixMask } from "../../lib/ipam/cidr.js";
import { errnoText } from "../../lib/kernel/errno.js";
import type {
  AddressInfo,
  BridgeSpec,
  FdbEntry,
  FdbKey,
  FdbSpec,
  Kernel,
  LinkChange,
  LinkInfo,
  NeighbourEntry,
  NeighbourKey,
  NeighbourSpec,
  Netlink,
  NetnsRef,
  NftOptions,
  NftSession,
  RouteInfo,
  RouteSpec,
  VethSpec,
  VxlanInfo,
  VxlanSpec,
} from "../../lib/kernel/types.js";

type Family = 4 | 6;
const EEXIST = 17;
const ENODEV = 19;
const EINVAL = 22;
const EBUSY = 16;
const EOPNOTSUPP = 95;
const ENETDOWN = 100;
const ENETUNREACH = 101;
const NUD_PERMANENT = 0x80;

/** One mutating call: the namespace ("host" or the netns path), the method and its arguments. */
export interface KernelCall {
  ns: string;
  op: string;
  args: unknown[];
}

interface Link extends LinkInfo {
  mac: string;
  port: { hairpin: boolean; isolated: boolean };
  peer?: { ns: FakeNamespace; index: number };
  vxlan?: VxlanInfo;
}

const IFNAME = /^[^/:\s]{1,15}$/;
const fail = (what: string, errno: number) => new KernelError(`${what}: ${errnoText(errno)}`, errno);
const canonical = (address: string, what: string) => {
  try {
    return parseAddress(address);
  } catch {
    throw fail(what, EINVAL);
  }
};

/** The kernel's random MAC (locally administered, unicast), made deterministic per namespace and name. */
function randomMac(seed: string): string {
  const b = [...createHash("sha256").update(seed).digest().subarray(0, 6)];
  b[0] = (b[0]! & 0xfc) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** fe80::/64 EUI-64 address of a MAC, as the kernel derives it. */
function linkLocal(mac: string): string {
  const b = mac.split(":").map((h) => Number.parseInt(h, 16));
  const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  const raw = `fe80::${hex(b[0]! ^ 2, b[1]!)}:${hex(b[2]!, 0xff)}:${hex(0xfe, b[3]!)}:${hex(b[4]!, b[5]!)}`;
  return formatAddress(6, parseAddress(raw).value);
}

/** One namespace's objects, and its Netlink. Inspect them through the read methods. */
export class FakeNamespace implements Netlink {
  readonly links = new Map<number, Link>();
  addresses: AddressInfo[] = [];
  /** routes added with addRoute (connected and local routes are derived from addresses) */
  staticRoutes: RouteInfo[] = [];
  fdb: FdbEntry[] = [];
  neighbours: NeighbourEntry[] = [];
  private nextIndex = 1;

  constructor(
    readonly kernel: FakeKernel,
    /** "host" or the netns path */
    readonly label: string,
    loUp = false,
  ) {
    this.addLink({ name: "lo", mtu: 65536, up: loUp, mac: "00:00:00:00:00:00" });
  }

  // --- test-side helpers (not part of Netlink, never recorded) -----------------------------------

  /** A link as the kernel would report it, by name. */
  link(name: string): LinkInfo | undefined {
    const l = this.byName(name);
    return l && this.info(l);
  }

  /** Bridge-port flags of a link (both false when not a port). */
  portFlags(name: string): { hairpin: boolean; isolated: boolean } | undefined {
    const l = this.byName(name);
    return l && { ...l.port };
  }

  /** "address/len" of a link's addresses, in the order they were added. */
  addressesOf(name: string): string[] {
    const l = this.byName(name);
    return this.addresses.filter((a) => a.index === l?.index).map((a) => `${a.address}/${a.prefixLen}`);
  }

  /** Adds an address without recording a call and without the kernel's checks (e.g. a stray one). */
  seedAddress(name: string, cidr: string): void {
    const link = this.byName(name);
    if (!link) throw new Error(`seedAddress: no link ${name} in ${this.label}`);
    const c = parseCidr(cidr);
    this.addresses.push({
      index: link.index,
      family: c.family,
      address: formatAddress(c.family, c.address),
      prefixLen: c.prefixLen,
    });
  }

  /** Adds a link the Netlink interface cannot create (a physical NIC, a dummy); not recorded. */
  addLink(spec: { name: string; mtu?: number; up?: boolean; mac?: string; kind?: string; alias?: string }) {
    const link: Link = {
      index: this.nextIndex++,
      name: spec.name,
      mtu: spec.mtu ?? 1500,
      up: false,
      mac: spec.mac ?? randomMac(`${this.label}/${spec.name}`),
      port: { hairpin: false, isolated: false },
      ...(spec.kind !== undefined ? { kind: spec.kind } : {}),
      ...(spec.alias !== undefined ? { alias: spec.alias } : {}),
    };
    this.links.set(link.index, link);
    if (spec.up) this.setUp(link, true);
    return this.info(link);
  }

  // --- Netlink: reads -------------------------------------------------------------------------------

  async listLinks(): Promise<LinkInfo[]> {
    return [...this.links.values()].map((l) => this.info(l));
  }
  async getLink(name: string): Promise<LinkInfo | undefined> {
    return this.link(name);
  }
  async getLinkByIndex(index: number): Promise<LinkInfo | undefined> {
    const l = this.links.get(index);
    return l && this.info(l);
  }
  async listAddresses(family?: Family): Promise<AddressInfo[]> {
    return this.addresses.filter((a) => family === undefined || a.family === family).map((a) => ({ ...a }));
  }
  async listRoutes(family: Family): Promise<RouteInfo[]> {
    const derived: RouteInfo[] = [];
    for (const a of this.addresses) {
      if (a.family !== family || !this.links.get(a.index)?.up) continue;
      const value = parseAddress(a.address).value;
      const network = formatAddress(family, value & prefixMask(family, a.prefixLen));
      if (a.prefixLen < (family === 4 ? 32 : 128))
        derived.push({ family, dst: network, dstLen: a.prefixLen, oif: a.index, table: 254, type: 1 });
      derived.push({
        family,
        dst: a.address,
        dstLen: family === 4 ? 32 : 128,
        oif: a.index,
        table: 255,
        type: 2,
      });
    }
    return [...derived, ...this.staticRoutes.filter((r) => r.family === family).map((r) => ({ ...r }))];
  }
  async listFdb(index?: number): Promise<FdbEntry[]> {
    return this.fdb.filter((e) => index === undefined || e.index === index).map((e) => ({ ...e }));
  }
  async listNeighbours(index?: number, family?: Family): Promise<NeighbourEntry[]> {
    return this.neighbours
      .filter(
        (n) => (index === undefined || n.index === index) && (family === undefined || n.family === family),
      )
      .map((n) => ({ ...n }));
  }

  // --- Netlink: links -------------------------------------------------------------------------------

  async createBridge(spec: BridgeSpec): Promise<void> {
    this.record("createBridge", spec);
    this.checkNewName(spec.name, `create bridge ${spec.name}`);
    this.addLink({ ...spec, kind: "bridge" });
  }

  async createVeth(spec: VethSpec): Promise<void> {
    this.record("createVeth", spec);
    const what = `create veth ${spec.name} (peer ${spec.peer.name})`;
    const peerNs = this.kernel.namespaceOf(spec.peer.netns);
    this.checkNewName(spec.name, what);
    peerNs.checkNewName(spec.peer.name, what);
    if (peerNs === this && spec.name === spec.peer.name) throw fail(what, EEXIST);
    // The kernel registers the peer first (in the same namespace it gets the lower index).
    const peer = peerNs.links.get(peerNs.addLink({ ...spec.peer, mtu: spec.mtu, kind: "veth" }).index)!;
    const host = this.links.get(this.addLink({ ...spec, kind: "veth" }).index)!;
    host.peer = { ns: peerNs, index: peer.index };
    peer.peer = { ns: this, index: host.index };
  }

  async createVxlan(spec: VxlanSpec): Promise<void> {
    this.record("createVxlan", spec);
    const what = `create vxlan ${spec.name}`;
    this.checkNewName(spec.name, what);
    if (!Number.isInteger(spec.vni) || spec.vni < 0 || spec.vni >= 1 << 24) throw fail(what, EINVAL);
    if (spec.dev !== undefined && !this.links.has(spec.dev)) throw fail(what, ENODEV);
    if (spec.master !== undefined) this.bridgeAt(spec.master, what);
    const link = this.links.get(this.addLink({ ...spec, up: false, kind: "vxlan" }).index)!;
    const { vni, dstPort: port, local, learning, proxy } = spec;
    link.vxlan = { vni, port, learning, proxy, ...(local !== undefined ? { local } : {}) };
    if (spec.master !== undefined) link.master = spec.master;
    if (spec.up) this.setUp(link, true);
  }

  async setLink(index: number, change: LinkChange): Promise<void> {
    this.record("setLink", index, change);
    const what = `set link #${index}`;
    const link = this.links.get(index);
    if (!link) throw fail(what, ENODEV);
    if (change.name !== undefined && change.name !== link.name) {
      if (link.up) throw fail(what, EBUSY);
      this.checkNewName(change.name, what);
    }
    if (change.mtu !== undefined && (change.mtu < 68 || change.mtu > 65535)) throw fail(what, EINVAL);
    if (change.master) this.bridgeAt(change.master, what, index);
    if (change.name !== undefined) link.name = change.name;
    if (change.mtu !== undefined) link.mtu = change.mtu;
    if (change.mac !== undefined) link.mac = change.mac.toLowerCase();
    if (change.master !== undefined) this.setMaster(link, change.master);
    if (change.alias === "") delete link.alias;
    else if (change.alias !== undefined) link.alias = change.alias;
    if (change.up !== undefined) this.setUp(link, change.up);
  }

  async setBridgePortHairpin(index: number, on: boolean): Promise<void> {
    this.record("setBridgePortHairpin", index, on);
    this.portAt(index).hairpin = on;
  }

  async setBridgePort(index: number, flags: { hairpin?: boolean; isolated?: boolean }): Promise<void> {
    this.record("setBridgePort", index, flags);
    const port = this.portAt(index);
    if (flags.hairpin !== undefined) port.hairpin = flags.hairpin;
    if (flags.isolated !== undefined) port.isolated = flags.isolated;
  }

  async deleteLink(index: number): Promise<boolean> {
    this.record("deleteLink", index);
    return this.destroy(index);
  }

  async deleteLinkByName(name: string): Promise<boolean> {
    this.record("deleteLinkByName", name);
    const link = this.byName(name);
    return link !== undefined && this.destroy(link.index);
  }

  // --- Netlink: addresses and routes ------------------------------------------------------------

  async addAddress(index: number, address: string, prefixLen: number): Promise<void> {
    this.record("addAddress", index, address, prefixLen);
    const what = `add address ${address}/${prefixLen} to link #${index}`;
    if (!this.links.has(index)) throw fail(what, ENODEV);
    const ip = canonical(address, what);
    if (prefixLen < 0 || prefixLen > (ip.family === 4 ? 32 : 128)) throw fail(what, EINVAL);
    const text = formatAddress(ip.family, ip.value);
    const exists = this.addresses.some(
      (a) => a.index === index && a.address === text && (ip.family === 6 || a.prefixLen === prefixLen),
    );
    if (!exists) this.addresses.push({ index, family: ip.family, address: text, prefixLen });
  }

  async deleteAddress(index: number, address: string, prefixLen: number): Promise<boolean> {
    this.record("deleteAddress", index, address, prefixLen);
    const what = `delete address ${address}/${prefixLen} from link #${index}`;
    if (!this.links.has(index)) return false;
    const ip = canonical(address, what);
    const text = formatAddress(ip.family, ip.value);
    const before = this.addresses.length;
    this.addresses = this.addresses.filter(
      (a) => !(a.index === index && a.address === text && a.prefixLen === prefixLen),
    );
    return this.addresses.length < before;
  }

  async addRoute(route: RouteSpec): Promise<void> {
    this.record("addRoute", route);
    const what = `add route ${route.dst ?? "default"}`;
    const dst = route.dst === undefined ? undefined : parseCidr(route.dst);
    const family = route.family;
    let oif = route.oif;
    if (oif !== undefined) {
      const dev = this.links.get(oif);
      if (!dev) throw fail(what, ENODEV);
      if (!dev.up) throw fail(what, ENETDOWN);
    }
    let gateway: string | undefined;
    if (route.gateway !== undefined) {
      const connected = (await this.listRoutes(family)).filter(
        (r) => r.table === 254 && r.gateway === undefined && (oif === undefined || r.oif === oif),
      );
      const gw = canonical(route.gateway, what);
      const via = connected.find((r) => contains(`${r.dst}/${r.dstLen}`, gw));
      if (!via) throw fail(what, ENETUNREACH);
      oif ??= via.oif;
      gateway = formatAddress(gw.family, gw.value);
    }
    if (oif === undefined) throw fail(what, EINVAL);
    const info: RouteInfo = {
      family,
      ...(dst ? { dst: formatAddress(family, dst.network) } : {}),
      dstLen: dst?.prefixLen ?? 0,
      ...(gateway !== undefined ? { gateway } : {}),
      oif,
      table: 254,
      type: 1,
    };
    const same = (r: RouteInfo) => r.family === family && r.dst === info.dst && r.dstLen === info.dstLen;
    if (!this.staticRoutes.some(same)) this.staticRoutes.push(info);
  }

  async deleteRoute(route: RouteSpec): Promise<boolean> {
    this.record("deleteRoute", route);
    const dst = route.dst === undefined ? undefined : parseCidr(route.dst);
    const dstText = dst && formatAddress(route.family, dst.network);
    const i = this.staticRoutes.findIndex(
      (r) =>
        r.family === route.family &&
        r.dst === dstText &&
        r.dstLen === (dst?.prefixLen ?? 0) &&
        (route.gateway === undefined || r.gateway === route.gateway) &&
        (route.oif === undefined || r.oif === route.oif),
    );
    if (i >= 0) this.staticRoutes.splice(i, 1);
    return i >= 0;
  }

  // --- Netlink: FDB and neighbours ----------------------------------------------------------------

  async addFdb(entry: FdbSpec): Promise<void> {
    this.record("addFdb", entry);
    const link = this.links.get(entry.index);
    if (!link) throw fail(`add fdb ${entry.mac}`, ENODEV);
    if (!(entry.self ?? true) && !entry.master)
      throw invalid("an FDB request needs self or master (or both)");
    const mac = entry.mac.toLowerCase();
    const put = (e: FdbEntry) => {
      this.fdb = this.fdb.filter((x) => !(x.index === e.index && x.mac === e.mac && x.master === e.master));
      this.fdb.push(e);
    };
    if (entry.self ?? true)
      put({
        index: entry.index,
        mac,
        dst: entry.dst,
        master: false,
        self: true,
        permanent: true,
        state: NUD_PERMANENT,
      });
    if (entry.master) {
      if (link.master === undefined) throw fail(`add fdb ${entry.mac} master`, EINVAL);
      put({ index: entry.index, mac, master: true, self: false, permanent: false, state: 0x40 });
    }
  }

  async deleteFdb(key: FdbKey): Promise<boolean> {
    this.record("deleteFdb", key);
    const mac = key.mac.toLowerCase();
    const before = this.fdb.length;
    this.fdb = this.fdb.filter(
      (e) =>
        !(
          e.index === key.index &&
          e.mac === mac &&
          ((e.self && (key.self ?? true) && (key.dst === undefined || e.dst === key.dst)) ||
            (e.master && (key.master ?? false)))
        ),
    );
    return this.fdb.length < before;
  }

  async addNeighbour(entry: NeighbourSpec): Promise<void> {
    this.record("addNeighbour", entry);
    const what = `add neighbour ${entry.address}`;
    if (!this.links.has(entry.index)) throw fail(what, ENODEV);
    const ip = canonical(entry.address, what);
    const address = formatAddress(ip.family, ip.value);
    this.neighbours = this.neighbours.filter((n) => !(n.index === entry.index && n.address === address));
    const mac = entry.mac.toLowerCase();
    this.neighbours.push({
      index: entry.index,
      family: ip.family,
      address,
      mac,
      state: NUD_PERMANENT,
      permanent: true,
    });
  }

  async deleteNeighbour(key: NeighbourKey): Promise<boolean> {
    this.record("deleteNeighbour", key);
    const ip = canonical(key.address, `delete neighbour ${key.address}`);
    const address = formatAddress(ip.family, ip.value);
    const before = this.neighbours.length;
    this.neighbours = this.neighbours.filter((n) => !(n.index === key.index && n.address === address));
    return this.neighbours.length < before;
  }

  close(): void {}

  // --- internals ----------------------------------------------------------------------------------

  private record(op: string, ...args: unknown[]) {
    this.kernel.record(this.label, op, args);
  }

  private byName(name: string): Link | undefined {
    return [...this.links.values()].find((l) => l.name === name);
  }

  private info(l: Link): LinkInfo {
    const { port: _port, peer, ...rest } = l;
    return structuredClone({ ...rest, ...(peer ? { peerIndex: peer.index } : {}) });
  }

  checkNewName(name: string, what: string) {
    if (!IFNAME.test(name)) throw fail(what, EINVAL);
    if (this.byName(name)) throw fail(what, EEXIST);
  }

  private bridgeAt(index: number, what: string, port?: number) {
    const br = this.links.get(index);
    if (!br) throw fail(what, ENODEV);
    if (br.kind !== "bridge" || index === port) throw fail(what, EOPNOTSUPP);
  }

  private portAt(index: number) {
    const link = this.links.get(index);
    if (!link) throw fail(`set bridge port #${index}`, ENODEV);
    if (link.master === undefined) throw fail(`set bridge port #${index}`, EOPNOTSUPP);
    return link.port;
  }

  private setMaster(link: Link, master: number) {
    if (master === 0) {
      delete link.master;
      link.port = { hairpin: false, isolated: false };
    } else link.master = master;
  }

  private setUp(link: Link, up: boolean) {
    if (link.up === up) return;
    link.up = up;
    if (!up) {
      this.addresses = this.addresses.filter((a) => !(a.index === link.index && a.family === 6));
      this.staticRoutes = this.staticRoutes.filter((r) => r.oif !== link.index);
      return;
    }
    if (link.name === "lo" && link.kind === undefined) {
      this.autoAddress(link, 4, "127.0.0.1", 8);
      this.autoAddress(link, 6, "::1", 128);
    } else if (link.kind !== "veth") this.autoAddress(link, 6, linkLocal(link.mac), 64);
    else if (link.peer) {
      // a veth has carrier (and IPv6 starts) only when both ends are up
      const peer = link.peer.ns.links.get(link.peer.index);
      if (peer?.up) {
        this.autoAddress(link, 6, linkLocal(link.mac), 64);
        link.peer.ns.autoAddress(peer, 6, linkLocal(peer.mac), 64);
      }
    }
  }

  private autoAddress(link: Link, family: Family, address: string, prefixLen: number) {
    if (!this.addresses.some((a) => a.index === link.index && a.address === address))
      this.addresses.push({ index: link.index, family, address, prefixLen });
  }

  /** Removes a link and everything hanging off it; a veth takes its peer along. */
  destroy(index: number): boolean {
    const link = this.links.get(index);
    if (!link) return false;
    this.links.delete(index);
    this.addresses = this.addresses.filter((a) => a.index !== index);
    this.staticRoutes = this.staticRoutes.filter((r) => r.oif !== index);
    this.fdb = this.fdb.filter((e) => e.index !== index);
    this.neighbours = this.neighbours.filter((n) => n.index !== index);
    for (const l of this.links.values()) if (l.master === index) this.setMaster(l, 0);
    if (link.peer) {
      const { ns, index: peerIndex } = link.peer;
      const peer = ns.links.get(peerIndex);
      if (peer) delete peer.peer;
      ns.destroy(peerIndex);
    }
    return true;
  }
}

export interface FakeKernelOptions {
  /** Kernel.listenInNetns; the default throws (a fake namespace has no sockets) */
  listenInNetns?: (ns: NetnsRef, proto: "udp" | "tcp", address: string, port: number) => number;
  /** Kernel.iptables; the default succeeds with no output */
  iptables?: (family: 4 | 6, args: string[]) => { code: number; stdout: string; stderr: string };
}

export class FakeKernel implements Kernel {
  /** every mutating call, in order */
  readonly calls: KernelCall[] = [];
  /** scripts given to nftApply, in order */
  readonly nftScripts: Array<{ script: string; netns?: string }> = [];
  readonly sysctls = new Map<string, string>();
  readonly released: NetnsRef[] = [];
  readonly hostNs: FakeNamespace;
  private readonly namespaces = new Map<string, { ref: NetnsRef; ns: FakeNamespace; pid?: number }>();
  private readonly failures: Array<{ op: string; ns?: string; error: Error }> = [];
  private inoCounter = 4026532000;
  private closed = false;

  constructor(private readonly options: FakeKernelOptions = {}) {
    this.hostNs = new FakeNamespace(this, "host", true);
    // The daemon's own namespace by its path, as the real adapter resolves it (a veth whose far
    // end stays in the host, for a Docker engine to take).
    const own: NetnsRef = { path: "/proc/self/ns/net", dev: 4, ino: 4026531840 };
    this.namespaces.set(key(own), { ref: own, ns: this.hostNs });
  }

  // --- test-side helpers --------------------------------------------------------------------------

  /** A new namespace (like `ip netns add NAME`), with lo down. */
  addNetns(name: string, opts: { pid?: number } = {}): NetnsRef {
    const ref: NetnsRef = { path: `/run/netns/${name}`, dev: 4, ino: this.inoCounter++ };
    this.namespaces.set(key(ref), {
      ref,
      ns: new FakeNamespace(this, ref.path),
      ...(opts.pid !== undefined ? { pid: opts.pid } : {}),
    });
    return ref;
  }

  /** The namespace goes away (its container exited): its links die, veth peers elsewhere too. */
  removeNetns(ref: NetnsRef): void {
    const entry = this.namespaces.get(key(ref));
    if (!entry) return;
    for (const index of [...entry.ns.links.keys()]) entry.ns.destroy(index);
    this.namespaces.delete(key(ref));
  }

  /** A namespace's state for assertions: the host's without an argument. */
  ns(ref?: NetnsRef): FakeNamespace {
    return ref === undefined ? this.hostNs : this.namespaceOf(ref);
  }

  /** Makes the next call of `op` (optionally in one namespace: "host" or a path) throw `error`. */
  failNext(op: string, error: Error, ns?: string): void {
    this.failures.push({ op, error, ...(ns !== undefined ? { ns } : {}) });
  }

  /** The recorded calls, optionally only those of some operations. */
  callsOf(...ops: string[]): KernelCall[] {
    return this.calls.filter((c) => ops.length === 0 || ops.includes(c.op));
  }

  clearCalls(): void {
    this.calls.length = 0;
  }

  /** Records a call, or throws the failure injected for it. */
  record(ns: string, op: string, args: unknown[]): void {
    this.calls.push({ ns, op, args: structuredClone(args) });
    const i = this.failures.findIndex((f) => f.op === op && (f.ns === undefined || f.ns === ns));
    if (i >= 0) throw this.failures.splice(i, 1)[0]!.error;
  }

  namespaceOf(ref: NetnsRef): FakeNamespace {
    const entry = this.namespaces.get(key(ref));
    if (!entry || entry.ref.path !== ref.path) throw notFound(`network namespace ${ref.path} is gone`);
    return entry.ns;
  }

  // --- Kernel -------------------------------------------------------------------------------------

  host(): Netlink {
    this.assertOpen();
    return this.hostNs;
  }

  inNetns(ns: NetnsRef): Netlink {
    this.assertOpen();
    return this.namespaceOf(ns);
  }

  releaseNetns(ns: NetnsRef): void {
    this.released.push(ns);
  }

  async resolveNetns(ref: string): Promise<NetnsRef> {
    const pid = /^pid:(\d+)$/.exec(ref)?.[1];
    for (const entry of this.namespaces.values()) {
      if (
        pid !== undefined
          ? entry.pid === Number(pid)
          : entry.ref.path === ref || entry.ref.path === `/run/netns/${ref}`
      )
        return entry.ref;
    }
    throw notFound(`no such network namespace: ${ref}`);
  }

  async netnsAlive(ns: NetnsRef): Promise<boolean> {
    return this.namespaces.get(key(ns))?.ref.path === ns.path;
  }

  async nftApply(script: string, opts?: NftOptions): Promise<void> {
    this.record(opts?.netns?.path ?? "host", "nftApply", [script]);
    this.nftScripts.push({ script, ...(opts?.netns ? { netns: opts.netns.path } : {}) });
  }

  /** Kernel.nftSession: each apply is an nftApply call (same records, same injected failures). */
  nftSession(opts?: NftOptions): NftSession {
    let closed = false;
    return {
      pid: undefined,
      apply: (script) =>
        closed ? Promise.reject(new KernelError("nft session is closed")) : this.nftApply(script, opts),
      close: async () => {
        closed = true;
      },
    };
  }

  async nftListTable(_family: string, _name: string, _opts?: NftOptions): Promise<unknown | undefined> {
    return undefined;
  }

  async iptables(family: 4 | 6, args: string[]) {
    this.record("host", "iptables", [family, args]);
    return this.options.iptables?.(family, args) ?? { code: 0, stdout: "", stderr: "" };
  }

  listenInNetns(ns: NetnsRef, proto: "udp" | "tcp", address: string, port: number): number {
    this.namespaceOf(ns);
    if (this.options.listenInNetns) return this.options.listenInNetns(ns, proto, address, port);
    throw new KernelError(
      `listen ${proto} ${address}:${port} in ${ns.path}: not available in the fake kernel`,
    );
  }

  async setSysctl(key: string, value: string): Promise<void> {
    this.record("host", "setSysctl", [key, value]);
    this.sysctls.set(key, value);
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen() {
    if (this.closed) throw new KernelError("kernel adapter is closed");
  }
}

const key = (ns: NetnsRef) => `${ns.dev}:${ns.ino}`;
