/**
 * LinkProgrammer against the in-memory kernel: which calls each ensure/plumb step makes, what state
 * it leaves, and that a second pass over correct state changes nothing.
 */
import test from "ava";
import type { DesiredBridge, DesiredEndpoint } from "../../lib/bridge/desired.js";
import { TrellisError } from "../../lib/common/errors.js";
import { LinkProgrammer } from "../../lib/daemon/links.js";
import type { NetnsRef } from "../../lib/kernel/types.js";
import { FakeKernel, type KernelCall } from "../helpers/fake-kernel.js";

const NET = "7f".repeat(32);
const EP = "3c".repeat(32);

const BRIDGE: DesiredBridge = {
  networkId: NET,
  name: "br-7f7f7f7f7f7f",
  mtu: 1500,
  mac: "02:b7:11:22:33:44",
  alias: `trellis:net:${NET}`,
  addresses: [
    { address: "172.18.0.1", prefixLen: 16 },
    { address: "fd00:1::1", prefixLen: 64 },
  ],
};

function endpoint(over: Partial<DesiredEndpoint> = {}): DesiredEndpoint {
  return {
    endpointId: EP,
    bridgeName: BRIDGE.name,
    hostIfName: `veth${EP.slice(0, 11)}`,
    mtu: 1500,
    alias: `trellis:ep:${EP}`,
    isolated: false,
    hairpin: false,
    container: {
      ifName: "eth0",
      mac: "02:42:ac:12:00:02",
      addresses: [
        { address: "172.18.0.2", prefixLen: 16 },
        { address: "fd00:1::2", prefixLen: 64 },
      ],
      routes: [
        { family: 4, gateway: "172.18.0.1" },
        { family: 6, gateway: "fd00:1::1" },
      ],
    },
    ...over,
  };
}

function setup() {
  const kernel = new FakeKernel();
  const links = new LinkProgrammer(kernel);
  const ns = kernel.addNetns("c1");
  return { kernel, links, ns, host: kernel.ns(), container: kernel.ns(ns) };
}

/** The calls as [namespace, op, ...args] tuples, easy to compare whole. */
const calls = (kernel: FakeKernel): unknown[][] =>
  kernel.calls.map((c: KernelCall) => [c.ns, c.op, ...c.args]);

const CREATING = ["createBridge", "createVeth", "createVxlan"];
const DELETING = [
  "deleteLink",
  "deleteLinkByName",
  "deleteAddress",
  "deleteRoute",
  "deleteFdb",
  "deleteNeighbour",
];

/** Everything the kernel holds, for before/after comparisons. */
async function snapshot(kernel: FakeKernel, ns: NetnsRef) {
  const of = async (n: ReturnType<FakeKernel["ns"]>) => ({
    links: await n.listLinks(),
    addresses: await n.listAddresses(),
    routes4: await n.listRoutes(4),
    routes6: await n.listRoutes(6),
  });
  return { host: await of(kernel.ns()), container: await of(kernel.ns(ns)) };
}

async function plumbed() {
  const s = setup();
  const bridgeIndex = await s.links.ensureBridge(BRIDGE);
  const d = endpoint();
  await s.links.plumbEndpoint(d, s.ns, bridgeIndex);
  s.kernel.clearCalls();
  return { ...s, bridgeIndex, d };
}

// --- ensureBridge -------------------------------------------------------------------------------

test("ensureBridge on a missing bridge creates it with the desired MTU, MAC, alias and addresses", async (t) => {
  const { kernel, links, host } = setup();
  const index = await links.ensureBridge(BRIDGE);
  t.deepEqual(calls(kernel), [
    ["host", "createBridge", { name: BRIDGE.name, mtu: 1500, mac: BRIDGE.mac, alias: BRIDGE.alias }],
    ["host", "setLink", index, { mtu: 1500, up: true, alias: BRIDGE.alias }],
    ["host", "addAddress", index, "172.18.0.1", 16],
    ["host", "addAddress", index, "fd00:1::1", 64],
  ]);
  t.like(host.link(BRIDGE.name), {
    index,
    kind: "bridge",
    mtu: 1500,
    mac: BRIDGE.mac,
    alias: BRIDGE.alias,
    up: true,
  });
  t.deepEqual(host.addressesOf(BRIDGE.name), ["fe80::b7:11ff:fe22:3344/64", "172.18.0.1/16", "fd00:1::1/64"]);
});

