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
  close(): void;
}

export interface NftOptions {
  /** Run nft inside this network namespace (nsenter --net) instead of the daemon's own. */
  netns?: NetnsRef;
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
  /** `nft -j list table FAMILY NAME`, parsed; undefined if the table does not exist. */
  nftListTable(family: string, name: string, opts?: NftOptions): Promise<unknown | undefined>;
  /** Runs iptables/ip6tables (-w) in the daemon's namespace; for Docker coexistence only. */
  iptables(family: 4 | 6, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Writes a sysctl in the daemon's namespace, e.g. ("net/ipv4/ip_forward", "1"). */
  setSysctl(key: string, value: string): Promise<void>;
  close(): void;
}
