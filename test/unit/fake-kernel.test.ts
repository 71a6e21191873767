/**
 * The in-memory kernel behaves like the real one where trellis's code relies on it (each case was
 * checked with `ip` in a scratch namespace), and records what it is asked to change.
 */
import test from "ava";
import { KernelError } from "../../lib/common/errors.js";
import { FakeKernel } from "../helpers/fake-kernel.js";

const errnoOf = (err: unknown) => (err instanceof KernelError ? err.errno : undefined);

function withNetns() {
  const kernel = new FakeKernel();
  const ns = kernel.addNetns("c1");
  return { kernel, ns, host: kernel.ns(), container: kernel.ns(ns) };
}

test("a new namespace has lo (index 1, down); the host's lo is up with its addresses", async (t) => {
  const { host, container } = withNetns();
  t.like(container.link("lo"), { index: 1, up: false, mtu: 65536 });
  t.deepEqual(await container.listAddresses(), []);
  t.like(host.link("lo"), { index: 1, up: true });
  t.deepEqual(host.addressesOf("lo"), ["127.0.0.1/8", "::1/128"]);
});

test("ifindexes are allocated per namespace", async (t) => {
  const { kernel, host, container } = withNetns();
  await host.createBridge({ name: "br0", mtu: 1500 });
  const other = kernel.addNetns("c2");
  await host.createVeth({ name: "v0", mtu: 1500, peer: { name: "eth0", netns: other } });
  t.is(host.link("br0")?.index, 2);
  t.is(host.link("v0")?.index, 3);
  t.is(kernel.ns(other).link("eth0")?.index, 2);
  t.deepEqual(
    (await container.listLinks()).map((l) => l.index),
    [1],
  );
});

test("a veth is created down, its peer inside the peer namespace, each pointing at the other", async (t) => {
  const { host, container, ns } = withNetns();
  await host.createVeth({
    name: "vhost",
    mtu: 1400,
    alias: "a",
    peer: { name: "eth0", netns: ns, mac: "02:42:0a:00:00:02", alias: "b" },
  });
  const v = host.link("vhost")!;
  const p = container.link("eth0")!;
  t.like(v, { kind: "veth", up: false, mtu: 1400, alias: "a", peerIndex: p.index });
  t.like(p, { kind: "veth", up: false, mtu: 1400, alias: "b", mac: "02:42:0a:00:00:02", peerIndex: v.index });
  t.is(host.link("eth0"), undefined);
});

test("deleting either end of a veth deletes both; so does removing the peer's namespace", async (t) => {
  const { kernel, host, container, ns } = withNetns();
  await host.createVeth({ name: "v0", mtu: 1500, peer: { name: "eth0", netns: ns } });
  t.true(await container.deleteLinkByName("eth0"));
  t.is(host.link("v0"), undefined);
  await host.createVeth({ name: "v0", mtu: 1500, peer: { name: "eth0", netns: ns } });
  t.true(await host.deleteLink(host.link("v0")!.index));
  t.is(container.link("eth0"), undefined);
  await host.createVeth({ name: "v0", mtu: 1500, peer: { name: "eth0", netns: ns } });
  kernel.removeNetns(ns);
  t.is(host.link("v0"), undefined);
  t.false(await kernel.netnsAlive(ns));
  t.throws(() => kernel.inNetns(ns), { code: "NOT_FOUND" });
});

test("creating an existing name is KernelError EEXIST (17), and creates nothing", async (t) => {
  const { host, container, ns } = withNetns();
  await host.createBridge({ name: "br0", mtu: 1500 });
  const err = await t.throwsAsync(host.createBridge({ name: "br0", mtu: 1500 }), { instanceOf: KernelError });
  t.is(errnoOf(err), 17);
  t.is(err?.message, "create bridge br0: File exists");
  container.addLink({ name: "eth0" });
  const veth = await t.throwsAsync(
    host.createVeth({ name: "v0", mtu: 1500, peer: { name: "eth0", netns: ns } }),
  );
  t.is(errnoOf(veth), 17);
  t.is(host.link("v0"), undefined, "no half-made pair");
  t.is(
    errnoOf(await t.throwsAsync(host.createVeth({ name: "br0", mtu: 1500, peer: { name: "x", netns: ns } }))),
    17,
  );
  t.is(
    errnoOf(await t.throwsAsync(host.createBridge({ name: "sixteen-chars-xx", mtu: 1500 }))),
    22,
    "IFNAMSIZ",
  );
  await t.notThrowsAsync(host.createBridge({ name: "fifteen-chars-x", mtu: 1500 }));
});