test("ensureBridge on an existing correct bridge makes no mutating call", async (t) => {
  const { kernel, links } = setup();
  const index = await links.ensureBridge(BRIDGE);
  kernel.clearCalls();
  t.is(await links.ensureBridge(BRIDGE), index);
  t.deepEqual(calls(kernel), []);
});

test("ensureBridge on a wrong MTU makes exactly one setLink", async (t) => {
  const { kernel, links, host } = setup();
  const index = await links.ensureBridge(BRIDGE);
  await host.setLink(index, { mtu: 9000 });
  kernel.clearCalls();
  await links.ensureBridge(BRIDGE);
  t.deepEqual(calls(kernel), [["host", "setLink", index, { mtu: 1500, up: true, alias: BRIDGE.alias }]]);
  t.is(host.link(BRIDGE.name)?.mtu, 1500);
});

test("ensureBridge on a down bridge makes exactly one setLink, then restores what down removed", async (t) => {
  const { kernel, links, host } = setup();
  const index = await links.ensureBridge(BRIDGE);
  await host.setLink(index, { up: false }); // the kernel drops the link's IPv6 addresses
  t.deepEqual(host.addressesOf(BRIDGE.name), ["172.18.0.1/16"]);
  kernel.clearCalls();
  await links.ensureBridge(BRIDGE);
  t.is(kernel.callsOf("setLink").length, 1);
  t.deepEqual(calls(kernel), [
    ["host", "setLink", index, { mtu: 1500, up: true, alias: BRIDGE.alias }],
    ["host", "addAddress", index, "fd00:1::1", 64],
  ]);
  t.true(host.link(BRIDGE.name)?.up);
  t.deepEqual(host.addressesOf(BRIDGE.name), ["172.18.0.1/16", "fe80::b7:11ff:fe22:3344/64", "fd00:1::1/64"]);
});

test("ensureBridge removes a stray address but keeps fe80:: ones", async (t) => {
  const { kernel, links, host } = setup();
  const index = await links.ensureBridge(BRIDGE);
  host.seedAddress(BRIDGE.name, "10.9.9.9/24");
  host.seedAddress(BRIDGE.name, "172.18.0.1/24"); // right address, wrong prefix: stray too
  host.seedAddress(BRIDGE.name, "fe80::1234/64");
  kernel.clearCalls();
  await links.ensureBridge(BRIDGE);
  t.deepEqual(calls(kernel), [
    ["host", "deleteAddress", index, "10.9.9.9", 24],
    ["host", "deleteAddress", index, "172.18.0.1", 24],
  ]);
  t.deepEqual(host.addressesOf(BRIDGE.name), [
    "fe80::b7:11ff:fe22:3344/64",
    "172.18.0.1/16",
    "fd00:1::1/64",
    "fe80::1234/64",
  ]);
});

// The kernel keys IPv6 addresses by address alone: adding fd00:1::1/64 while fd00:1::1/48 exists is
// EEXIST (tolerated, nothing added), and the prune that follows then deletes fd00:1::1/48, leaving
// the bridge with no IPv6 gateway at all. Pruning before adding would converge.
test("ensureBridge corrects the prefix length of an IPv6 gateway address", async (t) => {
  const { links, host } = setup();
  await links.ensureBridge({ ...BRIDGE, addresses: [{ address: "fd00:1::1", prefixLen: 48 }] });
  await links.ensureBridge(BRIDGE);
  t.true(host.addressesOf(BRIDGE.name).includes("fd00:1::1/64"), host.addressesOf(BRIDGE.name).join(" "));
});

test("ensureBridge refuses a same-named link that is not a bridge (CONFLICT, nothing changed)", async (t) => {
  const { kernel, links, host } = setup();
  host.addLink({ name: BRIDGE.name, kind: "dummy", up: true });
  kernel.clearCalls();
  const err = await t.throwsAsync(links.ensureBridge(BRIDGE), { instanceOf: TrellisError });
  t.is(err?.code, "CONFLICT");
  t.is(
    err?.message,
    `interface ${BRIDGE.name} already exists on the host and does not belong to this network`,
  );
  t.deepEqual(calls(kernel), []);
});

