/**
 * The overlay data plane on the real kernel, built only through the kernel adapter: two "hosts"
 * (namespaces hA, hB) joined by a veth underlay, each with a bridge, a unicast vxlan (VNI 4242,
 * port 4789, learning off, proxy on) and one "container" namespace on the bridge. Remote endpoints
 * are programmed statically (one FDB and one neighbour entry each), then checked against
 * `ip -j -d link`, `bridge -j fdb`, `ip -j neigh` and real traffic. Nothing runs in the root
 * namespace; every name carries this run's prefix `tr<rand4>-vx`.
 */
import { randomBytes } from "node:crypto";
import test from "ava";
import { KernelError } from "../../lib/common/errors.js";
import { createKernel } from "../../lib/kernel/index.js";
import { NUD_NOARP } from "../../lib/kernel/netlink/constants.js";
import type { FdbEntry, Kernel, Netlink, NetnsRef } from "../../lib/kernel/types.js";
import { run, waitFor } from "../helpers/proc.js";

const P = `tr${randomBytes(2).toString("hex")}-vx`;
const VNI = 4242;
const PORT = 4789;
/** Overlay MTU = underlay MTU (1500) - 50 (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8). */
const MTU = 1450;

interface Side {
  host: string;
  ctr: string;
  underlay: string;
  ip: string;
  ip6: string;
  mac: string;
  h: Netlink;
  c: Netlink;
  /** ifindexes in the host namespace */
  vx: number;
  br: number;
  /** ifindex of eth0 in the container */
  eth0: number;
}

const kernel: Kernel = createKernel();
const A = side("A", "10.98.0.1", "10.97.0.2", "fd97::2", "02:42:0a:61:00:02");
const B = side("B", "10.98.0.2", "10.97.0.3", "fd97::3", "02:42:0a:61:00:03");

