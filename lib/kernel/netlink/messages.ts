/**
 * Pure rtnetlink message builders and parsers: one function per operation, returning the type,
 * the operation-specific header flags and the payload. The socket adds NLM_F_REQUEST, NLM_F_ACK
 * and the sequence number, so golden tests can pin these bytes exactly.
 */
import { invalid } from "../../common/errors.js";
import type {
  AddressInfo,
  BridgeSpec,
  LinkChange,
  LinkInfo,
  RouteInfo,
  RouteSpec,
  VxlanSpec,
} from "../types.js";
import { formatIp, formatMac, isNetworkAddress, parseCidr, parseIp, parseMac } from "./addr.js";
import {
  type Attr,
  attrBytes,
  attrMap,
  attrNest,
  attrStr,
  attrU8,
  attrU32,
  decodeIfAddrMsg,
  decodeIfInfoMsg,
  decodeRtMsg,
  encodeAttrs,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeRtMsg,
  IFADDRMSG_LEN,
  IFINFOMSG_LEN,
  type NlMessage,
  RTMSG_LEN,
  readStr,
  readU32,
} from "./codec.js";
import * as C from "./constants.js";
import { parseVxlanData, vxlanInfoData } from "./vxlan.js";

/** A request before framing: the socket adds NLM_F_REQUEST | NLM_F_ACK and the seq. */
export interface RtRequest {
  type: number;
  flags: number;
  payload: Buffer;
}

const CREATE = C.NLM_F_CREATE | C.NLM_F_EXCL;
const famOf = (f: 4 | 6): number => (f === 4 ? C.AF_INET : C.AF_INET6);

function request(type: number, flags: number, header: Buffer, attrs: readonly Attr[] = []): RtRequest {
  return { type, flags, payload: Buffer.concat([header, encodeAttrs(attrs)]) };
}

const link = (index: number, extra: Partial<Parameters<typeof encodeIfInfoMsg>[0]> = {}): Buffer =>
  encodeIfInfoMsg({ family: C.AF_UNSPEC, index, ...extra });

/** Statistics are most of a link message and trellis never reads them. */
const skipStats = attrU32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS);

// ---------------------------------------------------------------------------------------------
// Links

export const linkDump = (): RtRequest => request(C.RTM_GETLINK, C.NLM_F_DUMP, link(0), [skipStats]);

export const linkGetByName = (name: string): RtRequest =>
  request(C.RTM_GETLINK, 0, link(0), [attrStr(C.IFLA_IFNAME, name), skipStats]);

export const linkGetByIndex = (index: number): RtRequest =>
  request(C.RTM_GETLINK, 0, link(index), [skipStats]);

/** Attributes every new link can carry at creation. */
function baseLinkAttrs(spec: { name: string; mtu?: number; mac?: string }): Attr[] {
  const attrs = [attrStr(C.IFLA_IFNAME, spec.name)];
  if (spec.mtu !== undefined) attrs.push(attrU32(C.IFLA_MTU, spec.mtu));
  if (spec.mac !== undefined) attrs.push(attrBytes(C.IFLA_ADDRESS, parseMac(spec.mac)));
  return attrs;
}

export function newBridge(spec: BridgeSpec): RtRequest {
  const attrs = [...baseLinkAttrs(spec), attrNest(C.IFLA_LINKINFO, [attrStr(C.IFLA_INFO_KIND, "bridge")])];
  return request(C.RTM_NEWLINK, CREATE, link(0), attrs);
}

/** A vxlan device, enslaved and brought up in the same message when the spec asks: the kernel
 * unregisters it again if either fails, so there is never a half-configured tunnel. */
export function newVxlan(spec: VxlanSpec): RtRequest {
  const attrs = [
    ...baseLinkAttrs(spec),
    attrNest(C.IFLA_LINKINFO, [
      attrStr(C.IFLA_INFO_KIND, "vxlan"),
      attrNest(C.IFLA_INFO_DATA, vxlanInfoData(spec)),
    ]),
  ];
  if (spec.master !== undefined) attrs.push(attrU32(C.IFLA_MASTER, spec.master));
  const up = spec.up ? { flags: C.IFF_UP, change: C.IFF_UP } : {};
  return request(C.RTM_NEWLINK, CREATE, link(0, up), attrs);
}

