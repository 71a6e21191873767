/**
 * The Docker plugin's handlers over the daemon's real managers, on the fake kernel and an in-memory
 * store: the call sequences a real engine sends (docker-engine-notes.md §2), each call retried as
 * the engine does after a trellisd restart, and a "restart" (new managers over the same store and
 * kernel) in the middle. What the engine gets back, and what trellis holds afterwards.
 */
import test from "ava";
import { pino } from "pino";
import type { DaemonContext } from "../../lib/daemon/context.js";
import { EndpointManager } from "../../lib/daemon/endpoints.js";
import { DaemonEvents } from "../../lib/daemon/events.js";
import { FirewallManager } from "../../lib/daemon/firewall.js";
import { LinkProgrammer } from "../../lib/daemon/links.js";
import { NetworkManager } from "../../lib/daemon/networks.js";
import { Ipam } from "../../lib/ipam/ipam.js";
import { driverBackend } from "../../lib/plugin/driver.js";
import { DockerEndpoints } from "../../lib/plugin/endpoints.js";
import { DockerIpam } from "../../lib/plugin/ipam.js";
import { DockerNetworks } from "../../lib/plugin/networks.js";
import { PluginRouter } from "../../lib/plugin/routes.js";
import { PluginState } from "../../lib/plugin/state.js";
import type { EndpointRecord } from "../../lib/store/records.js";
import { SqliteStore } from "../../lib/store/sqlite-store.js";
import { FakeKernel } from "../helpers/fake-kernel.js";

const NET = "a".repeat(64);
const EP1 = `1${"b".repeat(63)}`;
const EP2 = `2${"b".repeat(63)}`;
const SANDBOX = "/var/run/docker/netns/0123456789ab";

/** One trellisd's worth of managers over a store and kernel that outlive it. */
function daemon(store: SqliteStore, kernel: FakeKernel) {
  const log = pino({ level: "silent" });
  const events = new DaemonEvents();
  const ctx: DaemonContext = {
    store,
    ipam: new Ipam({
      store,
      // as the daemon names holders in messages
      describeOwner: (o) => (store.getEndpoint(o) ? `endpoint ${store.getEndpoint(o)?.name}` : o),
    }),
    kernel,
    links: new LinkProgrammer(kernel),
    firewall: new FirewallManager(kernel, store),
    log,
    events,
  };
  const networks = new NetworkManager(ctx);
  const endpoints = new EndpointManager(ctx, networks);
  const state = new PluginState(store);
  let eps: DockerEndpoints | undefined;
  const dockerNetworks = new DockerNetworks({
    ctx,
    networks,
    state,
    dropLeftovers: async (n, id) => eps?.dropLeftovers(n, id),
  });
  eps = new DockerEndpoints({ ctx, networks, dockerNetworks, overlay: () => endpoints.overlay });
  const ipam = new DockerIpam({ ctx, networks, state, overlay: () => undefined });
  const router = new PluginRouter(driverBackend(dockerNetworks, eps), ipam, log);
  const connected: EndpointRecord[] = [];
  events.on("endpoint-connected", (ep) => connected.push(ep));
  // biome-ignore lint/suspicious/noExplicitAny: replies are checked field by field
  const post = async (path: string, body?: unknown): Promise<any> =>
    (await router.dispatch({ method: "POST", path, query: new URLSearchParams(), body })).body;
  return { post, store, kernel, connected, events, settle: () => eps?.settle() };
}

function fresh() {
  return daemon(SqliteStore.openInMemory(), new FakeKernel());
}

const ref = (endpointId: string) => ({ NetworkID: NET, EndpointID: endpointId });