test("missing things: getLink is undefined, deletes return false", async (t) => {
  const { host } = withNetns();
  t.is(await host.getLink("nope"), undefined);
  t.is(await host.getLinkByIndex(99), undefined);
  t.false(await host.deleteLinkByName("nope"));
  t.false(await host.deleteLink(99));
  t.false(await host.deleteAddress(1, "10.0.0.1", 8));
  t.false(await host.deleteRoute({ family: 4, dst: "10.0.0.0/8" }));
  t.is(errnoOf(await t.throwsAsync(host.setLink(99, { up: true }))), 19);
  t.is(errnoOf(await t.throwsAsync(host.addAddress(99, "10.0.0.1", 8))), 19);
});

test("addresses: an existing one is not an error; IPv6 is keyed by address alone; text is canonical", async (t) => {
  const { host } = withNetns();
  const br = host.addLink({ name: "br0", kind: "bridge", up: true, mac: "02:00:00:00:00:01" });
  await host.addAddress(br.index, "10.1.1.1", 24);
  await host.addAddress(br.index, "10.1.1.1", 24);
  await host.addAddress(br.index, "10.1.1.1", 16); // IPv4: another prefix is another address
  await host.addAddress(br.index, "FD00:0::1", 48);
  await host.addAddress(br.index, "fd00::1", 64); // IPv6: EEXIST, tolerated, nothing added
  t.deepEqual(host.addressesOf("br0"), ["fe80::ff:fe00:1/64", "10.1.1.1/24", "10.1.1.1/16", "fd00::1/48"]);
  t.true(await host.deleteAddress(br.index, "10.1.1.1", 16));
  t.false(await host.deleteAddress(br.index, "fd00::1", 64), "delete needs the prefix length too");
});

test("down drops the link's IPv6 addresses and routes, keeps IPv4 addresses; up brings fe80 back", async (t) => {
  const { host } = withNetns();
  const br = host.addLink({ name: "br0", kind: "bridge", mac: "02:00:00:00:00:01" });
  await host.setLink(br.index, { up: true });
  await host.addAddress(br.index, "10.1.1.1", 24);
  await host.addAddress(br.index, "fd00::1", 64);
  await host.addRoute({ family: 4, dst: "10.9.0.0/16", gateway: "10.1.1.2" });
  await host.setLink(br.index, { up: false });
  t.deepEqual(host.addressesOf("br0"), ["10.1.1.1/24"]);
  t.deepEqual(host.staticRoutes, []);
  t.deepEqual(
    (await host.listRoutes(4)).filter((r) => r.oif === br.index),
    [],
    "no connected routes while down",
  );
  await host.setLink(br.index, { up: true });
  t.deepEqual(host.addressesOf("br0"), ["10.1.1.1/24", "fe80::ff:fe00:1/64"]);
  t.deepEqual(
    (await host.listRoutes(4)).filter((r) => r.table === 254 && r.oif === br.index),
    [{ family: 4, dst: "10.1.1.0", dstLen: 24, oif: br.index, table: 254, type: 1 }],
  );
});

test("a veth gets its link-local address only when both ends are up", async (t) => {
  const { host, container, ns } = withNetns();
  await host.createVeth({ name: "v0", mtu: 1500, peer: { name: "eth0", netns: ns } });
  await host.setLink(host.link("v0")!.index, { up: true });
  t.deepEqual(host.addressesOf("v0"), []);
  await container.setLink(container.link("eth0")!.index, { up: true });
  t.is(host.addressesOf("v0").length, 1);
  t.regex(container.addressesOf("eth0")[0] ?? "", /^fe80::.*\/64$/);
});

test("routes need an up device and an on-link gateway; the same destination twice is a no-op", async (t) => {
  const { host } = withNetns();
  const eth = host.addLink({ name: "eth1" });
  await host.addAddress(eth.index, "192.0.2.2", 24);
  const down = await t.throwsAsync(host.addRoute({ family: 4, gateway: "192.0.2.1", oif: eth.index }));
  t.is(errnoOf(down), 100);
  await host.setLink(eth.index, { up: true });
  t.is(errnoOf(await t.throwsAsync(host.addRoute({ family: 4, gateway: "198.51.100.1" }))), 101);
  await host.addRoute({ family: 4, gateway: "192.0.2.1" });
  await host.addRoute({ family: 4, gateway: "192.0.2.1", oif: eth.index });
  await host.addRoute({ family: 4, gateway: "192.0.2.9" }); // another default: EEXIST, tolerated
  t.deepEqual(host.staticRoutes, [
    { family: 4, dstLen: 0, gateway: "192.0.2.1", oif: eth.index, table: 254, type: 1 },
  ]);
  t.true(await host.deleteRoute({ family: 4 }));
});

