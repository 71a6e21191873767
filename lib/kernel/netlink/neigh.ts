/**
 * Pure builders and parsers for neighbour messages (struct ndmsg + NDA_* attributes), which carry
 * two kinds of entry: FDB entries (family AF_BRIDGE, MAC -> port or remote VTEP, `bridge fdb`) and
 * IP neighbours (AF_INET/AF_INET6, IP -> MAC, `ip neigh`). The overlay programs one of each per
 * remote endpoint on its vxlan device.
 */
import type { FdbEntry, FdbKey, FdbSpec, NeighbourEntry, NeighbourKey, NeighbourSpec } from "../types.js";
import { formatIp, formatMac, parseIp, parseMac } from "./addr.js";
import {
  type Attr,
  attrBytes,
  attrMap,
  attrU32,
  decodeNdMsg,
  encodeAttrs,
  encodeNdMsg,
  NDMSG_LEN,
  type NdMsg,
  type NlMessage,
  readU32,
} from "./codec.js";
import * as C from "./constants.js";
import type { RtRequest } from "./messages.js";

/** Add-or-replace: adding an entry twice is a no-op, and a moved endpoint overwrites its old one. */
const UPSERT = C.NLM_F_CREATE | C.NLM_F_REPLACE;

/** Which FDB a request addresses: the vxlan device's own (NTF_SELF) or its bridge's (NTF_MASTER). */
export type FdbTable = "self" | "master";

function ndRequest(type: number, flags: number, nd: Partial<NdMsg>, attrs: readonly Attr[]): RtRequest {
  const hdr = encodeNdMsg({ family: C.AF_UNSPEC, index: 0, state: 0, flags: 0, type: 0, ...nd });
  return { type, flags, payload: Buffer.concat([hdr, encodeAttrs(attrs)]) };
}

/** A dump filtered by device. The header's ifindex must stay 0 (strict checking rejects it), so
 * the filter is NDA_IFINDEX; a non-strict socket ignores it for AF_BRIDGE, and callers filter again. */
function ndDump(family: number, index?: number): RtRequest {
  const attrs = index === undefined ? [] : [attrU32(C.NDA_IFINDEX, index)];
  return ndRequest(C.RTM_GETNEIGH, C.NLM_F_DUMP, { family }, attrs);
}

const ipAttr = (type: number, text: string): Attr => attrBytes(type, parseIp(text).bytes);

// ---------------------------------------------------------------------------------------------
// FDB (AF_BRIDGE)

export const fdbDump = (index?: number): RtRequest => ndDump(C.AF_BRIDGE, index);

/**
 * The vxlan's own entry is NUD_PERMANENT with the remote VTEP in NDA_DST. The bridge's entry is
 * NUD_NOARP ("static"): NUD_PERMANENT there would make the MAC local to the bridge, which then
 * swallows the frames instead of forwarding them to the vxlan port.
 */
export function fdbAdd(spec: FdbSpec, table: FdbTable): RtRequest {
  const self = table === "self";
  const attrs = [attrBytes(C.NDA_LLADDR, parseMac(spec.mac))];
  if (self) attrs.push(ipAttr(C.NDA_DST, spec.dst));
  return ndRequest(
    C.RTM_NEWNEIGH,
    UPSERT,
    {
      family: C.AF_BRIDGE,
      index: spec.index,
      state: self ? C.NUD_PERMANENT : C.NUD_NOARP,
      flags: self ? C.NTF_SELF : C.NTF_MASTER,
    },
    attrs,
  );
}

/** Without dst the vxlan drops the whole entry; with it, only that remote. */
export function fdbDel(key: FdbKey, table: FdbTable): RtRequest {
  const self = table === "self";
  const attrs = [attrBytes(C.NDA_LLADDR, parseMac(key.mac))];
  if (self && key.dst !== undefined) attrs.push(ipAttr(C.NDA_DST, key.dst));
  return ndRequest(
    C.RTM_DELNEIGH,
    0,
    {
      family: C.AF_BRIDGE,
      index: key.index,
      flags: self ? C.NTF_SELF : C.NTF_MASTER,
    },
    attrs,
  );
}

