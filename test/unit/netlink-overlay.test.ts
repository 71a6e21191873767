/**
 * The overlay's netlink messages against the kernel's byte layout: a vxlan link (IFLA_VXLAN_*),
 * FDB entries (AF_BRIDGE ndmsg) and IP neighbours (AF_INET/AF_INET6 ndmsg), golden bytes written
 * out by hand from the UAPI structs, and fast-check round trips through the parsers.
 *   struct ndmsg { u8 family; u8 pad1; u16 pad2; s32 ifindex; u16 state; u8 flags; u8 type; }
 */
import test from "ava";
import fc from "fast-check";
import { KernelError, type TrellisError } from "../../lib/common/errors.js";
import { formatIp, formatMac, parseIp } from "../../lib/kernel/netlink/addr.js";
import {
  attrBytes,
  attrMap,
  attrU32,
  decodeMessages,
  encodeAttrs,
  encodeMessage,
  IFINFOMSG_LEN,
  type NlMessage,
} from "../../lib/kernel/netlink/codec.js";
import * as C from "../../lib/kernel/netlink/constants.js";
import * as M from "../../lib/kernel/netlink/messages.js";
import * as N from "../../lib/kernel/netlink/neigh.js";
import type { FdbEntry, NeighbourEntry, VxlanSpec } from "../../lib/kernel/types.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|#[^\n]*/g, ""), "hex");
/** Frames a request the way NetlinkSocket does (REQUEST | ACK, given seq). */
const frame = (req: M.RtRequest, seq: number): Buffer =>
  encodeMessage({ type: req.type, flags: req.flags | C.NLM_F_REQUEST | C.NLM_F_ACK, seq }, req.payload);
/** A message as the kernel sends it in a dump, decoded back the way the socket does. */
const asReply = (type: number, payload: Buffer): NlMessage =>
  decodeMessages(encodeMessage({ type, flags: C.NLM_F_MULTI, seq: 9, pid: 4242 }, payload))[0]!;
const reqAsReply = (req: M.RtRequest): NlMessage => asReply(req.type, req.payload);

const vxSpec: VxlanSpec = {
  name: "vx0",
  vni: 4242,
  dstPort: 4789,
  local: "10.98.0.1",
  dev: 2,
  mtu: 1450,
  learning: false,
  proxy: true,
};

// ---------------------------------------------------------------------------------------------
// Golden messages

test("create vxlan: IFLA_INFO_DATA with VNI, big-endian port, local VTEP, learning off, proxy on", (t) => {
  const expected = hex(`
    84000000 1000 0506 01000000 00000000           # nlmsghdr: len 132, RTM_NEWLINK, REQ|ACK|EXCL|CREATE, seq 1
    00 00 0000 00000000 00000000 00000000          # ifinfomsg: AF_UNSPEC, index 0, no flags
    0800 0300 76783000                             # IFLA_IFNAME "vx0\\0"
    0800 0400 aa050000                             # IFLA_MTU 1450
    5400 1280                                      # IFLA_LINKINFO | NLA_F_NESTED, len 84
      0a00 0100 76786c616e00 0000                  #   IFLA_INFO_KIND "vxlan\\0" + 2 pad bytes
      4400 0280                                    #   IFLA_INFO_DATA | NLA_F_NESTED, len 68
        0800 0100 92100000                         #     IFLA_VXLAN_ID 4242 (host order)
        0600 0f00 12b5 0000                        #     IFLA_VXLAN_PORT 4789 = 0x12b5, NETWORK order
        0800 0400 0a620001                         #     IFLA_VXLAN_LOCAL 10.98.0.1
        0800 0300 02000000                         #     IFLA_VXLAN_LINK ifindex 2
        0500 0700 00 000000                        #     IFLA_VXLAN_LEARNING 0
        0500 0b00 01 000000                        #     IFLA_VXLAN_PROXY 1
        0500 0d00 00 000000                        #     IFLA_VXLAN_L2MISS 0
        0500 0e00 00 000000                        #     IFLA_VXLAN_L3MISS 0
  `);
  t.deepEqual(frame(M.newVxlan(vxSpec), 1), expected);
});