export interface NewVeth {
  name: string;
  mtu: number;
  mac?: string;
  peer: { name: string; mac?: string; netnsFd: number };
}

/**
 * A veth pair whose peer is born inside the namespace of `peer.netnsFd` (IFLA_NET_NS_FD inside
 * VETH_INFO_PEER), so it never shows up in this namespace, not even briefly under a temp name.
 * VETH_INFO_PEER carries a struct ifinfomsg followed by the peer's own link attributes.
 */
export function newVeth(spec: NewVeth): RtRequest {
  const peerAttrs = [
    ...baseLinkAttrs({ name: spec.peer.name, mtu: spec.mtu, mac: spec.peer.mac }),
    attrU32(C.IFLA_NET_NS_FD, spec.peer.netnsFd),
  ];
  const peer = Buffer.concat([link(0), encodeAttrs(peerAttrs)]);
  const linkInfo = attrNest(C.IFLA_LINKINFO, [
    attrStr(C.IFLA_INFO_KIND, "veth"),
    attrNest(C.IFLA_INFO_DATA, [attrBytes(C.VETH_INFO_PEER, peer)]),
  ]);
  return request(C.RTM_NEWLINK, CREATE, link(0), [...baseLinkAttrs(spec), linkInfo]);
}

/** All changes in one RTM_NEWLINK; the kernel applies name, mtu and master before the up flag. */
export function setLink(index: number, change: LinkChange): RtRequest {
  const attrs: Attr[] = [];
  if (change.name !== undefined) attrs.push(attrStr(C.IFLA_IFNAME, change.name));
  if (change.mtu !== undefined) attrs.push(attrU32(C.IFLA_MTU, change.mtu));
  if (change.mac !== undefined) attrs.push(attrBytes(C.IFLA_ADDRESS, parseMac(change.mac)));
  if (change.master !== undefined) attrs.push(attrU32(C.IFLA_MASTER, change.master));
  // An empty IFLA_IFALIAS removes the alias, which is what alias: "" should mean.
  if (change.alias !== undefined) attrs.push(attrBytes(C.IFLA_IFALIAS, Buffer.from(change.alias, "utf8")));
  const up = change.up === undefined ? {} : { flags: change.up ? C.IFF_UP : 0, change: C.IFF_UP };
  return request(C.RTM_NEWLINK, 0, link(index, up), attrs);
}

/** Sets an alias on a link by name (creation ignores IFLA_IFALIAS, so this is a second step). */
export const setAliasByName = (name: string, alias: string): RtRequest =>
  request(C.RTM_NEWLINK, 0, link(0), [
    attrStr(C.IFLA_IFNAME, name),
    attrBytes(C.IFLA_IFALIAS, Buffer.from(alias, "utf8")),
  ]);

/** Bridge port flags (trellis sets hairpin and isolated). */
export interface BridgePortFlags {
  hairpin?: boolean;
  isolated?: boolean;
}

/** Bridge port flags travel as AF_BRIDGE + IFLA_PROTINFO; without NLA_F_NESTED the kernel would
 * read the attribute as a legacy STP port state instead. */
export function bridgePort(index: number, flags: BridgePortFlags): RtRequest {
  const attrs: Attr[] = [];
  if (flags.hairpin !== undefined) attrs.push(attrU8(C.IFLA_BRPORT_MODE, flags.hairpin ? 1 : 0));
  if (flags.isolated !== undefined) attrs.push(attrU8(C.IFLA_BRPORT_ISOLATED, flags.isolated ? 1 : 0));
  return request(C.RTM_SETLINK, 0, encodeIfInfoMsg({ family: C.AF_BRIDGE, index }), [
    attrNest(C.IFLA_PROTINFO, attrs),
  ]);
}