test("IPAM: a new pool per unconstrained request, PoolIDs valid after a restart, Address and gateway honoured", async (t) => {
  const d = fresh();
  const p1 = await d.post("/IpamDriver.RequestPool", { AddressSpace: "TrellisLocal", Pool: "", V6: false });
  const p2 = await d.post("/IpamDriver.RequestPool", { AddressSpace: "TrellisLocal", Pool: "", V6: false });
  t.truthy(p1.PoolID);
  t.not(p1.PoolID, p2.PoolID);
  t.not(p1.Pool, p2.Pool, "the engine re-asks on overlap while holding the first: it must get another");
  const again = daemon(d.store, d.kernel); // trellisd restarted; the engine keeps its PoolIDs
  const a = await again.post("/IpamDriver.RequestAddress", { PoolID: p1.PoolID, Address: "" });
  t.regex(a.Address, /\/\d+$/, "an address with its prefix length");
  const fixed = await again.post("/IpamDriver.RequestPool", {
    AddressSpace: "TrellisLocal",
    Pool: "10.50.0.0/24",
  });
  const gw = { RequestAddressType: "com.docker.network.gateway" };
  t.deepEqual(
    await again.post("/IpamDriver.RequestAddress", {
      PoolID: fixed.PoolID,
      Address: "10.50.0.254",
      Options: gw,
    }),
    {
      Address: "10.50.0.254/24",
      Data: {},
    },
  );
  t.is(
    (await again.post("/IpamDriver.RequestAddress", { PoolID: fixed.PoolID, Options: gw })).Address,
    "10.50.0.254/24",
  );
  t.deepEqual(
    await again.post("/IpamDriver.RequestAddress", { PoolID: fixed.PoolID, Address: "10.50.0.7" }),
    {
      Address: "10.50.0.7/24",
      Data: {},
    },
  );
  t.deepEqual(
    await again.post("/IpamDriver.RequestAddress", { PoolID: fixed.PoolID, Address: "10.50.0.7" }),
    {
      Error: "address 10.50.0.7 is already in use by docker-ipam",
    },
  );
  t.deepEqual(
    await again.post("/IpamDriver.RequestAddress", { PoolID: fixed.PoolID, Address: "10.51.0.7" }),
    {
      Error: "address 10.51.0.7 is outside subnet 10.50.0.0/24",
    },
  );
  t.regex(
    (await again.post("/IpamDriver.RequestAddress", { PoolID: "nope" })).Error,
    /address pool "nope" is unknown to trellis/,
  );
  t.regex(
    (await again.post("/IpamDriver.RequestPool", { Pool: "10.50.0.0/25" })).Error,
    /subnet 10\.50\.0\.0\/25 overlaps/,
  );
  t.regex(
    (await again.post("/IpamDriver.RequestPool", { Options: { a: "b" } })).Error,
    /unknown IPAM option "a"/,
  );
  for (const id of [p1.PoolID, p1.PoolID, "nope"])
    t.deepEqual(await again.post("/IpamDriver.ReleasePool", { PoolID: id }), {});
  t.is(again.store.getPool(p1.PoolID), undefined);
});