test("create vxlan with master and up: IFF_UP in ifi_flags/ifi_change, IFLA_MASTER last", (t) => {
  const msg = frame(M.newVxlan({ ...vxSpec, master: 7, up: true }), 1);
  t.deepEqual(msg.subarray(16, 32), hex("00 00 0000 00000000 01000000 01000000"));
  t.deepEqual(msg.subarray(msg.length - 8), hex("0800 0a00 07000000"), "IFLA_MASTER 7");
  t.is(msg.readUInt32LE(0), 132 + 8);
});

/** The IFLA_INFO_DATA children of a link request, by type. */
function vxlanData(req: M.RtRequest): Map<number, Buffer> {
  const linkInfo = attrMap(req.payload.subarray(IFINFOMSG_LEN)).get(C.IFLA_LINKINFO)!;
  return attrMap(attrMap(linkInfo).get(C.IFLA_INFO_DATA)!);
}

test("create vxlan with an IPv6 VTEP uses IFLA_VXLAN_LOCAL6; no group attribute ever", (t) => {
  const data = vxlanData(M.newVxlan({ ...vxSpec, local: "fd98::1", dev: undefined }));
  t.deepEqual(data.get(C.IFLA_VXLAN_LOCAL6), hex("fd980000000000000000000000000001"));
  t.false(data.has(C.IFLA_VXLAN_LOCAL));
  t.false(data.has(C.IFLA_VXLAN_LINK));
  // IFLA_VXLAN_GROUP (2) and GROUP6 (16) would enable multicast flooding.
  t.deepEqual(
    [...data.keys()].sort((a, b) => a - b),
    [
      C.IFLA_VXLAN_ID,
      C.IFLA_VXLAN_LEARNING,
      C.IFLA_VXLAN_PROXY,
      C.IFLA_VXLAN_L2MISS,
      C.IFLA_VXLAN_L3MISS,
      C.IFLA_VXLAN_PORT,
      C.IFLA_VXLAN_LOCAL6,
    ],
  );
});

test("FDB add on the vxlan (self): AF_BRIDGE ndmsg, NUD_PERMANENT, NTF_SELF, lladdr and remote VTEP", (t) => {
  const expected = hex(`
    30000000 1c00 0505 03000000 00000000           # len 48, RTM_NEWNEIGH, REQ|ACK|REPLACE|CREATE, seq 3
    07 00 0000 05000000 8000 02 00                 # ndmsg: AF_BRIDGE, ifindex 5, NUD_PERMANENT, NTF_SELF, type 0
    0a00 0200 02420a610003 0000                    # NDA_LLADDR 02:42:0a:61:00:03 + 2 pad bytes
    0800 0100 0a620002                             # NDA_DST 10.98.0.2
  `);
  const req = N.fdbAdd({ index: 5, mac: "02:42:0A:61:00:03", dst: "10.98.0.2" }, "self");
  t.deepEqual(frame(req, 3), expected);
});

test("FDB add on the bridge (master): NUD_NOARP ('static', not 'local'), NTF_MASTER, no NDA_DST", (t) => {
  const expected = hex(`
    28000000 1c00 0505 03000000 00000000           # len 40, RTM_NEWNEIGH, REQ|ACK|REPLACE|CREATE, seq 3
    07 00 0000 05000000 4000 04 00                 # ndmsg: AF_BRIDGE, ifindex 5, NUD_NOARP, NTF_MASTER
    0a00 0200 02420a610003 0000                    # NDA_LLADDR
  `);
  const req = N.fdbAdd({ index: 5, mac: "02:42:0a:61:00:03", dst: "10.98.0.2" }, "master");
  t.deepEqual(frame(req, 3), expected);
});