test("ensureBridge refuses a bridge carrying another network's alias (CONFLICT)", async (t) => {
  const { kernel, links, host } = setup();
  await links.ensureBridge({ ...BRIDGE, networkId: "other", alias: "trellis:net:other" });
  kernel.clearCalls();
  await t.throwsAsync(links.ensureBridge(BRIDGE), { code: "CONFLICT" });
  t.deepEqual(calls(kernel), []);
  t.is(host.link(BRIDGE.name)?.alias, "trellis:net:other");
});

test("ensureBridge adopts a bridge with no alias (a crash between create and alias) by setting it", async (t) => {
  const { kernel, links, host } = setup();
  host.addLink({ name: BRIDGE.name, kind: "bridge", mac: BRIDGE.mac, up: true });
  kernel.clearCalls();
  const index = await links.ensureBridge(BRIDGE);
  t.deepEqual(calls(kernel).slice(0, 1), [
    ["host", "setLink", index, { mtu: 1500, up: true, alias: BRIDGE.alias }],
  ]);
  t.is(host.link(BRIDGE.name)?.alias, BRIDGE.alias);
  t.is(kernel.callsOf(...CREATING).length, 0);
});

// --- plumbEndpoint ------------------------------------------------------------------------------

test("plumbEndpoint: veth with its peer in the container, host end enslaved and up, container configured", async (t) => {
  const { kernel, links, ns, host, container } = setup();
  const bridgeIndex = await links.ensureBridge(BRIDGE);
  kernel.clearCalls();
  const d = endpoint();
  await links.plumbEndpoint(d, ns, bridgeIndex);

  const veth = host.link(d.hostIfName)!;
  const eth0 = container.link("eth0")!;
  t.deepEqual(calls(kernel), [
    [
      "host",
      "createVeth",
      {
        name: d.hostIfName,
        mtu: 1500,
        alias: d.alias,
        peer: { name: "eth0", netns: ns, mac: "02:42:ac:12:00:02", alias: d.alias },
      },
    ],
    ["host", "setLink", veth.index, { master: bridgeIndex, up: true, mtu: 1500 }],
    ["host", "setBridgePort", veth.index, { isolated: false, hairpin: false }],
    [ns.path, "setLink", 1, { up: true }], // lo
    [ns.path, "addAddress", eth0.index, "172.18.0.2", 16],
    [ns.path, "addAddress", eth0.index, "fd00:1::2", 64],
    [ns.path, "setLink", eth0.index, { up: true }],
    [ns.path, "addRoute", { family: 4, gateway: "172.18.0.1", oif: eth0.index }],
    [ns.path, "addRoute", { family: 6, gateway: "fd00:1::1", oif: eth0.index }],
  ]);
  t.like(veth, {
    kind: "veth",
    master: bridgeIndex,
    up: true,
    mtu: 1500,
    alias: d.alias,
    peerIndex: eth0.index,
  });
  t.like(eth0, {
    kind: "veth",
    up: true,
    mtu: 1500,
    mac: "02:42:ac:12:00:02",
    alias: d.alias,
    peerIndex: veth.index,
  });
  t.is(host.link("eth0"), undefined, "the peer is not in the host namespace");
  t.true(container.link("lo")?.up);
  t.deepEqual(
    container.addressesOf("eth0").filter((a) => !a.startsWith("fe80:")),
    ["172.18.0.2/16", "fd00:1::2/64"],
  );
  const defaults = (await container.listRoutes(4)).filter((r) => r.dstLen === 0);
  t.deepEqual(defaults, [
    { family: 4, dstLen: 0, gateway: "172.18.0.1", oif: eth0.index, table: 254, type: 1 },
  ]);
  t.true(await links.hasDefaultRoute(ns, 4));
  t.true(await links.hasDefaultRoute(ns, 6));
});

test("plumbEndpoint sets the bridge-port flags: isolated for ICC off, hairpin when publishing", async (t) => {
  const { links, ns, host } = setup();
  const bridgeIndex = await links.ensureBridge(BRIDGE);
  await links.plumbEndpoint(endpoint({ isolated: true, hairpin: true }), ns, bridgeIndex);
  t.deepEqual(host.portFlags(endpoint().hostIfName), { isolated: true, hairpin: true });
});