export const delLink = (index: number): RtRequest => request(C.RTM_DELLINK, 0, link(index));

export const delLinkByName = (name: string): RtRequest =>
  request(C.RTM_DELLINK, 0, link(0), [attrStr(C.IFLA_IFNAME, name)]);

export function parseLink(msg: NlMessage): LinkInfo {
  const hdr = decodeIfInfoMsg(msg.payload);
  const attrs = attrMap(msg.payload.subarray(IFINFOMSG_LEN));
  const info: LinkInfo = {
    index: hdr.index,
    name: readStr(attrs.get(C.IFLA_IFNAME) ?? Buffer.alloc(0)),
    mtu: readOptU32(attrs.get(C.IFLA_MTU)) ?? 0,
    up: (hdr.flags & C.IFF_UP) !== 0,
  };
  const linkInfo = attrs.get(C.IFLA_LINKINFO);
  const infoAttrs = linkInfo && attrMap(linkInfo);
  const kind = infoAttrs?.get(C.IFLA_INFO_KIND);
  if (kind) info.kind = readStr(kind);
  const data = infoAttrs?.get(C.IFLA_INFO_DATA);
  const vxlan = info.kind === "vxlan" && data ? parseVxlanData(data) : undefined;
  if (vxlan) info.vxlan = vxlan;
  const master = readOptU32(attrs.get(C.IFLA_MASTER));
  if (master) info.master = master;
  const mac = attrs.get(C.IFLA_ADDRESS);
  if (mac && mac.length === 6) info.mac = formatMac(mac);
  const alias = attrs.get(C.IFLA_IFALIAS);
  if (alias && alias.length > 0) info.alias = readStr(alias);
  // For a veth, IFLA_LINK is the peer's ifindex (in the peer's namespace when LINK_NETNSID is set).
  const peer = readOptU32(attrs.get(C.IFLA_LINK));
  if (info.kind === "veth" && peer) info.peerIndex = peer;
  return info;
}

const readOptU32 = (b: Buffer | undefined): number | undefined =>
  b && b.length >= 4 ? readU32(b) : undefined;

// ---------------------------------------------------------------------------------------------
// Addresses

export const addrDump = (family?: 4 | 6): RtRequest =>
  request(
    C.RTM_GETADDR,
    C.NLM_F_DUMP,
    encodeIfAddrMsg({
      family: family ? famOf(family) : C.AF_UNSPEC,
      prefixLen: 0,
      flags: 0,
      scope: 0,
      index: 0,
    }),
  );

function addrRequest(type: number, flags: number, index: number, address: string, prefixLen: number) {
  const ip = parseIp(address);
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > (ip.family === 4 ? 32 : 128)) {
    throw invalid(`invalid prefix length ${prefixLen} for ${address}`);
  }
  // Duplicate address detection would leave an IPv6 address "tentative" (unusable) for ~1 s.
  const ifaFlags = ip.family === 6 ? C.IFA_F_NODAD : 0;
  const hdr = encodeIfAddrMsg({ family: famOf(ip.family), prefixLen, flags: ifaFlags, scope: 0, index });
  const attrs = [attrBytes(C.IFA_LOCAL, ip.bytes), attrBytes(C.IFA_ADDRESS, ip.bytes)];
  if (ip.family === 6) attrs.push(attrU32(C.IFA_FLAGS, ifaFlags));
  return request(type, flags, hdr, attrs);
}

export const newAddr = (index: number, address: string, prefixLen: number): RtRequest =>
  addrRequest(C.RTM_NEWADDR, CREATE, index, address, prefixLen);

export const delAddr = (index: number, address: string, prefixLen: number): RtRequest =>
  addrRequest(C.RTM_DELADDR, 0, index, address, prefixLen);