test("neighbour add: AF_INET ndmsg, NUD_PERMANENT, NDA_DST then NDA_LLADDR, create-or-replace", (t) => {
  const expected = hex(`
    30000000 1c00 0505 04000000 00000000           # len 48, RTM_NEWNEIGH, REQ|ACK|REPLACE|CREATE, seq 4
    02 00 0000 05000000 8000 00 00                 # ndmsg: AF_INET, ifindex 5, NUD_PERMANENT, flags 0
    0800 0100 0a610003                             # NDA_DST 10.97.0.3
    0a00 0200 02420a610003 0000                    # NDA_LLADDR 02:42:0a:61:00:03
  `);
  t.deepEqual(frame(N.neighAdd({ index: 5, address: "10.97.0.3", mac: "02:42:0a:61:00:03" }), 4), expected);
});

test("deletes and dumps: RTM_DELNEIGH without create flags, RTM_GETNEIGH filtered by NDA_IFINDEX", (t) => {
  t.deepEqual(
    frame(N.fdbDel({ index: 5, mac: "02:42:0a:61:00:03", dst: "10.98.0.2" }, "self"), 2),
    hex(`30000000 1d00 0500 02000000 00000000
         07 00 0000 05000000 0000 02 00
         0a00 0200 02420a610003 0000
         0800 0100 0a620002`),
  );
  // The bridge's table has no remote: dst is not sent even when given.
  t.deepEqual(
    N.fdbDel({ index: 5, mac: "02:42:0a:61:00:03", dst: "10.98.0.2" }, "master").payload,
    hex("07 00 0000 05000000 0000 04 00  0a00 0200 02420a610003 0000"),
  );
  t.deepEqual(
    N.neighDel({ index: 5, address: "fd97::3" }).payload,
    hex("0a 00 0000 05000000 0000 00 00  1400 0100 fd970000000000000000000000000003"),
  );
  const fdbDump = N.fdbDump(5);
  t.like(fdbDump, { type: C.RTM_GETNEIGH, flags: C.NLM_F_DUMP });
  // The header's ifindex stays 0: strict checking rejects a neighbour dump that sets it.
  t.deepEqual(fdbDump.payload, hex("07 00 0000 00000000 0000 00 00  0800 0800 05000000"));
  t.deepEqual(N.neighDump(undefined, 6).payload, hex("0a 00 0000 00000000 0000 00 00"));
  t.deepEqual(N.neighDump().payload, hex("00 00 0000 00000000 0000 00 00"));
});

test("bad input is INVALID_ARGUMENT before anything reaches the kernel", (t) => {
  const bad: Array<() => unknown> = [
    () => M.newVxlan({ ...vxSpec, vni: 1 << 24 }),
    () => M.newVxlan({ ...vxSpec, vni: -1 }),
    () => M.newVxlan({ ...vxSpec, dstPort: 0 }),
    () => M.newVxlan({ ...vxSpec, dstPort: 65536 }),
    () => M.newVxlan({ ...vxSpec, local: "10.98.0" }),
    () => N.fdbAdd({ index: 1, mac: "02:42:0a:61:00", dst: "10.98.0.2" }, "self"),
    () => N.fdbAdd({ index: 1, mac: "02:42:0a:61:00:03", dst: "nope" }, "self"),
    () => N.neighAdd({ index: 1, address: "10.97.0.300", mac: "02:42:0a:61:00:03" }),
    () => N.neighDel({ index: 1, address: "" }),
  ];
  for (const f of bad) t.is(t.throws<TrellisError>(f).code, "INVALID_ARGUMENT");
  t.regex(t.throws(() => M.newVxlan({ ...vxSpec, vni: 1 << 24 })).message, /invalid VNI 16777216 for vx0/);
});

// ---------------------------------------------------------------------------------------------
// Parsing what the kernel sends

