/**
 * The vxlan part of a link message (IFLA_LINKINFO / IFLA_INFO_DATA, enum IFLA_VXLAN_*): encode
 * for creation, decode for LinkInfo. Pure. The UDP port is the one big-endian attribute of the
 * set; every other integer is host order like the rest of rtnetlink.
 */
import { invalid } from "../../common/errors.js";
import type { VxlanInfo, VxlanSpec } from "../types.js";
import { formatIp, parseIp } from "./addr.js";
import { type Attr, attrBytes, attrMap, attrU8, attrU32, readU8, readU32 } from "./codec.js";
import * as C from "./constants.js";

/** The IFLA_INFO_DATA children of a unicast vxlan: no IFLA_VXLAN_GROUP, so no multicast, and
 * the miss notifications off (trellis programs entries ahead of traffic, never on demand). */
export function vxlanInfoData(spec: VxlanSpec): Attr[] {
  validate(spec);
  const port = Buffer.alloc(2);
  port.writeUInt16BE(spec.dstPort, 0);
  const attrs: Attr[] = [attrU32(C.IFLA_VXLAN_ID, spec.vni), attrBytes(C.IFLA_VXLAN_PORT, port)];
  if (spec.local !== undefined) {
    const ip = parseIp(spec.local);
    attrs.push(attrBytes(ip.family === 4 ? C.IFLA_VXLAN_LOCAL : C.IFLA_VXLAN_LOCAL6, ip.bytes));
  }
  if (spec.dev !== undefined) attrs.push(attrU32(C.IFLA_VXLAN_LINK, spec.dev));
  attrs.push(
    attrU8(C.IFLA_VXLAN_LEARNING, spec.learning ? 1 : 0),
    attrU8(C.IFLA_VXLAN_PROXY, spec.proxy ? 1 : 0),
    attrU8(C.IFLA_VXLAN_L2MISS, 0),
    attrU8(C.IFLA_VXLAN_L3MISS, 0),
  );
  return attrs;
}

function validate(spec: VxlanSpec): void {
  if (!Number.isInteger(spec.vni) || spec.vni < 0 || spec.vni >= C.VXLAN_N_VID) {
    throw invalid(`invalid VNI ${spec.vni} for ${spec.name} (0 .. ${C.VXLAN_N_VID - 1})`);
  }
  if (!Number.isInteger(spec.dstPort) || spec.dstPort < 1 || spec.dstPort > 0xffff) {
    throw invalid(`invalid vxlan port ${spec.dstPort} for ${spec.name}`);
  }
}

/** Decodes IFLA_INFO_DATA of a vxlan link; undefined when the kernel sent no VNI. */
export function parseVxlanData(data: Buffer): VxlanInfo | undefined {
  const attrs = attrMap(data);
  const id = attrs.get(C.IFLA_VXLAN_ID);
  if (!id || id.length < 4) return undefined;
  const port = attrs.get(C.IFLA_VXLAN_PORT);
  const info: VxlanInfo = {
    vni: readU32(id),
    port: port && port.length >= 2 ? port.readUInt16BE(0) : 0,
    learning: flag(attrs.get(C.IFLA_VXLAN_LEARNING)),
    proxy: flag(attrs.get(C.IFLA_VXLAN_PROXY)),
  };
  // Unset is normally left out; an all-zero address means unset too.
  const local = attrs.get(C.IFLA_VXLAN_LOCAL) ?? attrs.get(C.IFLA_VXLAN_LOCAL6);
  if (local && (local.length === 4 || local.length === 16) && local.some((b) => b !== 0)) {
    info.local = formatIp(local);
  }
  return info;
}

const flag = (b: Buffer | undefined): boolean => b !== undefined && b.length > 0 && readU8(b) !== 0;