/** Undefined for anything but an AF_BRIDGE entry with a MAC. */
export function parseFdb(msg: NlMessage): FdbEntry | undefined {
  const hdr = decodeNdMsg(msg.payload);
  if (hdr.family !== C.AF_BRIDGE) return undefined;
  const attrs = attrMap(msg.payload.subarray(NDMSG_LEN));
  const mac = attrs.get(C.NDA_LLADDR);
  if (mac?.length !== 6) return undefined;
  // The bridge marks its own entries with NDA_MASTER rather than NTF_MASTER.
  const bridge = attrs.get(C.NDA_MASTER);
  const entry: FdbEntry = {
    index: hdr.index,
    mac: formatMac(mac),
    master: (hdr.flags & C.NTF_MASTER) !== 0 || bridge !== undefined,
    self: (hdr.flags & C.NTF_SELF) !== 0,
    permanent: (hdr.state & C.NUD_PERMANENT) !== 0,
    state: hdr.state,
  };
  const dst = attrs.get(C.NDA_DST);
  if (dst && (dst.length === 4 || dst.length === 16)) entry.dst = formatIp(dst);
  const vni = attrs.get(C.NDA_VNI);
  if (vni && vni.length >= 4) entry.vni = readU32(vni);
  if (bridge && bridge.length >= 4) entry.bridge = readU32(bridge);
  return entry;
}

/** An FDB entry the way the kernel reports it in a dump (for tests and fakes): a bridge entry
 * (with `bridge`) carries NDA_MASTER and no NTF_MASTER, like the bridge's own dump. */
export function encodeFdbEntry(e: FdbEntry): Buffer {
  const asMaster = e.master && e.bridge === undefined ? C.NTF_MASTER : 0;
  const flags = (e.self ? C.NTF_SELF : 0) | asMaster;
  const attrs = [attrBytes(C.NDA_LLADDR, parseMac(e.mac))];
  if (e.dst !== undefined) attrs.push(ipAttr(C.NDA_DST, e.dst));
  if (e.vni !== undefined) attrs.push(attrU32(C.NDA_VNI, e.vni));
  if (e.bridge !== undefined) attrs.push(attrU32(C.NDA_MASTER, e.bridge));
  return ndRequest(0, 0, { family: C.AF_BRIDGE, index: e.index, state: e.state, flags }, attrs).payload;
}

// ---------------------------------------------------------------------------------------------
// IP neighbours (AF_INET, AF_INET6)

const famOf = (f: 4 | 6): number => (f === 4 ? C.AF_INET : C.AF_INET6);

export const neighDump = (index?: number, family?: 4 | 6): RtRequest =>
  ndDump(family === undefined ? C.AF_UNSPEC : famOf(family), index);

export function neighAdd(spec: NeighbourSpec): RtRequest {
  const ip = parseIp(spec.address);
  const attrs = [attrBytes(C.NDA_DST, ip.bytes), attrBytes(C.NDA_LLADDR, parseMac(spec.mac))];
  const nd = { family: famOf(ip.family), index: spec.index, state: C.NUD_PERMANENT };
  return ndRequest(C.RTM_NEWNEIGH, UPSERT, nd, attrs);
}

export function neighDel(key: NeighbourKey): RtRequest {
  const ip = parseIp(key.address);
  return ndRequest(C.RTM_DELNEIGH, 0, { family: famOf(ip.family), index: key.index }, [
    attrBytes(C.NDA_DST, ip.bytes),
  ]);
}

/** Undefined for other families and for entries without an address. */
export function parseNeighbour(msg: NlMessage): NeighbourEntry | undefined {
  const hdr = decodeNdMsg(msg.payload);
  if (hdr.family !== C.AF_INET && hdr.family !== C.AF_INET6) return undefined;
  const attrs = attrMap(msg.payload.subarray(NDMSG_LEN));
  const dst = attrs.get(C.NDA_DST);
  if (!dst || dst.length !== (hdr.family === C.AF_INET ? 4 : 16)) return undefined;
  const entry: NeighbourEntry = {
    index: hdr.index,
    family: hdr.family === C.AF_INET ? 4 : 6,
    address: formatIp(dst),
    state: hdr.state,
    permanent: (hdr.state & C.NUD_PERMANENT) !== 0,
  };
  const mac = attrs.get(C.NDA_LLADDR);
  if (mac && mac.length === 6) entry.mac = formatMac(mac);
  return entry;
}

/** A neighbour entry the way the kernel reports it in a dump (for tests and fakes). */
export function encodeNeighbourEntry(e: NeighbourEntry): Buffer {
  const attrs = [ipAttr(C.NDA_DST, e.address)];
  if (e.mac !== undefined) attrs.push(attrBytes(C.NDA_LLADDR, parseMac(e.mac)));
  return ndRequest(0, 0, { family: famOf(e.family), index: e.index, state: e.state }, attrs).payload;
}