test("plumbEndpoint without routes (not the gateway endpoint) adds none", async (t) => {
  const { kernel, links, ns } = setup();
  const bridgeIndex = await links.ensureBridge(BRIDGE);
  const d = endpoint();
  await links.plumbEndpoint({ ...d, container: { ...d.container, routes: [] } }, ns, bridgeIndex);
  t.deepEqual(kernel.callsOf("addRoute"), []);
  t.false(await links.hasDefaultRoute(ns, 4));
});

test("plumbEndpoint into a namespace that is gone: NOT_FOUND and no half-made veth", async (t) => {
  const { kernel, links, ns, host } = setup();
  const bridgeIndex = await links.ensureBridge(BRIDGE);
  kernel.removeNetns(ns);
  await t.throwsAsync(links.plumbEndpoint(endpoint(), ns, bridgeIndex), { code: "NOT_FOUND" });
  t.is(host.link(endpoint().hostIfName), undefined);
});

test("plumbEndpoint when the veth name is taken: KernelError EEXIST, nothing enslaved", async (t) => {
  const { kernel, links, ns } = setup();
  const bridgeIndex = await links.ensureBridge(BRIDGE);
  await links.plumbEndpoint(endpoint(), ns, bridgeIndex);
  const other = kernel.addNetns("c2");
  kernel.clearCalls();
  const err = await t.throwsAsync(links.plumbEndpoint(endpoint(), other, bridgeIndex), { code: "KERNEL" });
  t.is((err as TrellisError & { errno?: number }).errno, 17);
  t.deepEqual(
    calls(kernel).map((c) => c[1]),
    ["createVeth"],
  );
  t.deepEqual(
    await kernel
      .ns(other)
      .listLinks()
      .then((l) => l.map((x) => x.name)),
    ["lo"],
  );
});

// --- ensureEndpoint -----------------------------------------------------------------------------

test("ensureEndpoint on a healthy endpoint: only idempotent calls, nothing created or deleted", async (t) => {
  const { kernel, links, ns, bridgeIndex, d, host } = await plumbed();
  const before = await snapshot(kernel, ns);
  t.is(await links.ensureEndpoint(d, ns, bridgeIndex), "checked");
  const veth = host.link(d.hostIfName)!;
  const eth0 = kernel.ns(ns).link("eth0")!;
  // setBridgePort and addRoute are sent every time: both are idempotent in the kernel.
  t.deepEqual(calls(kernel), [
    ["host", "setBridgePort", veth.index, { isolated: false, hairpin: false }],
    [ns.path, "addRoute", { family: 4, gateway: "172.18.0.1", oif: eth0.index }],
    [ns.path, "addRoute", { family: 6, gateway: "fd00:1::1", oif: eth0.index }],
  ]);
  t.deepEqual(kernel.callsOf(...CREATING, ...DELETING, "setLink", "addAddress"), []);
  t.deepEqual(await snapshot(kernel, ns), before);
});

test("ensureEndpoint recreates a missing veth ('created') and ends in the same state", async (t) => {
  const { kernel, links, ns, bridgeIndex, d, host, container } = await plumbed();
  const before = await snapshot(kernel, ns);
  await host.deleteLinkByName(d.hostIfName);
  t.is(container.link("eth0"), undefined, "deleting one end deleted both");
  t.false(await links.hasDefaultRoute(ns, 4), "the default route went with the link");
  kernel.clearCalls();
  t.is(await links.ensureEndpoint(d, ns, bridgeIndex), "created");
  t.is(kernel.calls[0]?.op, "createVeth");
  const after = await snapshot(kernel, ns);
  // same names, flags, addresses and routes; only the ifindexes are new
  const shape = (s: typeof before) =>
    JSON.stringify(s, (k, v) => (["index", "oif", "peerIndex", "master"].includes(k) ? undefined : v));
  t.is(shape(after), shape(before));
  t.true(await links.hasDefaultRoute(ns, 4));
});

test("ensureEndpoint corrects a host end released from its bridge with one setLink", async (t) => {
  const { kernel, links, ns, bridgeIndex, d, host } = await plumbed();
  const veth = host.link(d.hostIfName)!;
  await host.setLink(veth.index, { master: 0 });
  kernel.clearCalls();
  t.is(await links.ensureEndpoint(d, ns, bridgeIndex), "checked");
  t.deepEqual(kernel.callsOf("setLink"), [
    { ns: "host", op: "setLink", args: [veth.index, { master: bridgeIndex, up: true, mtu: 1500 }] },
  ]);
  t.is(host.link(d.hostIfName)?.master, bridgeIndex);
  t.deepEqual(host.portFlags(d.hostIfName), { isolated: false, hairpin: false });
});

