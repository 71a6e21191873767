/**
 * The netlink codec against the kernel's byte layout: golden messages written out field by field
 * from the UAPI structs, and property tests for attributes, framing and address text.
 */
import test from "ava";
import fc from "fast-check";
import {
  formatIp,
  formatMac,
  isNetworkAddress,
  parseCidr,
  parseIp,
  parseMac,
} from "../../lib/kernel/netlink/addr.js";
import {
  type Attr,
  align4,
  attrMap,
  decodeAttrs,
  decodeError,
  decodeIfInfoMsg,
  decodeMessages,
  encodeAttrs,
  encodeErrorPayload,
  encodeIfInfoMsg,
  encodeMessage,
  IFINFOMSG_LEN,
  type RawAttr,
  readStr,
  readU32,
} from "../../lib/kernel/netlink/codec.js";
import * as C from "../../lib/kernel/netlink/constants.js";
import * as M from "../../lib/kernel/netlink/messages.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|#[^\n]*/g, ""), "hex");
/** Frames a request the way NetlinkSocket does (REQUEST | ACK, given seq). */
const frame = (req: M.RtRequest, seq: number): Buffer =>
  encodeMessage({ type: req.type, flags: req.flags | C.NLM_F_REQUEST | C.NLM_F_ACK, seq }, req.payload);

// ---------------------------------------------------------------------------------------------
// Golden messages

test("create bridge: RTM_NEWLINK with name, mtu and nested IFLA_LINKINFO", (t) => {
  const expected = hex(`
    40000000 1000 0506 01000000 00000000           # nlmsghdr: len 64, RTM_NEWLINK, REQ|ACK|EXCL|CREATE, seq 1
    00 00 0000 00000000 00000000 00000000          # ifinfomsg: AF_UNSPEC, index 0
    0800 0300 62723000                             # IFLA_IFNAME "br0\\0"
    0800 0400 dc050000                             # IFLA_MTU 1500
    1000 1280                                      # IFLA_LINKINFO | NLA_F_NESTED, len 16
      0b00 0100 627269646765 00 00                 #   IFLA_INFO_KIND "bridge\\0" + 1 pad byte
  `);
  t.deepEqual(frame(M.newBridge({ name: "br0", mtu: 1500 }), 1), expected);
});

test("hairpin: AF_BRIDGE RTM_SETLINK with nested IFLA_PROTINFO / IFLA_BRPORT_MODE", (t) => {
  const expected = hex(`
    2c000000 1300 0500 07000000 00000000           # len 44, RTM_SETLINK, REQ|ACK, seq 7
    07 00 0000 05000000 00000000 00000000          # ifinfomsg: AF_BRIDGE, index 5
    0c00 0c80                                      # IFLA_PROTINFO | NLA_F_NESTED, len 12
      0500 0400 01 000000                          #   IFLA_BRPORT_MODE u8 1 + 3 pad bytes
  `);
  t.deepEqual(frame(M.bridgePort(5, { hairpin: true }), 7), expected);
});

test("IPv4 address: RTM_NEWADDR with IFA_LOCAL and IFA_ADDRESS", (t) => {
  const expected = hex(`
    28000000 1400 0506 02000000 00000000           # len 40, RTM_NEWADDR, REQ|ACK|EXCL|CREATE, seq 2
    02 18 00 00 03000000                           # ifaddrmsg: AF_INET, /24, flags 0, scope 0, index 3
    0800 0200 0afa0001                             # IFA_LOCAL 10.250.0.1
    0800 0100 0afa0001                             # IFA_ADDRESS 10.250.0.1
  `);
  t.deepEqual(frame(M.newAddr(3, "10.250.0.1", 24), 2), expected);
});

test("IPv6 address carries IFA_F_NODAD in ifa_flags and IFA_FLAGS", (t) => {
  const msg = decodeMessages(frame(M.newAddr(3, "fd00::1", 64), 1))[0]!;
  t.is(msg.payload[0], C.AF_INET6);
  t.is(msg.payload[2], C.IFA_F_NODAD);
  const attrs = attrMap(msg.payload.subarray(8));
  t.is(readU32(attrs.get(C.IFA_FLAGS)!), C.IFA_F_NODAD);
  t.deepEqual(attrs.get(C.IFA_LOCAL), hex("fd000000000000000000000000000001"));
});