test("parseLink reads a vxlan's IFLA_INFO_DATA, port in network byte order", (t) => {
  const data = encodeAttrs([
    attrU32(C.IFLA_VXLAN_ID, 0xabcdef),
    attrBytes(C.IFLA_VXLAN_PORT, hex("12b5")),
    attrBytes(C.IFLA_VXLAN_LOCAL, hex("0a620001")),
    attrBytes(C.IFLA_VXLAN_LEARNING, hex("00")),
    attrBytes(C.IFLA_VXLAN_PROXY, hex("01")),
    attrU32(8, 300), // IFLA_VXLAN_AGEING: not read
  ]);
  const payload = Buffer.concat([
    hex("00 00 0100 09000000 43100100 00000000"), // ifinfomsg: ARPHRD_ETHER, index 9, IFF_UP|...
    encodeAttrs([
      attrBytes(C.IFLA_IFNAME, Buffer.from("vx0\0")),
      attrU32(C.IFLA_MTU, 1450),
      {
        type: C.IFLA_LINKINFO | C.NLA_F_NESTED,
        value: [
          { type: C.IFLA_INFO_KIND, value: Buffer.from("vxlan\0") },
          { type: C.IFLA_INFO_DATA | C.NLA_F_NESTED, value: data },
        ],
      },
    ]),
  ]);
  const link = M.parseLink(asReply(C.RTM_NEWLINK, payload));
  t.like(link, { index: 9, name: "vx0", kind: "vxlan", mtu: 1450, up: true });
  t.deepEqual(link.vxlan, { vni: 0xabcdef, port: 4789, local: "10.98.0.1", learning: false, proxy: true });
});

test("parseLink: other kinds get no vxlan field; a vxlan without VNI data gets none either", (t) => {
  t.is(M.parseLink(reqAsReply(M.newBridge({ name: "br0", mtu: 1500 }))).vxlan, undefined);
  const noData = M.parseLink(
    asReply(
      C.RTM_NEWLINK,
      Buffer.concat([
        hex("00 00 0100 09000000 00000000 00000000"),
        encodeAttrs([
          { type: C.IFLA_LINKINFO, value: [{ type: C.IFLA_INFO_KIND, value: Buffer.from("vxlan\0") }] },
        ]),
      ]),
    ),
  );
  t.is(noData.kind, "vxlan");
  t.is(noData.vxlan, undefined);
});

const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => formatMac(Buffer.from(b)));
/** Canonical text, as the parsers print addresses. */
const ip = fc.oneof(fc.ipV4(), fc.ipV6()).map((a) => formatIp(parseIp(a).bytes));
const ifindex = fc.integer({ min: 1, max: 0x7fffffff });
const nudState = fc.integer({ min: 0, max: 0xff });
/** Attributes a real dump also carries and the parsers must skip: NDA_CACHEINFO, NDA_PROBES. */
const noise = fc.array(
  fc.oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => attrBytes(3, Buffer.from(b))),
    fc.nat().map((n) => attrU32(4, n)),
  ),
  { maxLength: 3 },
);

test("property: vxlan create request parses back to the spec (same layout as a kernel reply)", (t) => {
  fc.assert(
    fc.property(
      fc.record({
        vni: fc.integer({ min: 0, max: (1 << 24) - 1 }),
        dstPort: fc.integer({ min: 1, max: 0xffff }),
        local: fc.option(ip, { nil: undefined }),
        learning: fc.boolean(),
        proxy: fc.boolean(),
        mtu: fc.integer({ min: 68, max: 65535 }),
      }),
      (s) => {
        const link = M.parseLink(reqAsReply(M.newVxlan({ ...s, name: "vx0" })));
        const want = { vni: s.vni, port: s.dstPort, learning: s.learning, proxy: s.proxy };
        const local = s.local === "0.0.0.0" || s.local === "::" ? undefined : s.local;
        t.deepEqual(link.vxlan, local === undefined ? want : { ...want, local });
        t.like(link, { name: "vx0", kind: "vxlan", mtu: s.mtu });
      },
    ),
  );
});

const fdbEntry: fc.Arbitrary<FdbEntry> = fc
  .record(
    {
      index: ifindex,
      mac,
      dst: ip,
      vni: fc.integer({ min: 0, max: (1 << 24) - 1 }),
      master: fc.boolean(),
      bridge: ifindex,
      self: fc.boolean(),
      state: nudState,
    },
    { requiredKeys: ["index", "mac", "master", "self", "state"] },
  )
  .map((e) => ({
    ...e,
    // An entry reported with its bridge (NDA_MASTER) is a bridge entry.
    master: e.master || e.bridge !== undefined,
    permanent: (e.state & C.NUD_PERMANENT) !== 0,
  }));