/** Undefined for families other than IPv4/IPv6. */
export function parseAddress(msg: NlMessage): AddressInfo | undefined {
  const hdr = decodeIfAddrMsg(msg.payload);
  if (hdr.family !== C.AF_INET && hdr.family !== C.AF_INET6) return undefined;
  const attrs = attrMap(msg.payload.subarray(IFADDRMSG_LEN));
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
  const raw = attrs.get(C.IFA_LOCAL) ?? attrs.get(C.IFA_ADDRESS);
  if (!raw) return undefined;
  return {
    index: hdr.index,
    family: hdr.family === C.AF_INET ? 4 : 6,
    address: formatIp(raw),
    prefixLen: hdr.prefixLen,
  };
}

// ---------------------------------------------------------------------------------------------
// Routes

export const routeDump = (family: 4 | 6): RtRequest =>
  request(C.RTM_GETROUTE, C.NLM_F_DUMP, encodeRtMsg(rtmsg(famOf(family), 0, 0, 0, 0)));

function rtmsg(family: number, dstLen: number, table: number, protocol: number, scope: number) {
  return { family, dstLen, srcLen: 0, tos: 0, table, protocol, scope, type: C.RTN_UNICAST, flags: 0 };
}

function routeRequest(type: number, flags: number, spec: RouteSpec): RtRequest {
  const attrs: Attr[] = [attrU32(C.RTA_TABLE, C.RT_TABLE_MAIN)];
  let dstLen = 0;
  if (spec.dst !== undefined) {
    const dst = parseCidr(spec.dst);
    if (dst.family !== spec.family) throw invalid(`route destination ${spec.dst} is not IPv${spec.family}`);
    if (!isNetworkAddress(dst.bytes, dst.prefixLen)) {
      throw invalid(`route destination ${spec.dst} has host bits set`);
    }
    dstLen = dst.prefixLen;
    if (dstLen > 0) attrs.push(attrBytes(C.RTA_DST, dst.bytes));
  }
  if (spec.gateway !== undefined) {
    const gw = parseIp(spec.gateway);
    if (gw.family !== spec.family) throw invalid(`route gateway ${spec.gateway} is not IPv${spec.family}`);
    attrs.push(attrBytes(C.RTA_GATEWAY, gw.bytes));
  }
  if (spec.oif !== undefined) attrs.push(attrU32(C.RTA_OIF, spec.oif));
  if (spec.gateway === undefined && spec.oif === undefined) {
    throw invalid("a route needs a gateway or an output interface");
  }
  // Without a gateway the destination is on-link: scope link, as `ip route add ... dev X` does.
  const scope = spec.gateway === undefined ? C.RT_SCOPE_LINK : C.RT_SCOPE_UNIVERSE;
  const hdr = encodeRtMsg(rtmsg(famOf(spec.family), dstLen, C.RT_TABLE_MAIN, C.RTPROT_STATIC, scope));
  return request(type, flags, hdr, attrs);
}

export const newRoute = (spec: RouteSpec): RtRequest => routeRequest(C.RTM_NEWROUTE, CREATE, spec);
export const delRoute = (spec: RouteSpec): RtRequest => routeRequest(C.RTM_DELROUTE, 0, spec);

export function parseRoute(msg: NlMessage): RouteInfo | undefined {
  const hdr = decodeRtMsg(msg.payload);
  if (hdr.family !== C.AF_INET && hdr.family !== C.AF_INET6) return undefined;
  const attrs = attrMap(msg.payload.subarray(RTMSG_LEN));
  const route: RouteInfo = {
    family: hdr.family === C.AF_INET ? 4 : 6,
    dstLen: hdr.dstLen,
    // rtm_table is 8 bits; RTA_TABLE has the full id for tables >= 256.
    table: readOptU32(attrs.get(C.RTA_TABLE)) ?? hdr.table,
    type: hdr.type,
  };
  const dst = attrs.get(C.RTA_DST);
  if (dst) route.dst = formatIp(dst);
  const gw = attrs.get(C.RTA_GATEWAY);
  if (gw) route.gateway = formatIp(gw);
  const oif = readOptU32(attrs.get(C.RTA_OIF));
  if (oif !== undefined) route.oif = oif;
  return route;
}