test("default route: RTM_NEWROUTE with table, gateway and oif", (t) => {
  const expected = hex(`
    34000000 1800 0506 03000000 00000000           # len 52, RTM_NEWROUTE, REQ|ACK|EXCL|CREATE, seq 3
    02 00 00 00 fe 04 00 01 00000000               # rtmsg: AF_INET, dst/0, main, static, universe, unicast
    0800 0f00 fe000000                             # RTA_TABLE 254
    0800 0500 0afa0001                             # RTA_GATEWAY 10.250.0.1
    0800 0400 02000000                             # RTA_OIF 2
  `);
  t.deepEqual(frame(M.newRoute({ family: 4, gateway: "10.250.0.1", oif: 2 }), 3), expected);
});

test("on-link route has scope link and RTA_DST", (t) => {
  const msg = decodeMessages(frame(M.newRoute({ family: 4, dst: "10.250.1.0/24", oif: 4 }), 1))[0]!;
  t.is(msg.payload[1], 24); // rtm_dst_len
  t.is(msg.payload[6], C.RT_SCOPE_LINK);
  t.deepEqual(attrMap(msg.payload.subarray(12)).get(C.RTA_DST), hex("0afa0100"));
});

test("routes reject host bits and family mismatches", (t) => {
  t.throws(() => M.newRoute({ family: 4, dst: "10.250.1.5/24", oif: 1 }), { message: /host bits/ });
  t.throws(() => M.newRoute({ family: 6, gateway: "10.0.0.1" }), { message: /not IPv6/ });
  t.throws(() => M.newRoute({ family: 4 }), { message: /gateway or an output interface/ });
});

test("veth: peer ifinfomsg + name + IFLA_NET_NS_FD inside VETH_INFO_PEER", (t) => {
  const req = M.newVeth({
    name: "vethab",
    mtu: 1450,
    peer: { name: "eth0", mac: "02:42:0a:fa:00:02", netnsFd: 42 },
  });
  t.is(req.flags, C.NLM_F_CREATE | C.NLM_F_EXCL);
  const top = attrMap(req.payload.subarray(IFINFOMSG_LEN));
  t.is(readStr(top.get(C.IFLA_IFNAME)!), "vethab");
  t.is(readU32(top.get(C.IFLA_MTU)!), 1450);
  const linkInfo = attrMap(top.get(C.IFLA_LINKINFO)!);
  t.is(readStr(linkInfo.get(C.IFLA_INFO_KIND)!), "veth");
  const peer = attrMap(linkInfo.get(C.IFLA_INFO_DATA)!).get(C.VETH_INFO_PEER)!;
  t.deepEqual(decodeIfInfoMsg(peer), { family: 0, type: 0, index: 0, flags: 0, change: 0 });
  const peerAttrs = attrMap(peer.subarray(IFINFOMSG_LEN));
  t.is(readStr(peerAttrs.get(C.IFLA_IFNAME)!), "eth0");
  t.is(readU32(peerAttrs.get(C.IFLA_NET_NS_FD)!), 42);
  t.is(readU32(peerAttrs.get(C.IFLA_MTU)!), 1450);
  t.is(formatMac(peerAttrs.get(C.IFLA_ADDRESS)!), "02:42:0a:fa:00:02");
});

test("setLink: up via ifi_flags/ifi_change, alias/master/mtu as attributes", (t) => {
  const req = M.setLink(9, { up: true, master: 4, mtu: 1400, alias: "trellis:x" });
  t.deepEqual(decodeIfInfoMsg(req.payload), { family: 0, type: 0, index: 9, flags: 1, change: 1 });
  const attrs = attrMap(req.payload.subarray(IFINFOMSG_LEN));
  t.is(readU32(attrs.get(C.IFLA_MASTER)!), 4);
  t.is(readU32(attrs.get(C.IFLA_MTU)!), 1400);
  t.is(attrs.get(C.IFLA_IFALIAS)!.toString(), "trellis:x");
  const down = M.setLink(9, { up: false });
  t.deepEqual(decodeIfInfoMsg(down.payload), { family: 0, type: 0, index: 9, flags: 0, change: 1 });
  const untouched = M.setLink(9, { mtu: 1500 });
  t.is(decodeIfInfoMsg(untouched.payload).change, 0);
});

