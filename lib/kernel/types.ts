/**
 * The kernel adapter's contract. Everything in trellis that touches the kernel goes through these
 * interfaces; drivers and the reconciler never spawn processes or open sockets themselves.
 */

/** A network namespace, identified by the file that pins it and by its inode (stable identity). */
export interface NetnsRef {
  /** e.g. /run/netns/NAME, /proc/PID/ns/net, /var/run/docker/netns/ID */
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "bridge", "veth", "vxlan", ... (undefined for lo, physical) */
  kind?: string;
  mtu: number;
  /** IFF_UP administratively set */
  up: boolean;
  /** ifindex of the master (bridge) if enslaved */
  master?: number;
  /** lower-case colon-separated MAC */
  mac?: string;
  /** IFLA_IFALIAS; trellis marks the links it owns with "trellis:..." */
  alias?: string;
  /** veth: ifindex of the peer (in the peer's namespace) */
  peerIndex?: number;
  /** vxlan: the tunnel's configuration as the kernel reports it */
  vxlan?: VxlanInfo;
}

export interface VxlanInfo {
  vni: number;
  /** UDP destination port (host order; the wire attribute is big-endian) */
  port: number;
  /** local VTEP address, if set */
  local?: string;
  /** the device learns remote MAC -> VTEP mappings from received traffic */
  learning: boolean;
  /** ARP/ND requests are answered from the neighbour table of the vxlan device */
  proxy: boolean;
}

export interface AddressInfo {
  index: number;
  family: 4 | 6;
  address: string;
  prefixLen: number;
}

export interface RouteInfo {
  family: 4 | 6;
  /** destination network address WITHOUT the prefix length (see dstLen), e.g. "10.0.0.0";
   * undefined for the default route */
  dst?: string;
  dstLen: number;
  gateway?: string;
  oif?: number;
  table: number;
  /** RTN_UNICAST = 1, RTN_LOCAL = 2, ... */
  type: number;
}

export interface LinkChange {
  up?: boolean;
  /** ifindex of the new master; 0 to release from the bridge */
  master?: number;
  mtu?: number;
  alias?: string;
  name?: string;
  mac?: string;
}

export interface BridgeSpec {
  name: string;
  mtu: number;
  mac?: string;
  alias?: string;
}

export interface VethSpec {
  /** host-side name (in the namespace of this Netlink handle) */
  name: string;
  mtu: number;
  mac?: string;
  alias?: string;
  /** the other end, created directly inside another namespace */
  peer: { name: string; netns: NetnsRef; mac?: string; alias?: string };
}

/**
 * A vxlan device for an overlay network: unicast only (no multicast group), remote endpoints come
 * from FDB and neighbour entries that trellis programs (learning off, proxy on).
 */
export interface VxlanSpec {
  name: string;
  /** VNI, 0 .. 2^24-1 */
  vni: number;
  /** UDP destination port: 4789 (IANA). Required: the kernel's default is the legacy 8472. */
  dstPort: number;
  /** local VTEP address (IPv4 or IPv6): the source of encapsulated packets */
  local?: string;
  /** ifindex of the underlay device the tunnel is bound to */
  dev?: number;
  /** overlay MTU: underlay MTU - 50 (IPv4 underlay) */
  mtu: number;
  /** false for trellis: remote MACs come only from the endpoint table */
  learning: boolean;
  /** true for trellis: ARP/ND answered locally from the neighbour table, never flooded */
  proxy: boolean;
  mac?: string;
  alias?: string;
  /** ifindex of the bridge to enslave the device to, in the same message */
  master?: number;
  /** bring the device up in the same message */
  up?: boolean;
}