test("ensureEndpoint brings a downed container interface back with its address and route", async (t) => {
  const { kernel, links, ns, bridgeIndex, d, container } = await plumbed();
  const eth0 = container.link("eth0")!;
  await container.setLink(eth0.index, { up: false }); // IPv6 addresses and routes go with it
  await container.deleteAddress(eth0.index, "172.18.0.2", 16);
  kernel.clearCalls();
  await links.ensureEndpoint(d, ns, bridgeIndex);
  t.deepEqual(
    calls(kernel).filter((c) => c[0] === ns.path),
    [
      [ns.path, "addAddress", eth0.index, "172.18.0.2", 16],
      [ns.path, "addAddress", eth0.index, "fd00:1::2", 64],
      [ns.path, "setLink", eth0.index, { up: true }],
      [ns.path, "addRoute", { family: 4, gateway: "172.18.0.1", oif: eth0.index }],
      [ns.path, "addRoute", { family: 6, gateway: "fd00:1::1", oif: eth0.index }],
    ],
  );
  t.true(await links.hasDefaultRoute(ns, 4));
});

test("ensureEndpoint when the container end was renamed away: CONFLICT naming it and the namespace", async (t) => {
  const { links, ns, bridgeIndex, d, container } = await plumbed();
  const eth0 = container.link("eth0")!;
  await t.throwsAsync(
    container.setLink(eth0.index, { name: "renamed0" }),
    { message: /busy/ },
    "not while up",
  );
  await container.setLink(eth0.index, { up: false });
  await container.setLink(eth0.index, { name: "renamed0" });
  await t.throwsAsync(links.ensureEndpoint(d, ns, bridgeIndex), {
    code: "CONFLICT",
    message: `interface eth0 is missing in ${ns.path}`,
  });
});

// --- removal, names, default routes -----------------------------------------------------------

test("removeEndpoint deletes both ends; a missing one counts as done", async (t) => {
  const { kernel, links, d, ns, host } = await plumbed();
  await links.removeEndpoint(d.hostIfName);
  t.is(host.link(d.hostIfName), undefined);
  t.is(kernel.ns(ns).link("eth0"), undefined);
  await t.notThrowsAsync(links.removeEndpoint(d.hostIfName));
});

test("removeBridge deletes the bridge and releases its ports", async (t) => {
  const { links, d, host } = await plumbed();
  await links.removeBridge(BRIDGE.name);
  t.is(host.link(BRIDGE.name), undefined);
  t.is(host.link(d.hostIfName)?.master, undefined);
  await t.notThrowsAsync(links.removeBridge(BRIDGE.name));
});

test("nextIfName picks the lowest free ethN, skipping reserved names", async (t) => {
  const { kernel, links, ns } = setup();
  t.is(await links.nextIfName(ns, new Set()), "eth0");
  kernel.ns(ns).addLink({ name: "eth0" });
  kernel.ns(ns).addLink({ name: "eth2" });
  t.is(await links.nextIfName(ns, new Set()), "eth1");
  t.is(await links.nextIfName(ns, new Set(["eth1"])), "eth3");
  t.is(await links.nextIfName(ns, new Set(["eth1", "eth3", "eth4"])), "eth5");
  kernel.ns(ns).addLink({ name: "eth10" });
  t.is(await links.nextIfName(ns, new Set()), "eth1", "eth10 does not take eth1");
  t.deepEqual(kernel.calls, [], "read-only");
});

test("hasDefaultRoute: only a main-table route with no destination counts", async (t) => {
  const { links, ns, container } = setup();
  t.false(await links.hasDefaultRoute(ns, 4));
  const eth = container.addLink({ name: "eth0", up: true });
  await container.addAddress(eth.index, "10.0.0.2", 24);
  await container.addRoute({ family: 4, dst: "192.168.0.0/16", gateway: "10.0.0.1" });
  t.false(await links.hasDefaultRoute(ns, 4), "a connected and a static route are not default routes");
  await container.addRoute({ family: 4, gateway: "10.0.0.1" });
  t.true(await links.hasDefaultRoute(ns, 4));
  t.false(await links.hasDefaultRoute(ns, 6));
});
