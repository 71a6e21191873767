/**
 * Pure netlink encoding and decoding: message framing (struct nlmsghdr), attributes (struct nlattr,
 * nested or not), the fixed rtnetlink family headers and NLMSG_ERROR replies. No I/O here: every
 * function maps bytes to values or back, so it is tested byte for byte against the kernel's layout.
 * Host byte order is little-endian on every platform trellis supports (x86_64, aarch64).
 */
import { KernelError } from "../../common/errors.js";
import {
  NLA_F_NESTED,
  NLA_HDRLEN,
  NLA_TYPE_MASK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from "./constants.js";

/** NLMSG_ALIGN / NLA_ALIGN: everything in netlink is padded to 4 bytes. */
export const align4 = (n: number): number => (n + 3) & ~3;

// ---------------------------------------------------------------------------------------------
// Attributes

/** An attribute to encode: a raw payload, or child attributes (a nested attribute). */
export interface Attr {
  /** attribute type including flag bits such as NLA_F_NESTED */
  readonly type: number;
  readonly value: Buffer | readonly Attr[];
}

/** A decoded attribute: type with flag bits stripped, flags kept apart, payload without padding. */
export interface RawAttr {
  readonly type: number;
  readonly nested: boolean;
  readonly data: Buffer;
}

export const attrU8 = (type: number, v: number): Attr => ({ type, value: Buffer.from([v & 0xff]) });
export const attrU32 = (type: number, v: number): Attr => ({ type, value: u32(v) });
export const attrS32 = (type: number, v: number): Attr => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return { type, value: b };
};
/** A NUL-terminated string, the way the kernel's NLA_STRING / NLA_NUL_STRING policies expect. */
export const attrStr = (type: number, s: string): Attr => ({
  type,
  value: Buffer.concat([Buffer.from(s, "utf8"), Buffer.alloc(1)]),
});
export const attrBytes = (type: number, data: Buffer): Attr => ({ type, value: data });
/** A nested attribute with NLA_F_NESTED set, which strict kernel validation requires. */
export const attrNest = (type: number, children: readonly Attr[]): Attr => ({
  type: type | NLA_F_NESTED,
  value: children,
});

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

export function encodeAttr(attr: Attr): Buffer {
  const payload = Buffer.isBuffer(attr.value) ? attr.value : encodeAttrs(attr.value);
  const len = NLA_HDRLEN + payload.length;
  if (len > 0xffff) throw new RangeError(`netlink attribute ${attr.type} too long (${len} bytes)`);
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(attr.type & 0xffff, 2);
  payload.copy(out, NLA_HDRLEN);
  return out;
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  return Buffer.concat(attrs.map(encodeAttr));
}

/** Decodes a run of attributes; a length that runs past the buffer is a malformed message. */
export function decodeAttrs(buf: Buffer): RawAttr[] {
  const out: RawAttr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new KernelError(`malformed netlink attribute (type ${rawType}, length ${len}) at offset ${off}`);
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      data: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes by type; like the kernel's nla_parse, a repeated type keeps the last one. */
export function attrMap(buf: Buffer): Map<number, Buffer> {
  const map = new Map<number, Buffer>();
  for (const a of decodeAttrs(buf)) map.set(a.type, a.data);
  return map;
}

export const readU32 = (b: Buffer): number => b.readUInt32LE(0);
export const readU8 = (b: Buffer): number => b.readUInt8(0);
/** A string attribute without its NUL terminator (and anything after it). */
export function readStr(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString("utf8", 0, nul < 0 ? b.length : nul);
}

// ---------------------------------------------------------------------------------------------
// Messages (struct nlmsghdr)

export interface NlHeader {
  type: number;
  flags: number;
  seq: number;
  /** nlmsg_pid: 0 for messages to the kernel (it fills in the port id itself) */
  pid?: number;
}

export interface NlMessage extends Required<NlHeader> {
  /** bytes after the 16-byte header, without trailing padding */
  payload: Buffer;
}

export function encodeMessage(header: NlHeader, payload: Buffer): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(header.type, 4);
  out.writeUInt16LE(header.flags, 6);
  out.writeUInt32LE(header.seq >>> 0, 8);
  out.writeUInt32LE((header.pid ?? 0) >>> 0, 12);
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Splits concatenated datagrams into messages (datagrams are whole messages, 4-aligned). */
export function decodeMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new KernelError(`malformed netlink message (length ${len}) at offset ${off}`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// NLMSG_ERROR (struct nlmsgerr + extended ack TLVs)

export interface NlError {
  /** positive errno; 0 is a plain acknowledgement */
  errno: number;
  /** NLMSGERR_ATTR_MSG: the kernel's human-readable reason, when it gave one */
  message?: string;
  /** NLMSGERR_ATTR_OFFS: byte offset of the offending attribute in the request */
  offset?: number;
}

export function decodeError(msg: NlMessage): NlError {
  const p = msg.payload;
  if (p.length < 4) throw new KernelError("malformed NLMSG_ERROR: no error code");
  const result: NlError = { errno: Math.abs(p.readInt32LE(0)) };
  if (!(msg.flags & NLM_F_ACK_TLVS) || p.length < 4 + NLMSG_HDRLEN) return result;
  // The echoed request is its header only when capped, else the whole original message.
  const echoedLen = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(p.readUInt32LE(4));
  const tlvs = p.subarray(Math.min(p.length, 4 + echoedLen));
  for (const a of decodeAttrs(tlvs)) {
    if (a.type === NLMSGERR_ATTR_MSG) result.message = readStr(a.data);
    else if (a.type === NLMSGERR_ATTR_OFFS && a.data.length >= 4) result.offset = readU32(a.data);
  }
  return result;
}

/** Encodes an NLMSG_ERROR payload the way the kernel does (for tests and fakes). */
export function encodeErrorPayload(errno: number, request: Buffer, extackMsg?: string): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32LE(-errno, 0);
  const echoed = request.subarray(0, NLMSG_HDRLEN);
  const tlvs =
    extackMsg === undefined ? Buffer.alloc(0) : encodeAttrs([attrStr(NLMSGERR_ATTR_MSG, extackMsg)]);
  return Buffer.concat([code, echoed, tlvs]);
}

// ---------------------------------------------------------------------------------------------
// Family headers

/** struct ifinfomsg (16 bytes) */
export interface IfInfoMsg {
  family: number;
  /** ifi_type: ARPHRD_*; 0 in requests */
  type?: number;
  index: number;
  flags?: number;
  /** ifi_change: which bits of flags to apply */
  change?: number;
}
export const IFINFOMSG_LEN = 16;

export function encodeIfInfoMsg(m: IfInfoMsg): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}