/** A bridge forwarding entry (`bridge fdb`), from the vxlan's own table or from its bridge's. */
export interface FdbEntry {
  /** ifindex of the port / device the entry belongs to */
  index: number;
  mac: string;
  /** NDA_DST: the remote VTEP (vxlan entries) */
  dst?: string;
  /** NDA_VNI: only reported when it differs from the device's VNI */
  vni?: number;
  /** an entry of the bridge the device is enslaved to (NTF_MASTER, or NDA_MASTER as the bridge
   * itself reports its entries) */
  master: boolean;
  /** NDA_MASTER: ifindex of that bridge */
  bridge?: number;
  /** NTF_SELF: an entry of the device's own table (the vxlan's MAC -> VTEP map) */
  self: boolean;
  /** NUD_PERMANENT (on a bridge entry this means "local": delivered to the bridge itself) */
  permanent: boolean;
  /** NUD_* bits as reported (NUD_NOARP = 0x40 is a bridge's "static") */
  state: number;
}

export interface FdbSpec {
  /** ifindex of the vxlan device (for master entries too: the port the MAC lives behind) */
  index: number;
  mac: string;
  /** remote VTEP; used by the vxlan's own (self) entry, ignored by the bridge's */
  dst: string;
  /** program the vxlan's own table (default true) */
  self?: boolean;
  /** also program the bridge's table, so it forwards the MAC to the vxlan port instead of
   * flooding it as unknown unicast (default false) */
  master?: boolean;
}

export interface FdbKey {
  index: number;
  mac: string;
  /** vxlan entries: delete only this remote (default: the entry whatever its remote) */
  dst?: string;
  /** delete from the vxlan's own table (default true) */
  self?: boolean;
  /** delete from the bridge's table (default false) */
  master?: boolean;
}

/** An IP -> MAC neighbour entry (`ip neigh`). */
export interface NeighbourEntry {
  index: number;
  family: 4 | 6;
  address: string;
  /** absent for entries still being resolved (NUD_INCOMPLETE, NUD_FAILED) */
  mac?: string;
  /** NUD_* bits */
  state: number;
  permanent: boolean;
}

export interface NeighbourSpec {
  index: number;
  address: string;
  mac: string;
}

export interface NeighbourKey {
  index: number;
  address: string;
}

export interface RouteSpec {
  family: 4 | 6;
  /** CIDR; undefined for a default route */
  dst?: string;
  gateway?: string;
  oif?: number;
}

/** rtnetlink operations inside ONE network namespace (the socket was created in it). */
export interface Netlink {
  listLinks(): Promise<LinkInfo[]>;
  getLink(name: string): Promise<LinkInfo | undefined>;
  /** Like getLink, by ifindex. */
  getLinkByIndex(index: number): Promise<LinkInfo | undefined>;
  /** Creates a bridge; EEXIST is an error (callers ensure by checking first). */
  createBridge(spec: BridgeSpec): Promise<void>;
  createVeth(spec: VethSpec): Promise<void>;
  setLink(index: number, change: LinkChange): Promise<void>;
  /** Sets hairpin mode on a bridge port so a container can reach itself through a published port. */
  setBridgePortHairpin(index: number, on: boolean): Promise<void>;
  /** Sets bridge-port flags (AF_BRIDGE, IFLA_PROTINFO): hairpin (IFLA_BRPORT_MODE), isolated (IFLA_BRPORT_ISOLATED). */
  setBridgePort(index: number, flags: { hairpin?: boolean; isolated?: boolean }): Promise<void>;
  /** Deletes a link; a missing link is not an error (returns false). */
  deleteLink(index: number): Promise<boolean>;
  deleteLinkByName(name: string): Promise<boolean>;
  listAddresses(family?: 4 | 6): Promise<AddressInfo[]>;
  /** Adds an address; an existing identical address is not an error. IPv6: nodad. */
  addAddress(index: number, address: string, prefixLen: number): Promise<void>;
  deleteAddress(index: number, address: string, prefixLen: number): Promise<boolean>;
  listRoutes(family: 4 | 6): Promise<RouteInfo[]>;
  /** Adds a route; an identical existing route is not an error. */
  addRoute(route: RouteSpec): Promise<void>;
  /** Deletes a route from the main table; a missing route is not an error (returns false). */
  deleteRoute(route: RouteSpec): Promise<boolean>;
  /** Creates a unicast vxlan device (no group); EEXIST is an error, as for createBridge. */
  createVxlan(spec: VxlanSpec): Promise<void>;
  /** FDB entries (AF_BRIDGE dump) of one device, or of every device. */
  listFdb(index?: number): Promise<FdbEntry[]>;
  /** Adds or replaces an FDB entry (idempotent; a changed dst replaces the old one). */
  addFdb(entry: FdbSpec): Promise<void>;
  /** Deletes an FDB entry from the tables asked for; false when none of them had it. */
  deleteFdb(key: FdbKey): Promise<boolean>;
  /** IPv4/IPv6 neighbour entries of one device, or of every device. */
  listNeighbours(index?: number, family?: 4 | 6): Promise<NeighbourEntry[]>;
  /** Adds or replaces a permanent neighbour entry (idempotent). */
  addNeighbour(entry: NeighbourSpec): Promise<void>;
  /** Deletes a neighbour entry; a missing one is not an error (returns false). */
  deleteNeighbour(key: NeighbourKey): Promise<boolean>;
  close(): void;
}