test("parseFdb: the bridge reports its entries with NDA_MASTER and ndm_flags 0", (t) => {
  const payload = hex(`
    07 00 0000 05000000 4000 00 00                 # ndmsg: AF_BRIDGE, port 5, NUD_NOARP, no flags
    0a00 0200 02420a610003 0000                    # NDA_LLADDR
    0800 0900 04000000                             # NDA_MASTER: bridge ifindex 4
    1400 0300 00000000 00000000 00000000 00000000  # NDA_CACHEINFO (skipped)
  `);
  t.deepEqual(N.parseFdb(asReply(C.RTM_NEWNEIGH, payload)), {
    index: 5,
    mac: "02:42:0a:61:00:03",
    master: true,
    bridge: 4,
    self: false,
    permanent: false,
    state: C.NUD_NOARP,
  });
});

test("property: FdbEntry -> kernel dump message -> parseFdb is the identity, extra attributes skipped", (t) => {
  fc.assert(
    fc.property(fdbEntry, noise, (e, extra) => {
      const payload = Buffer.concat([N.encodeFdbEntry(e), encodeAttrs(extra)]);
      t.deepEqual(N.parseFdb(asReply(C.RTM_NEWNEIGH, payload)), e);
    }),
  );
});

const neighbourEntry: fc.Arbitrary<NeighbourEntry> = fc
  .record({ index: ifindex, address: ip, mac: fc.option(mac, { nil: undefined }), state: nudState })
  .map(({ mac: m, ...e }) => ({
    ...e,
    family: e.address.includes(":") ? (6 as const) : (4 as const),
    permanent: (e.state & C.NUD_PERMANENT) !== 0,
    ...(m === undefined ? {} : { mac: m }),
  }));

test("property: NeighbourEntry -> kernel dump message -> parseNeighbour is the identity", (t) => {
  fc.assert(
    fc.property(neighbourEntry, noise, (e, extra) => {
      const payload = Buffer.concat([N.encodeNeighbourEntry(e), encodeAttrs(extra)]);
      t.deepEqual(N.parseNeighbour(asReply(C.RTM_NEWNEIGH, payload)), e);
    }),
  );
});

test("property: add requests parse back to what was asked (builders and parsers agree)", (t) => {
  fc.assert(
    fc.property(ifindex, mac, ip, ip, (index, m, dst, address) => {
      t.deepEqual(N.parseFdb(reqAsReply(N.fdbAdd({ index, mac: m, dst }, "self"))), {
        index,
        mac: m,
        dst,
        master: false,
        self: true,
        permanent: true,
        state: C.NUD_PERMANENT,
      });
      t.deepEqual(N.parseFdb(reqAsReply(N.fdbAdd({ index, mac: m, dst }, "master"))), {
        index,
        mac: m,
        master: true,
        self: false,
        permanent: false,
        state: C.NUD_NOARP,
      });
      t.deepEqual(N.parseNeighbour(reqAsReply(N.neighAdd({ index, address, mac: m }))), {
        index,
        family: address.includes(":") ? 6 : 4,
        address,
        mac: m,
        state: C.NUD_PERMANENT,
        permanent: true,
      });
    }),
  );
});

test("parsers skip other families and never throw anything but KernelError on garbage", (t) => {
  const inet = N.encodeNeighbourEntry({
    index: 1,
    family: 4,
    address: "10.0.0.1",
    state: 2,
    permanent: false,
  });
  t.is(N.parseFdb(asReply(C.RTM_NEWNEIGH, inet)), undefined);
  const bridge = N.encodeFdbEntry({
    index: 1,
    mac: "02:00:00:00:00:01",
    master: true,
    self: false,
    permanent: false,
    state: 0,
  });
  t.is(N.parseNeighbour(asReply(C.RTM_NEWNEIGH, bridge)), undefined);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      const msg: NlMessage = { type: C.RTM_NEWNEIGH, flags: 0, seq: 1, pid: 0, payload: Buffer.from(bytes) };
      for (const parse of [N.parseFdb, N.parseNeighbour]) {
        try {
          parse(msg);
        } catch (err) {
          t.true(err instanceof KernelError, String(err));
        }
      }
    }),
  );
});