test("parseLink reads a kernel-shaped RTM_NEWLINK", (t) => {
  const payload = Buffer.concat([
    encodeIfInfoMsg({ family: 0, type: 1, index: 7, flags: C.IFF_UP | 0x1000, change: 0 }),
    encodeAttrs([
      { type: C.IFLA_IFNAME, value: Buffer.from("veth1\0") },
      { type: C.IFLA_MTU, value: hex("dc050000") },
      { type: C.IFLA_MASTER, value: hex("03000000") },
      { type: C.IFLA_LINK, value: hex("02000000") },
      { type: C.IFLA_ADDRESS, value: hex("02420afa0002") },
      { type: C.IFLA_IFALIAS, value: Buffer.from("trellis:ep") },
      { type: C.IFLA_LINKINFO, value: [{ type: C.IFLA_INFO_KIND, value: Buffer.from("veth") }] },
    ]),
  ]);
  const msg = decodeMessages(encodeMessage({ type: C.RTM_NEWLINK, flags: 0, seq: 1 }, payload))[0]!;
  t.deepEqual(M.parseLink(msg), {
    index: 7,
    name: "veth1",
    mtu: 1500,
    up: true,
    kind: "veth",
    master: 3,
    mac: "02:42:0a:fa:00:02",
    alias: "trellis:ep",
    peerIndex: 2,
  });
});

test("parseRoute: dst is the bare network address, table from RTA_TABLE", (t) => {
  const payload = Buffer.concat([
    hex("02 18 00 00 fe 04 fd 01 00000000"),
    encodeAttrs([
      { type: C.RTA_TABLE, value: hex("00010000") },
      { type: C.RTA_DST, value: hex("0afa0100") },
      { type: C.RTA_OIF, value: hex("04000000") },
    ]),
  ]);
  const msg = decodeMessages(encodeMessage({ type: C.RTM_NEWROUTE, flags: 0, seq: 1 }, payload))[0]!;
  t.deepEqual(M.parseRoute(msg), { family: 4, dstLen: 24, table: 256, type: 1, dst: "10.250.1.0", oif: 4 });
});

// ---------------------------------------------------------------------------------------------
// NLMSG_ERROR

test("NLMSG_ERROR capped with extended ack message", (t) => {
  const reply = hex(`
    30000000 0200 0003 01000000 00000000           # len 48, NLMSG_ERROR, CAPPED|ACK_TLVS, seq 1
    efffffff                                       # error -17 (EEXIST)
    40000000 1000 0506 01000000 00000000           # echoed request header only (capped)
    0c00 0100 657869737473 2100                    # NLMSGERR_ATTR_MSG "exists!\\0"
  `);
  const msg = decodeMessages(reply)[0]!;
  t.is(msg.type, C.NLMSG_ERROR);
  t.deepEqual(decodeError(msg), { errno: 17, message: "exists!" });
});

test("NLMSG_ERROR uncapped: TLVs follow the whole echoed request", (t) => {
  const request = frame(M.newBridge({ name: "br0", mtu: 1500 }), 1);
  const tlvs = encodeAttrs([
    { type: C.NLMSGERR_ATTR_MSG, value: Buffer.from("bad mtu\0") },
    { type: C.NLMSGERR_ATTR_OFFS, value: hex("28000000") },
  ]);
  const payload = Buffer.concat([hex("eaffffff"), request, tlvs]);
  const msg = { type: C.NLMSG_ERROR, flags: C.NLM_F_ACK_TLVS, seq: 1, pid: 0, payload };
  t.deepEqual(decodeError(msg), { errno: 22, message: "bad mtu", offset: 40 });
});

test("plain ack is errno 0", (t) => {
  const msg = { type: C.NLMSG_ERROR, flags: C.NLM_F_CAPPED, seq: 1, pid: 0, payload: hex("00000000") };
  t.deepEqual(decodeError(msg), { errno: 0 });
});

// ---------------------------------------------------------------------------------------------
// Properties

/** A tree of attributes; nested ones carry NLA_F_NESTED so a decoder can tell them apart. */
const attrTree: fc.Arbitrary<Attr[]> = fc.letrec<{ attr: Attr; list: Attr[] }>((tie) => ({
  attr: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({
      type: fc.integer({ min: 0, max: 0x3fff }),
      value: fc.uint8Array({ maxLength: 40 }).map(Buffer.from),
    }),
    fc.record({
      type: fc.integer({ min: 0, max: 0x3fff }).map((n) => n | C.NLA_F_NESTED),
      value: tie("list"),
    }),
  ),
  list: fc.array(tie("attr"), { maxLength: 5 }),
})).list;

/** Decodes recursively, following NLA_F_NESTED, back into the encoder's input shape. */
function redecode(buf: Buffer): Attr[] {
  return decodeAttrs(buf).map((a: RawAttr) =>
    a.nested ? { type: a.type | C.NLA_F_NESTED, value: redecode(a.data) } : { type: a.type, value: a.data },
  );
}

test("property: attribute trees round-trip through encode/decode", (t) => {
  fc.assert(
    fc.property(attrTree, (attrs) => {
      t.deepEqual(redecode(encodeAttrs(attrs)), normalise(attrs));
    }),
  );
});