export interface NftOptions {
  /** Run nft inside this network namespace (nsenter --net) instead of the daemon's own. */
  netns?: NetnsRef;
}

/**
 * A long-lived nft process in one network namespace (lib/kernel/nft-session.ts): each apply is one
 * atomic transaction with nftApply's semantics and error messages, without a process start each
 * time. Calls are serialised. The owner must close() it: a live nft keeps its namespace alive.
 */
export interface NftSession {
  /** Applies the script as one transaction: all of it or, on any error, none of it (rejects with
   * nft's error text in a KernelError). */
  apply(script: string): Promise<void>;
  /** Waits for the applies in flight, ends the nft process and waits for its exit. Idempotent. */
  close(): Promise<void>;
  /** nft's PID while a process runs; undefined before the first apply, after it died, after close. */
  readonly pid: number | undefined;
}

/** Entry point to the kernel for the daemon. */
export interface Kernel {
  /** Netlink in the daemon's own ("host") namespace. */
  host(): Netlink;
  /** Netlink inside a container namespace; cached per namespace until release(). */
  inNetns(ns: NetnsRef): Netlink;
  releaseNetns(ns: NetnsRef): void;
  /** Resolves a container reference: `ip netns` name, a path to a netns file, or `pid:PID`. */
  resolveNetns(ref: string): Promise<NetnsRef>;
  /** True when the path still names the same namespace (same dev/ino). */
  netnsAlive(ns: NetnsRef): Promise<boolean>;
  /** Applies an nft script as one atomic transaction (`nft -f -`), in the daemon's namespace
   * unless opts.netns names another one. */
  nftApply(script: string, opts?: NftOptions): Promise<void>;
  /** A long-lived nft process for frequent transactions, in the daemon's namespace unless opts.netns
   * names another one. Optional: fakes may leave it out (callers then use nftApply). */
  nftSession?(opts?: NftOptions): NftSession;
  /** `nft -j list table FAMILY NAME`, parsed; undefined if the table does not exist. */
  nftListTable(family: string, name: string, opts?: NftOptions): Promise<unknown | undefined>;
  /** Runs iptables/ip6tables (-w) in the daemon's namespace; for Docker coexistence only. */
  iptables(family: 4 | 6, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * A socket bound to address:port INSIDE the container namespace (a UDP socket, or a listening TCP
   * one), returned as a non-blocking fd for Node to adopt; the caller owns and closes it. Refuses a
   * path that no longer names the same namespace (dev/ino).
   */
  listenInNetns(ns: NetnsRef, proto: "udp" | "tcp", address: string, port: number): number;
  /** Writes a sysctl in the daemon's namespace, e.g. ("net/ipv4/ip_forward", "1"). */
  setSysctl(key: string, value: string): Promise<void>;
  close(): void;
}