/** Names and addresses of one side; the handles and ifindexes are filled in by test.before. */
function side(n: string, underlay: string, ip: string, ip6: string, mac: string): Side {
  const unset = undefined as unknown as Netlink;
  return {
    host: `${P}-h${n}`,
    ctr: `${P}-c${n}`,
    underlay,
    ip,
    ip6,
    mac,
    h: unset,
    c: unset,
    vx: 0,
    br: 0,
    eth0: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers: command line views of the kernel, and traffic

async function sh(argv: string[]): Promise<string> {
  const r = await run(argv, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
// biome-ignore lint/suspicious/noExplicitAny: ip/bridge -j output is loosely typed JSON
const json = async (argv: string[]): Promise<any[]> => JSON.parse((await sh(argv)) || "[]");

/** One ping burst: true when any reply came back. */
async function ping(from: Side, to: string, ...extra: string[]): Promise<{ ok: boolean; out: string }> {
  const fam = to.includes(":") ? ["-6"] : [];
  const argv = ["ip", "netns", "exec", from.ctr, "ping", ...fam, "-n", "-c", "3", "-i", "0.2", "-W", "1"];
  const r = await run([...argv, ...extra, to], { timeoutMs: 10_000 });
  return { ok: r.code === 0, out: r.stdout + r.stderr };
}

const reaches = async (from: Side, to: string) => (await ping(from, to)).ok;

/** What `bridge -j fdb show dev vx0` and listFdb both say, in one comparable shape. */
interface FdbView {
  mac: string;
  dst?: string;
  self: boolean;
  master: boolean;
  state: string;
}
const nudName = (e: FdbEntry): string => (e.permanent ? "permanent" : e.state & NUD_NOARP ? "static" : "");
const byMac = (a: FdbView, b: FdbView) => JSON.stringify(a).localeCompare(JSON.stringify(b));

async function fdbFromBridge(s: Side): Promise<FdbView[]> {
  const rows = await json(["bridge", "-n", s.host, "-j", "fdb", "show", "dev", "vx0"]);
  return rows
    .map((r) => ({
      mac: r.mac,
      ...(r.dst ? { dst: r.dst } : {}),
      self: (r.flags as string[]).includes("self"),
      master: r.master !== undefined,
      state: r.state,
    }))
    .sort(byMac);
}

async function fdbFromAdapter(s: Side): Promise<FdbView[]> {
  return (await s.h.listFdb(s.vx))
    .map((e) => ({
      mac: e.mac,
      ...(e.dst ? { dst: e.dst } : {}),
      self: e.self,
      master: e.master,
      state: nudName(e),
    }))
    .sort(byMac);
}

const byAddress = (a: { address: string }, b: { address: string }) => a.address.localeCompare(b.address);

/** The vxlan's unicast neighbour entries, leaving out the NOARP ones the kernel makes itself. */
async function programmedNeighbours(s: Side, family?: 4 | 6): Promise<string[]> {
  const all = await s.h.listNeighbours(s.vx, family);
  return all.filter((n) => !(n.state & NUD_NOARP)).map((n) => n.address);
}

/** Snapshot of the IP counters of a namespace (/proc/net/snmp is per namespace). */
async function ipCounters(ns: string): Promise<Record<string, number>> {
  const lines = (await sh(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"])).split("\n");
  const [names, values] = lines.filter((l) => l.startsWith("Ip:")).map((l) => l.split(/\s+/).slice(1));
  return Object.fromEntries((names ?? []).map((n, i) => [n, Number(values?.[i])]));
}

// ---------------------------------------------------------------------------------------------
// Topology, built with the adapter only

async function buildHost(s: Side, ul: number): Promise<void> {
  const { h, c } = s;
  await h.setLink((await h.getLink("lo"))!.index, { up: true });
  await h.setLink(ul, { up: true });
  await h.addAddress(ul, s.underlay, 24);
  await h.createBridge({ name: "br0", mtu: MTU });
  s.br = (await h.getLink("br0"))!.index;
  await h.setLink(s.br, { up: true });
  await h.createVxlan({
    name: "vx0",
    vni: VNI,
    dstPort: PORT,
    local: s.underlay,
    dev: ul,
    mtu: MTU,
    learning: false,
    proxy: true,
    master: s.br,
    up: true,
    alias: "trellis:overlay:test",
  });
  s.vx = (await h.getLink("vx0"))!.index;
  await h.createVeth({ name: "vc0", mtu: MTU, peer: { name: "eth0", netns: await ns(s.ctr), mac: s.mac } });
  await h.setLink((await h.getLink("vc0"))!.index, { master: s.br, up: true });
  s.eth0 = (await c.getLink("eth0"))!.index;
  await c.addAddress(s.eth0, s.ip, 24);
  await c.addAddress(s.eth0, s.ip6, 64);
  await c.setLink(s.eth0, { up: true });
  await c.setLink((await c.getLink("lo"))!.index, { up: true });
}

/** On `local`, the remote endpoint of `remote`: MAC -> its VTEP (vxlan and bridge), IP -> MAC. */
async function programRemote(local: Side, remote: Side): Promise<void> {
  const fdb = { index: local.vx, mac: remote.mac, dst: remote.underlay };
  await local.h.addFdb({ ...fdb, self: true, master: true });
  await local.h.addNeighbour({ index: local.vx, address: remote.ip, mac: remote.mac });
  await local.h.addNeighbour({ index: local.vx, address: remote.ip6, mac: remote.mac });
}

const refs = new Map<string, NetnsRef>();
async function ns(name: string): Promise<NetnsRef> {
  let ref = refs.get(name);
  if (!ref) {
    ref = await kernel.resolveNetns(name);
    refs.set(name, ref);
  }
  return ref;
}

test.before(async () => {
  for (const s of [A, B]) {
    for (const name of [s.host, s.ctr]) await sh(["ip", "netns", "add", name]);
    s.h = kernel.inNetns(await ns(s.host));
    s.c = kernel.inNetns(await ns(s.ctr));
  }
  await A.h.createVeth({ name: "ul0", mtu: 1500, peer: { name: "ul0", netns: await ns(B.host) } });
  await buildHost(A, (await A.h.getLink("ul0"))!.index);
  await buildHost(B, (await B.h.getLink("ul0"))!.index);
  await programRemote(A, B);
  await programRemote(B, A);
});

test.after.always(async () => {
  kernel.close();
  // Exactly this run's namespaces, whatever state the tests left them in; their links go with them.
  const list = await run(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const name = line.split(" ")[0];
    if (name?.startsWith(`${P}-`)) await run(["ip", "netns", "del", name]);
  }
});

// ---------------------------------------------------------------------------------------------

test.serial(
  "the vxlan as `ip -j -d link` shows it: VNI, port, local VTEP, learning off, proxy on, no group",
  async (t) => {
    const [vx] = await json(["ip", "-n", A.host, "-j", "-d", "link", "show", "dev", "vx0"]);
    t.like(vx, { ifname: "vx0", mtu: MTU, master: "br0", ifalias: "trellis:overlay:test" });
    t.true(vx.flags.includes("UP"));
    const data = vx.linkinfo.info_data;
    t.is(vx.linkinfo.info_kind, "vxlan");
    t.like(data, { id: VNI, port: PORT, local: "10.98.0.1", link: "ul0", learning: false, proxy: true });
    t.false("group" in data || "remote" in data, "no multicast group, no default remote");
    t.false(data.l2miss === true || data.l3miss === true);

    const link = (await A.h.getLinkByIndex(A.vx))!;
    t.like(link, { kind: "vxlan", mtu: MTU, master: A.br, up: true, alias: "trellis:overlay:test" });
    t.deepEqual(link.vxlan, { vni: VNI, port: PORT, local: "10.98.0.1", learning: false, proxy: true });
    t.is((await A.h.getLink("br0"))!.vxlan, undefined);
  },
);

test.serial(
  "FDB and neighbour tables hold exactly the programmed entries; the list functions agree",
  async (t) => {
    for (const [local, remote] of [
      [A, B],
      [B, A],
    ] as const) {
      const shown = await fdbFromBridge(local);
      t.deepEqual(await fdbFromAdapter(local), shown, "listFdb == bridge -j fdb show dev vx0");
      const vxMac = (await local.h.getLinkByIndex(local.vx))!.mac!;
      t.deepEqual(
        shown,
        [
          { mac: remote.mac, dst: remote.underlay, self: true, master: false, state: "permanent" },
          { mac: remote.mac, self: false, master: true, state: "static" },
          // The bridge's own "local" entry for the port's MAC, which the kernel adds itself.
          { mac: vxMac, self: false, master: true, state: "permanent" },
        ].sort(byMac),
      );

      // `nud all`: also the NOARP entries the kernel makes itself for IPv6 multicast (ff02::/16).
      const neigh = await json(["ip", "-n", local.host, "-j", "neigh", "show", "dev", "vx0", "nud", "all"]);
      const fromIp = neigh
        .map((n) => ({ address: n.dst, mac: n.lladdr, permanent: n.state.includes("PERMANENT") }))
        .sort(byAddress);
      const fromAdapter = (await local.h.listNeighbours(local.vx))
        .map((n) => ({ address: n.address, mac: n.mac, permanent: n.permanent }))
        .sort(byAddress);
      t.deepEqual(fromAdapter, fromIp, "listNeighbours == ip neigh show dev vx0 nud all");
      const want = [remote.ip, remote.ip6].map((address) => ({ address, mac: remote.mac, permanent: true }));
      t.deepEqual(
        fromAdapter.filter((n) => !n.address.startsWith("ff02:")),
        want,
      );
      t.deepEqual(await programmedNeighbours(local), [remote.ip, remote.ip6]);
      t.deepEqual(await programmedNeighbours(local, 6), [remote.ip6]);
    }
    // Unfiltered lists include the entries too (and other devices' entries).
    t.true((await A.h.listFdb()).some((e) => e.index === A.vx && e.dst === B.underlay));
    t.true((await A.h.listNeighbours()).some((e) => e.index === A.vx && e.address === B.ip));
  },
);

test.serial(
  "containers ping each other across the overlay, IPv4 and IPv6, ARP/ND answered locally",
  async (t) => {
    t.true(await reaches(A, B.ip));
    t.true(await reaches(B, A.ip));
    t.true(await reaches(A, B.ip6));
    t.true(await reaches(B, A.ip6));
    // The container resolved the remote IP to the MAC from the vxlan's neighbour table (proxy reply).
    const learned = await A.c.listNeighbours(A.eth0, 4);
    t.like(
      learned.find((n) => n.address === B.ip),
      { mac: B.mac },
    );
  },
);

test.serial("adding the same entries again is not an error and leaves one entry each", async (t) => {
  const before = await fdbFromAdapter(A);
  for (let i = 0; i < 3; i++) await programRemote(A, B);
  t.deepEqual(await fdbFromAdapter(A), before);
  t.deepEqual(await fdbFromBridge(A), before);
  t.deepEqual(await programmedNeighbours(A), [B.ip, B.ip6]);
  t.true(await reaches(A, B.ip));
});

test.serial(
  "a new VTEP for the same MAC replaces the remote (an endpoint that moved), never appends",
  async (t) => {
    await A.h.addFdb({ index: A.vx, mac: B.mac, dst: "10.98.0.77" });
    const selfEntries = (await A.h.listFdb(A.vx)).filter((e) => e.self && e.mac === B.mac);
    t.deepEqual(
      selfEntries.map((e) => e.dst),
      ["10.98.0.77"],
    );
    t.false(await reaches(A, B.ip), "traffic follows the FDB to the (absent) new VTEP");
    await A.h.addFdb({ index: A.vx, mac: B.mac, dst: B.underlay });
    t.true(await reaches(A, B.ip));
  },
);

test.serial(
  "deleting the FDB entry breaks the path (no flooding, no learning); re-adding restores it",
  async (t) => {
    t.true(await A.h.deleteFdb({ index: A.vx, mac: B.mac, dst: B.underlay, self: true, master: true }));
    t.false(await A.h.deleteFdb({ index: A.vx, mac: B.mac, self: true, master: true }), "already gone");
    t.false((await A.h.listFdb(A.vx)).some((e) => e.mac === B.mac));
    t.false((await fdbFromBridge(A)).some((e) => e.mac === B.mac));
    t.false(await reaches(A, B.ip), "A's container still knows B's MAC, but the vxlan drops the frames");
    // B learned nothing from A's attempts: its table is still exactly what was programmed.
    t.deepEqual(
      (await B.h.listFdb(B.vx)).filter((e) => e.self).map((e) => [e.mac, e.dst]),
      [[A.mac, A.underlay]],
    );

    await A.h.addFdb({ index: A.vx, mac: B.mac, dst: B.underlay, self: true, master: true });
    t.true(await reaches(A, B.ip));
  },
);

test.serial(
  "deleting the neighbour entry stops ARP from resolving (not flooded); re-adding restores it",
  async (t) => {
    t.true(await A.h.deleteNeighbour({ index: A.vx, address: B.ip }));
    t.false(await A.h.deleteNeighbour({ index: A.vx, address: B.ip }), "already gone");
    // Make the container forget B (with the adapter, inside the container namespace).
    await A.c.deleteNeighbour({ index: A.eth0, address: B.ip });
    t.false(await reaches(A, B.ip));
    const unresolved = (await A.c.listNeighbours(A.eth0, 4)).find((n) => n.address === B.ip);
    t.is(unresolved?.mac, undefined, "the ARP request got no answer");
    t.deepEqual(await programmedNeighbours(A), [B.ip6]);

    await A.h.addNeighbour({ index: A.vx, address: B.ip, mac: B.mac });
    t.true(await waitFor(() => reaches(A, B.ip), { what: "A reaches B again", timeoutMs: 10_000 }));
  },
);

test.serial(
  "overlay MTU 1450 on a 1500 underlay: 1422-byte DF ping passes unfragmented, 1423 is refused",
  async (t) => {
    const before = { A: await ipCounters(A.host), B: await ipCounters(B.host) };
    const fits = await ping(A, B.ip, "-M", "do", "-s", "1422");
    t.true(fits.ok, fits.out);
    t.regex(fits.out, /1450\) bytes/);
    const tooBig = await ping(A, B.ip, "-M", "do", "-s", "1423");
    t.false(tooBig.ok);
    t.regex(tooBig.out, /message too long/i);
    const after = { A: await ipCounters(A.host), B: await ipCounters(B.host) };
    for (const host of ["A", "B"] as const) {
      t.is(after[host]["FragCreates"], before[host]["FragCreates"], `${host} fragmented nothing`);
      t.is(after[host]["ReasmReqds"], before[host]["ReasmReqds"], `${host} reassembled nothing`);
    }
  },
);

test.serial(
  "a 64 MB TCP stream (iperf3, full-size segments) crosses the overlay without fragmenting the underlay",
  async (t) => {
    const before = { A: await ipCounters(A.host), B: await ipCounters(B.host) };
    const server = run(["ip", "netns", "exec", B.ctr, "iperf3", "-s", "-1", "-B", B.ip, "-p", "5201"], {
      timeoutMs: 30_000,
    });
    const listening = ["ip", "netns", "exec", B.ctr, "ss", "-H", "-l", "-t", "-n", "sport = :5201"];
    await waitFor(async () => (await sh(listening)).trim() !== "", { what: "iperf3 server listening" });
    const argv = ["ip", "netns", "exec", A.ctr, "iperf3", "-c", B.ip, "-p", "5201", "-n", "64M", "-J"];
    const client = await run(argv, { timeoutMs: 20_000 });
    t.is(client.code, 0, `${client.stderr}${client.stdout.slice(0, 2000)}`);
    const served = await server;
    t.is(served.code, 0, served.stderr);
    const report = JSON.parse(client.stdout);
    const gbps = report.end.sum_received.bits_per_second / 1e9;
    t.log(
      `iperf3 over the overlay: ${gbps.toFixed(2)} Gbit/s, MSS ${report.start.tcp_mss_default},` +
        ` ${report.end.sum_sent.retransmits} retransmits`,
    );
    t.true(report.end.sum_received.bytes > 10_000_000);
    const after = { A: await ipCounters(A.host), B: await ipCounters(B.host) };
    for (const host of ["A", "B"] as const) {
      t.is(after[host]["FragCreates"], before[host]["FragCreates"]);
      t.is(after[host]["ReasmReqds"], before[host]["ReasmReqds"]);
    }
  },
);

test.serial(
  "per-op cost of FDB and neighbour add/delete (200 remote endpoints), and the tables after",
  async (t) => {
    const n = 200;
    const eps = Array.from({ length: n }, (_, i) => ({
      mac: `02:99:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`,
      ip: `10.97.${1 + (i >> 8)}.${i & 0xff}`,
      vtep: `10.98.0.${10 + (i % 200)}`,
    }));
    // The median of single operations: the machine is shared with other test files running at the
    // same time, and a mean would mostly measure their load.
    const time = async (op: (e: (typeof eps)[number]) => Promise<unknown>): Promise<number> => {
      const us: number[] = [];
      for (const e of eps) {
        const start = performance.now();
        await op(e);
        us.push((performance.now() - start) * 1000);
      }
      return us.sort((a, b) => a - b)[n >> 1]!;
    };
    const us = {
      fdbAdd: await time((e) => A.h.addFdb({ index: A.vx, mac: e.mac, dst: e.vtep })),
      fdbAddBoth: await time((e) =>
        A.h.addFdb({ index: A.vx, mac: e.mac, dst: e.vtep, self: true, master: true }),
      ),
      neighAdd: await time((e) => A.h.addNeighbour({ index: A.vx, address: e.ip, mac: e.mac })),
    };
    const listStart = performance.now();
    const [fdb, neigh] = [await A.h.listFdb(A.vx), await A.h.listNeighbours(A.vx)];
    const listMs = performance.now() - listStart;
    t.is(fdb.filter((e) => e.self && e.mac.startsWith("02:99")).length, n);
    t.is(fdb.filter((e) => e.master && e.mac.startsWith("02:99")).length, n);
    t.is(neigh.filter((e) => e.permanent && e.address.startsWith("10.97.")).length, n + 1);
    const del = {
      fdbDelBoth: await time((e) => A.h.deleteFdb({ index: A.vx, mac: e.mac, self: true, master: true })),
      neighDel: await time((e) => A.h.deleteNeighbour({ index: A.vx, address: e.ip })),
    };
    t.log(
      `median µs/op: fdb add (self) ${us.fdbAdd.toFixed(1)}, fdb add (self+master) ${us.fdbAddBoth.toFixed(1)},` +
        ` neigh add ${us.neighAdd.toFixed(1)}, fdb del (self+master) ${del.fdbDelBoth.toFixed(1)},` +
        ` neigh del ${del.neighDel.toFixed(1)}; listFdb+listNeighbours with ${n} entries: ${listMs.toFixed(2)} ms`,
    );
    t.deepEqual(
      (await fdbFromAdapter(A)).filter((e) => e.mac.startsWith("02:99")),
      [],
      "every churned entry is gone",
    );
    t.deepEqual(await programmedNeighbours(A), [B.ip, B.ip6]);
    t.true(await reaches(A, B.ip), "the churn left the programmed endpoint alone");
  },
);

test.serial("refusals and missing objects: EEXIST, bad spec, deletes of what is not there", async (t) => {
  const spec = { name: "vx0", vni: VNI, dstPort: PORT, mtu: MTU, learning: false, proxy: true };
  const exists = await t.throwsAsync(A.h.createVxlan(spec), { instanceOf: KernelError });
  t.is(exists.errno, 17);
  t.regex(exists.message, /^create vxlan vx0 \(vni 4242\): File exists/);
  // A second device with the same VNI and port in one namespace would steal its traffic.
  const dupVni = await t.throwsAsync(A.h.createVxlan({ ...spec, name: "vx1" }), { instanceOf: KernelError });
  t.is(dupVni.errno, 17);
  t.is(await A.h.getLink("vx1"), undefined);
  await t.throwsAsync(A.h.createVxlan({ ...spec, name: "vx2", vni: 1 << 24 }), { message: /invalid VNI/ });
  await t.throwsAsync(A.h.addFdb({ index: A.vx, mac: B.mac, dst: B.underlay, self: false }), {
    message: /needs self or master/,
  });

  const noDev = await t.throwsAsync(A.h.addNeighbour({ index: 99999, address: "10.97.9.9", mac: B.mac }), {
    instanceOf: KernelError,
  });
  t.is(noDev.errno, 19);
  t.regex(noDev.message, /^add neighbour 10\.97\.9\.9 lladdr .* on link #99999: No such device/);
  t.false(await A.h.deleteNeighbour({ index: 99999, address: "10.97.9.9" }));
  t.false(await A.h.deleteFdb({ index: 99999, mac: B.mac }));
  t.false(await A.h.deleteFdb({ index: A.vx, mac: "02:99:99:99:99:99", master: true }));
  t.false(await A.h.deleteNeighbour({ index: A.vx, address: "fd97::99" }));
  t.deepEqual(await A.h.listFdb(99999), []);
  t.deepEqual(await A.h.listNeighbours(99999), []);

  // A vxlan outside any bridge has no master table: adding there is refused, deleting finds nothing.
  await A.h.createVxlan({ ...spec, name: "vx9", vni: 9, local: "fd98::1" });
  const vx9 = (await A.h.getLink("vx9"))!;
  t.like(vx9.vxlan, { vni: 9, local: "fd98::1" });
  await A.h.addFdb({ index: vx9.index, mac: B.mac, dst: "fd98::2" });
  t.like(
    (await A.h.listFdb(vx9.index)).find((e) => e.mac === B.mac),
    { dst: "fd98::2", self: true },
  );
  const noBridge = await t.throwsAsync(
    A.h.addFdb({ index: vx9.index, mac: B.mac, dst: "fd98::2", master: true }),
    {
      instanceOf: KernelError,
    },
  );
  t.is(noBridge.errno, 95);
  t.true(await A.h.deleteFdb({ index: vx9.index, mac: B.mac, self: true, master: true }));
  t.false(await A.h.deleteFdb({ index: vx9.index, mac: B.mac, self: false, master: true }));
  t.true(await A.h.deleteLink(vx9.index));
});