test("bridge-port flags need an enslaved port; release clears them", async (t) => {
  const { host } = withNetns();
  const br = host.addLink({ name: "br0", kind: "bridge", up: true });
  const port = host.addLink({ name: "p0", up: true });
  t.is(errnoOf(await t.throwsAsync(host.setBridgePort(port.index, { hairpin: true }))), 95);
  t.is(errnoOf(await t.throwsAsync(host.setLink(port.index, { master: port.index }))), 95, "not a bridge");
  await host.setLink(port.index, { master: br.index });
  await host.setBridgePort(port.index, { hairpin: true, isolated: true });
  t.deepEqual(host.portFlags("p0"), { hairpin: true, isolated: true });
  await host.deleteLink(br.index);
  t.is(host.link("p0")?.master, undefined);
  t.deepEqual(host.portFlags("p0"), { hairpin: false, isolated: false });
});

test("every mutating call is recorded with its namespace; reads are not; failNext injects errors", async (t) => {
  const { kernel, host, container, ns } = withNetns();
  await host.listLinks();
  await host.getLink("lo");
  await container.setLink(1, { up: true });
  await kernel.setSysctl("net/ipv4/ip_forward", "1");
  await kernel.nftApply("table inet trellis {}\n");
  t.deepEqual(kernel.calls, [
    { ns: ns.path, op: "setLink", args: [1, { up: true }] },
    { ns: "host", op: "setSysctl", args: ["net/ipv4/ip_forward", "1"] },
    { ns: "host", op: "nftApply", args: ["table inet trellis {}\n"] },
  ]);
  t.is(kernel.sysctls.get("net/ipv4/ip_forward"), "1");
  kernel.failNext("createBridge", new KernelError("create bridge br0: Operation not permitted", 1));
  await t.throwsAsync(host.createBridge({ name: "br0", mtu: 1500 }), { message: /not permitted/ });
  t.is(host.link("br0"), undefined, "the failed call changed nothing");
  await t.notThrowsAsync(host.createBridge({ name: "br0", mtu: 1500 }), "only the next call fails");
});

test("namespaces resolve by name, path and pid; a closed kernel refuses", async (t) => {
  const kernel = new FakeKernel();
  const ns = kernel.addNetns("web", { pid: 4242 });
  t.deepEqual(await kernel.resolveNetns("web"), ns);
  t.deepEqual(await kernel.resolveNetns("/run/netns/web"), ns);
  t.deepEqual(await kernel.resolveNetns("pid:4242"), ns);
  await t.throwsAsync(kernel.resolveNetns("nope"), { code: "NOT_FOUND" });
  t.true(await kernel.netnsAlive(ns));
  kernel.close();
  t.throws(() => kernel.host(), { instanceOf: KernelError });
});

test("vxlan, FDB and neighbour entries: create once, replace on add, gone with the link", async (t) => {
  const { host } = withNetns();
  const br = host.addLink({ name: "br0", kind: "bridge", up: true });
  const spec = {
    name: "vx0",
    vni: 42,
    dstPort: 4789,
    mtu: 1450,
    learning: false,
    proxy: true,
    master: br.index,
  };
  await host.createVxlan({ ...spec, up: true });
  const vx = host.link("vx0")!;
  t.like(vx, {
    kind: "vxlan",
    up: true,
    master: br.index,
    vxlan: { vni: 42, port: 4789, learning: false, proxy: true },
  });
  t.is(errnoOf(await t.throwsAsync(host.createVxlan(spec))), 17);
  t.is(errnoOf(await t.throwsAsync(host.createVxlan({ ...spec, name: "vx1", vni: 1 << 24 }))), 22);

  await host.addFdb({ index: vx.index, mac: "02:42:0A:00:00:02", dst: "192.0.2.1", master: true });
  await host.addFdb({ index: vx.index, mac: "02:42:0a:00:00:02", dst: "192.0.2.7" }); // the MAC moved
  t.deepEqual(
    (await host.listFdb(vx.index)).map((e) => [e.mac, e.dst, e.self, e.master, e.permanent]),
    [
      ["02:42:0a:00:00:02", undefined, false, true, false],
      ["02:42:0a:00:00:02", "192.0.2.7", true, false, true],
    ],
  );
  t.false(
    await host.deleteFdb({ index: vx.index, mac: "02:42:0a:00:00:02", dst: "192.0.2.1" }),
    "other remote",
  );
  t.true(await host.deleteFdb({ index: vx.index, mac: "02:42:0a:00:00:02", master: true }));
  t.deepEqual(await host.listFdb(), []);

  await host.addNeighbour({ index: vx.index, address: "10.0.0.2", mac: "02:42:0a:00:00:02" });
  await host.addNeighbour({ index: vx.index, address: "10.0.0.2", mac: "02:42:0a:00:00:09" });
  t.deepEqual(
    (await host.listNeighbours(vx.index, 4)).map((n) => [n.address, n.mac, n.permanent]),
    [["10.0.0.2", "02:42:0a:00:00:09", true]],
  );
  await host.addFdb({ index: vx.index, mac: "02:42:0a:00:00:03", dst: "192.0.2.3" });
  await host.deleteLink(vx.index);
  t.deepEqual(await host.listNeighbours(), []);
  t.deepEqual(await host.listFdb(), []);
});