test("a network's life as the engine drives it with trellis IPAM, every call retried, a restart in the middle", async (t) => {
  const d = fresh();
  const pool = await d.post("/IpamDriver.RequestPool", {
    AddressSpace: "TrellisLocal",
    Pool: "10.60.0.0/24",
  });
  const gw = { RequestAddressType: "com.docker.network.gateway" };
  await d.post("/IpamDriver.RequestAddress", { PoolID: pool.PoolID, Options: gw });
  const create = {
    NetworkID: NET,
    Options: { "com.docker.network.generic": {}, "com.docker.network.enable_ipv6": false },
    IPv4Data: [{ AddressSpace: "TrellisLocal", Pool: "10.60.0.0/24", Gateway: "10.60.0.1/24" }],
    IPv6Data: [],
  };
  t.deepEqual(await d.post("/NetworkDriver.CreateNetwork", create), {});
  t.deepEqual(await d.post("/NetworkDriver.CreateNetwork", create), {}, "a retry is a no-op");
  const net = d.store.getNetwork(NET)!;
  t.is(net.name, `docker-${NET.slice(0, 12)}`);
  t.deepEqual(net.poolIds, [pool.PoolID], "the network took the engine's pool over");
  const bridgeV4 = () =>
    d.kernel
      .ns()
      .addressesOf(`br-${NET.slice(0, 12)}`)
      .filter((a) => !a.startsWith("fe80"));
  t.deepEqual(bridgeV4(), ["10.60.0.1/24"]);

  const addr = await d.post("/IpamDriver.RequestAddress", { PoolID: pool.PoolID, Address: "" });
  t.is(addr.Address, "10.60.0.2/24");
  const ce = {
    ...ref(EP1),
    Interface: { Address: addr.Address, AddressIPv6: "", MacAddress: "" },
    Options: {},
  };
  const created = await d.post("/NetworkDriver.CreateEndpoint", ce);
  t.deepEqual(
    created,
    { Interface: { MacAddress: "02:42:0a:3c:00:02" } },
    "only the MAC: the address was set",
  );
  t.deepEqual(await d.post("/NetworkDriver.CreateEndpoint", ce), created, "a retry answers the same");
  const host = d.kernel.ns();
  const veth = host.link(`veth${EP1.slice(0, 11)}`)!;
  const far = host.link(`vdk${EP1.slice(0, 12)}`)!;
  t.is(veth.master, host.link(`br-${NET.slice(0, 12)}`)!.index, "host end on the bridge");
  t.true(veth.up);
  t.false(far.up, "far end down, in the daemon's namespace, for the engine to move");
  t.is(far.mac, "02:42:0a:3c:00:02");
  t.is(host.addressesOf(far.name).length, 0, "the engine sets the address itself");
  t.is(d.store.getAllocation(pool.PoolID, "10.60.0.2")?.owner, EP1, "the endpoint holds its address");

  const join = { ...ref(EP1), SandboxKey: SANDBOX, Options: {} };
  const want = {
    InterfaceName: { SrcName: `vdk${EP1.slice(0, 12)}`, DstPrefix: "eth" },
    Gateway: "10.60.0.1",
    DisableGatewayService: true,
  };
  t.deepEqual(await d.post("/NetworkDriver.Join", join), want);
  t.deepEqual(await d.post("/NetworkDriver.Join", join), want);
  t.is(d.connected.length, 1, "connected once (DNS names, overlay announcement)");

  const after = daemon(d.store, d.kernel); // trellisd restarted
  t.deepEqual(await after.post("/NetworkDriver.Join", join), want, "the engine's retry after the restart");
  t.deepEqual(after.connected, [], "already joined: nothing announced twice");
  for (let i = 0; i < 2; i++) {
    t.deepEqual(await after.post("/NetworkDriver.RevokeExternalConnectivity", ref(EP1)), {});
    t.deepEqual(await after.post("/NetworkDriver.Leave", ref(EP1)), {});
  }
  for (let i = 0; i < 2; i++) t.deepEqual(await after.post("/NetworkDriver.DeleteEndpoint", ref(EP1)), {});
  await after.settle(); // the veth goes after the reply
  t.is(host.link(veth.name), undefined, "veth pair gone");
  t.is(host.link(far.name), undefined);
  t.is(d.store.getAllocation(pool.PoolID, "10.60.0.2")?.owner, "docker-ipam", "back to the IPAM driver");
  t.deepEqual(
    await after.post("/IpamDriver.ReleaseAddress", { PoolID: pool.PoolID, Address: "10.60.0.2" }),
    {},
  );
  t.is(d.store.getAllocation(pool.PoolID, "10.60.0.2"), undefined, "released by the engine's call");

  // network rm: the engine releases the gateway and the pool first, then deletes the network
  await after.post("/IpamDriver.ReleaseAddress", { PoolID: pool.PoolID, Address: "10.60.0.1" });
  await after.post("/IpamDriver.ReleasePool", { PoolID: pool.PoolID });
  t.deepEqual(bridgeV4(), ["10.60.0.1/24"], "still up until DeleteNetwork");
  for (let i = 0; i < 2; i++)
    t.deepEqual(await after.post("/NetworkDriver.DeleteNetwork", { NetworkID: NET }), {});
  t.is(d.store.getNetwork(NET), undefined);
  t.is(d.store.getPool(pool.PoolID), undefined);
  t.is(host.link(`br-${NET.slice(0, 12)}`), undefined);
});