export function decodeIfInfoMsg(b: Buffer): Required<IfInfoMsg> {
  requireLen(b, IFINFOMSG_LEN, "ifinfomsg");
  return {
    family: b.readUInt8(0),
    type: b.readUInt16LE(2),
    index: b.readInt32LE(4),
    flags: b.readUInt32LE(8),
    change: b.readUInt32LE(12),
  };
}

/** struct ifaddrmsg (8 bytes) */
export interface IfAddrMsg {
  family: number;
  prefixLen: number;
  flags: number;
  scope: number;
  index: number;
}
export const IFADDRMSG_LEN = 8;

export function encodeIfAddrMsg(m: IfAddrMsg): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.prefixLen, 1);
  b.writeUInt8(m.flags & 0xff, 2);
  b.writeUInt8(m.scope, 3);
  b.writeUInt32LE(m.index >>> 0, 4);
  return b;
}

export function decodeIfAddrMsg(b: Buffer): IfAddrMsg {
  requireLen(b, IFADDRMSG_LEN, "ifaddrmsg");
  return {
    family: b.readUInt8(0),
    prefixLen: b.readUInt8(1),
    flags: b.readUInt8(2),
    scope: b.readUInt8(3),
    index: b.readUInt32LE(4),
  };
}

/** struct rtmsg (12 bytes) */
export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}
export const RTMSG_LEN = 12;

export function encodeRtMsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  [m.family, m.dstLen, m.srcLen, m.tos, m.table, m.protocol, m.scope, m.type].forEach((v, i) => {
    b.writeUInt8(v, i);
  });
  b.writeUInt32LE(m.flags >>> 0, 8);
  return b;
}

export function decodeRtMsg(b: Buffer): RtMsg {
  requireLen(b, RTMSG_LEN, "rtmsg");
  return {
    family: b.readUInt8(0),
    dstLen: b.readUInt8(1),
    srcLen: b.readUInt8(2),
    tos: b.readUInt8(3),
    table: b.readUInt8(4),
    protocol: b.readUInt8(5),
    scope: b.readUInt8(6),
    type: b.readUInt8(7),
    flags: b.readUInt32LE(8),
  };
}

/** struct ndmsg (12 bytes): neighbour and FDB entries */
export interface NdMsg {
  family: number;
  index: number;
  /** NUD_* */
  state: number;
  /** NTF_* */
  flags: number;
  type: number;
}
export const NDMSG_LEN = 12;

export function encodeNdMsg(m: NdMsg): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeInt32LE(m.index, 4);
  b.writeUInt16LE(m.state, 8);
  b.writeUInt8(m.flags, 10);
  b.writeUInt8(m.type, 11);
  return b;
}

export function decodeNdMsg(b: Buffer): NdMsg {
  requireLen(b, NDMSG_LEN, "ndmsg");
  return {
    family: b.readUInt8(0),
    index: b.readInt32LE(4),
    state: b.readUInt16LE(8),
    flags: b.readUInt8(10),
    type: b.readUInt8(11),
  };
}

function requireLen(b: Buffer, len: number, what: string): void {
  if (b.length < len) throw new KernelError(`malformed ${what}: ${b.length} bytes, need ${len}`);
}