/** Buffers compared as plain Buffers (fast-check made them from Uint8Arrays). */
const normalise = (attrs: readonly Attr[]): Attr[] =>
  attrs.map((a) => ({
    type: a.type,
    value: Buffer.isBuffer(a.value) ? Buffer.from(a.value) : normalise(a.value),
  }));

test("property: each attribute is 4-aligned, zero-padded, nla_len excludes padding", (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0x7fff }), fc.uint8Array({ maxLength: 64 }), (type, data) => {
      const buf = encodeAttrs([{ type, value: Buffer.from(data) }]);
      t.is(buf.length % 4, 0);
      t.is(buf.length, align4(4 + data.length));
      t.is(buf.readUInt16LE(0), 4 + data.length);
      t.is(buf.readUInt16LE(2), type);
      t.true(buf.subarray(4 + data.length).every((b) => b === 0));
    }),
  );
});

test("property: concatenated messages split back into the same messages", (t) => {
  const message = fc.record({
    type: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.integer({ min: 0, max: 0xffff }),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    pid: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 50 }).map(Buffer.from),
  });
  fc.assert(
    fc.property(fc.array(message, { maxLength: 6 }), (msgs) => {
      const wire = Buffer.concat(msgs.map((m) => encodeMessage(m, m.payload)));
      t.deepEqual(decodeMessages(wire), msgs);
    }),
  );
});

test("property: error payloads decode to their errno and extack text", (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4095 }),
      fc.option(fc.stringMatching(/^[ -~]{0,60}$/), { nil: undefined }),
      (errno, text) => {
        const request = frame(M.delLink(3), 9);
        const flags = C.NLM_F_CAPPED | (text === undefined ? 0 : C.NLM_F_ACK_TLVS);
        const msg = {
          type: C.NLMSG_ERROR,
          flags,
          seq: 9,
          pid: 0,
          payload: encodeErrorPayload(errno, request, text),
        };
        t.deepEqual(decodeError(msg), text === undefined ? { errno } : { errno, message: text });
      },
    ),
  );
});

test("property: IPv4 text round-trips", (t) => {
  fc.assert(
    fc.property(fc.ipV4(), (ip) => {
      const parsed = parseIp(ip);
      t.is(parsed.family, 4);
      t.is(formatIp(parsed.bytes), ip);
    }),
  );
});

test("property: IPv6 parses to the right bytes and formats canonically (RFC 5952)", (t) => {
  fc.assert(
    fc.property(fc.ipV6(), (ip) => {
      const { family, bytes } = parseIp(ip);
      t.is(family, 6);
      const text = formatIp(bytes);
      // The WHATWG URL parser is an independent IPv6 parser and RFC 5952 serialiser.
      t.is(text, new URL(`http://[${ip}]/`).hostname.slice(1, -1));
      t.deepEqual(parseIp(text).bytes, bytes);
    }),
  );
});

test("property: MAC text round-trips in lower case", (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (raw) => {
      const mac = formatMac(Buffer.from(raw));
      t.regex(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      t.deepEqual(parseMac(mac.toUpperCase()), Buffer.from(raw));
    }),
  );
});

test("address text edge cases", (t) => {
  t.is(formatIp(parseIp("::").bytes), "::");
  t.is(formatIp(parseIp("fd00:0:0:1::").bytes), "fd00:0:0:1::");
  t.is(formatIp(parseIp("1:0:0:2:0:0:0:3").bytes), "1:0:0:2::3");
  t.is(formatIp(parseIp("::ffff:10.250.0.1").bytes), "::ffff:afa:1");
  t.deepEqual(parseCidr("10.250.0.0/16"), { family: 4, bytes: hex("0afa0000"), prefixLen: 16 });
  t.is(parseCidr("fd00::1").prefixLen, 128);
  t.true(isNetworkAddress(hex("0afa0000"), 16));
  t.false(isNetworkAddress(hex("0afa0001"), 16));
  for (const bad of ["10.0.0.256", "fe80::1%eth0", "nope", ""])
    t.throws(() => parseIp(bad), { message: /invalid IP/ });
  t.throws(() => parseCidr("10.0.0.0/33"), { message: /prefix length/ });
  t.throws(() => parseMac("02:42:0a:fa:00"), { message: /invalid MAC/ });
});

test("malformed input is rejected, not misread", (t) => {
  t.throws(() => decodeAttrs(hex("0800 0100 0000")), { message: /malformed netlink attribute/ });
  t.throws(() => decodeAttrs(hex("0200 0100")), { message: /malformed netlink attribute/ });
  t.throws(() => decodeMessages(hex("20000000 0200 0000 01000000 00000000")), {
    message: /malformed netlink message/,
  });
});