test("the engine's own IPAM: trellis records the engine's addresses and names whoever holds one", async (t) => {
  const d = fresh();
  const create = {
    NetworkID: NET,
    Options: { "com.docker.network.generic": { "trellis.name": "web" }, "com.docker.network.internal": true },
    IPv4Data: [
      {
        AddressSpace: "LocalDefault",
        Pool: "10.61.0.0/16",
        Gateway: "10.61.0.1/16",
        AuxAddresses: { r: "10.61.0.9/16" },
      },
    ],
  };
  t.deepEqual(await d.post("/NetworkDriver.CreateNetwork", create), {});
  const net = d.store.getNetwork(NET)!;
  t.is(net.name, "web");
  t.true(net.internal);
  t.deepEqual(net.docker, { ipam: "engine" });
  const ce = (id: string, address: string) => ({ ...ref(id), Interface: { Address: address } });
  t.deepEqual(await d.post("/NetworkDriver.CreateEndpoint", ce(EP1, "10.61.0.2/16")), {
    Interface: { MacAddress: "02:42:0a:3d:00:02" },
  });
  t.is(d.store.getEndpoint(EP1)?.ipv4, "10.61.0.2/16");
  t.regex(
    (await d.post("/NetworkDriver.CreateEndpoint", ce(EP2, "10.61.0.2/16"))).Err,
    /address 10\.61\.0\.2 is already in use by endpoint docker-1bbbbbbbbbbb$/,
  );
  t.regex(
    (await d.post("/NetworkDriver.CreateEndpoint", ce(EP2, "10.61.0.9/16"))).Err,
    /already in use by aux:r/,
  );
  t.is(d.kernel.ns().link(`veth${EP2.slice(0, 11)}`), undefined, "a refused endpoint leaves no link");
  const join = await d.post("/NetworkDriver.Join", { ...ref(EP1), SandboxKey: SANDBOX });
  t.deepEqual(
    join,
    { InterfaceName: { SrcName: `vdk${EP1.slice(0, 12)}`, DstPrefix: "eth" }, DisableGatewayService: true },
    "internal: no gateway",
  );
  t.regex(
    (await d.post("/NetworkDriver.Join", { ...ref(EP2), SandboxKey: SANDBOX })).Err,
    /endpoint 2bbbbbbbbbbb is unknown to trellis/,
  );
  const other = { NetworkID: "c".repeat(64), EndpointID: EP2, Interface: { Address: "10.62.0.2/24" } };
  t.regex(
    (await d.post("/NetworkDriver.CreateEndpoint", other)).Err,
    /network cccccccccccc is unknown to trellis/,
  );
  t.deepEqual(await d.post("/NetworkDriver.DeleteEndpoint", ref(EP1)), {});
  t.is(
    d.store.getAllocation(net.poolIds[0]!, "10.61.0.2"),
    undefined,
    "the engine's IPAM address is simply freed",
  );
});

test("published ports: into trellis's nft map, a retry changes nothing, a clash is refused, revoke removes", async (t) => {
  const d = fresh();
  await d.post("/NetworkDriver.CreateNetwork", {
    NetworkID: NET,
    IPv4Data: [{ AddressSpace: "LocalDefault", Pool: "10.63.0.0/24", Gateway: "10.63.0.1/24" }],
  });
  for (const [id, address] of [
    [EP1, "10.63.0.2/24"],
    [EP2, "10.63.0.3/24"],
  ] as const) {
    await d.post("/NetworkDriver.CreateEndpoint", { ...ref(id), Interface: { Address: address } });
    await d.post("/NetworkDriver.Join", { ...ref(id), SandboxKey: `${SANDBOX}${id[0]}` });
  }
  const portmap = (hostPort: number, end = hostPort) => ({
    "com.docker.network.portmap": [
      { Proto: 6, IP: "", Port: 80, HostIP: "", HostPort: hostPort, HostPortEnd: end },
    ],
  });
  d.kernel.nftScripts.length = 0;
  t.deepEqual(
    await d.post("/NetworkDriver.ProgramExternalConnectivity", { ...ref(EP1), Options: portmap(8080) }),
    {},
  );
  t.deepEqual(
    d.kernel.nftScripts.map((s) => s.script.trim()),
    ["add element inet trellis pub4_tcp { 8080 : 10.63.0.2 . 80 }"],
  );
  await d.post("/NetworkDriver.ProgramExternalConnectivity", { ...ref(EP1), Options: portmap(8080) });
  t.is(d.kernel.nftScripts.length, 1, "a retry changes nothing");
  t.deepEqual(
    await d.post("/NetworkDriver.ProgramExternalConnectivity", { ...ref(EP2), Options: portmap(8080) }),
    {
      Err: "host port 0.0.0.0:8080/tcp is already published on this host",
    },
  );
  await d.post("/NetworkDriver.ProgramExternalConnectivity", { ...ref(EP2), Options: portmap(8080, 8082) });
  t.deepEqual(
    d.store.getEndpoint(EP2)?.publish,
    [{ proto: "tcp", hostPort: 8081, containerPort: 80 }],
    "first free in the range",
  );
  t.true(d.kernel.ns().portFlags(`veth${EP2.slice(0, 11)}`)?.hairpin, "hairpin for a publishing endpoint");
  await d.post("/NetworkDriver.RevokeExternalConnectivity", ref(EP1));
  t.is(d.kernel.nftScripts.at(-1)?.script.trim(), "delete element inet trellis pub4_tcp { 8080 }");
  t.deepEqual(d.store.getEndpoint(EP1)?.publish, []);
});
