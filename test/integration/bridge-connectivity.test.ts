/**
 * The bridge driver on the kernel: containers (namespaces) on one network talk, on two networks they
 * don't, internal networks have no way out, ICC off isolates containers, static and IPv6 addresses.
 */
import test, { type ExecutionContext } from "ava";
import { Lab } from "../helpers/lab.js";
import {
  addrs,
  createNetwork,
  fetchMarker,
  inspect,
  ipOf,
  links,
  ping,
  routes,
  startServer,
} from "../helpers/net.js";

async function oneHost(t: ExecutionContext) {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  return { lab, host, d };
}

test("two containers on one network ping each other and talk TCP; eth0, address and default route are set", async (t) => {
  const { lab, d } = await oneHost(t);
  const id = await createNetwork(d, "net1", ["--subnet", "10.30.0.0/24"]);
  t.regex(id, /^[0-9a-f]{64}$/);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "net1", c1]);
  await d.cli(["network", "connect", "net1", c2]);
  const ip1 = await ipOf(d, "net1", c1);
  const ip2 = await ipOf(d, "net1", c2);
  t.not(ip1, ip2);
  const c1Addrs = await addrs(lab, c1);
  const eth0 = c1Addrs.find((a) => a.ifname === "eth0");
  t.truthy(eth0, "the container got eth0");
  t.true(eth0!.addr_info.some((a) => a.local === ip1 && a.prefixlen === 24));
  const r = await routes(lab, c1);
  t.true(
    r.some((x) => x.dst === "default" && x.gateway === "10.30.0.1"),
    JSON.stringify(r),
  );
  t.true(await ping(lab, c1, ip2));
  t.true(await ping(lab, c2, ip1));
  t.true(await ping(lab, c1, "10.30.0.1"), "the gateway answers");
  await startServer(lab, c2, 8000, "hello-from-c2");
  t.is(await fetchMarker(lab, c1, ip2, 8000), "hello-from-c2");
});

test("containers on different networks cannot reach each other; a container on both reaches both", async (t) => {
  const { lab, d } = await oneHost(t);
  await createNetwork(d, "a", ["--subnet", "10.31.1.0/24"]);
  await createNetwork(d, "b", ["--subnet", "10.31.2.0/24"]);
  const ca = await lab.addContainer("ca");
  const cb = await lab.addContainer("cb");
  const cab = await lab.addContainer("cab");
  await d.cli(["network", "connect", "a", ca]);
  await d.cli(["network", "connect", "b", cb]);
  await d.cli(["network", "connect", "a", cab]);
  await d.cli(["network", "connect", "b", cab]);
  const ipa = await ipOf(d, "a", ca);
  const ipb = await ipOf(d, "b", cb);
  t.true(await ping(lab, cab, ipa));
  t.true(await ping(lab, cab, ipb));
  t.false(await ping(lab, ca, ipb), "a → b must be blocked");
  t.false(await ping(lab, cb, ipa), "b → a must be blocked");
  const ifs = (await links(lab, cab)).map((l) => l.ifname).sort();
  t.deepEqual(ifs, ["eth0", "eth1", "lo"]);
  // default route only through the first network, as Docker does
  const r = await routes(lab, cab);
  t.deepEqual(
    r.filter((x) => x.dst === "default").map((x) => x.gateway),
    ["10.31.1.1"],
  );
});

test("egress is masqueraded; an --internal network has no way out", async (t) => {
  const { lab, host, d } = await oneHost(t);
  const outside = await lab.addHost("outside"); // another machine on the underlay, no daemon
  await createNetwork(d, "pub", ["--subnet", "10.32.1.0/24"]);
  await createNetwork(d, "priv", ["--subnet", "10.32.2.0/24", "--internal"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "pub", c1]);
  await d.cli(["network", "connect", "priv", c2]);
  await startServer(lab, outside.ns, 8080, "outside");
  // The outside machine has no route to 10.32.0.0/16: only masquerading makes the reply come back.
  t.is(await fetchMarker(lab, c1, outside.underlayIp, 8080), "outside");
  t.true(await ping(lab, c1, outside.underlayIp));
  t.false(await ping(lab, c2, outside.underlayIp), "internal network reached the outside");
  t.false(await ping(lab, c2, host.underlayIp), "internal network reached the host's other address");
  const r = await routes(lab, c2);
  t.false(
    r.some((x) => x.dst === "default"),
    "internal network got a default route",
  );
  t.true((await inspect(d, "priv")).Internal);
});

test("enable_icc=false: containers on the network cannot talk to each other but reach the gateway", async (t) => {
  const { lab, d } = await oneHost(t);
  await createNetwork(d, "noicc", [
    "--subnet",
    "10.33.0.0/24",
    "-o",
    "com.docker.network.bridge.enable_icc=false",
  ]);
  await createNetwork(d, "icc", ["--subnet", "10.33.1.0/24"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  const c3 = await lab.addContainer("c3");
  const c4 = await lab.addContainer("c4");
  for (const [net, c] of [
    ["noicc", c1],
    ["noicc", c2],
    ["icc", c3],
    ["icc", c4],
  ] as const) {
    await d.cli(["network", "connect", net, c]);
  }
  t.true(await ping(lab, c1, "10.33.0.1"));
  t.false(await ping(lab, c1, await ipOf(d, "noicc", c2)));
  t.true(await ping(lab, c3, await ipOf(d, "icc", c4)), "ICC on (the default) still works");
});

test("static --ip is honoured; a taken or out-of-subnet --ip is refused and changes nothing", async (t) => {
  const { lab, d } = await oneHost(t);
  await createNetwork(d, "st", ["--subnet", "10.34.0.0/24", "--ip-range", "10.34.0.128/25"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  const c3 = await lab.addContainer("c3");
  await d.cli(["network", "connect", "--ip", "10.34.0.7", "st", c1]);
  t.is(await ipOf(d, "st", c1), "10.34.0.7");
  await d.cli(["network", "connect", "st", c3]);
  const dynamic = await ipOf(d, "st", c3);
  t.true(Number(dynamic.split(".")[3]) >= 128, `dynamic address ${dynamic} comes from the ip-range`);
  const taken = await d.cli(["network", "connect", "--ip", "10.34.0.7", "st", c2], { allowFail: true });
  t.is(taken.code, 1);
  t.regex(taken.stderr, /10\.34\.0\.7.*(in use|taken)/i);
  const outside = await d.cli(["network", "connect", "--ip", "10.35.0.7", "st", c2], { allowFail: true });
  t.is(outside.code, 1);
  t.regex(outside.stderr, /outside/i);
  t.is(Object.keys((await inspect(d, "st")).Containers).length, 2);
  t.deepEqual(
    (await links(lab, c2)).map((l) => l.ifname),
    ["lo"],
    "a refused connect leaves nothing in the container",
  );
  t.true(await ping(lab, c3, "10.34.0.7"));
});

test("IPv6 dual stack: both families assigned, ping6 between containers and to the gateway", async (t) => {
  const { lab, d } = await oneHost(t);
  await createNetwork(d, "v6", ["--ipv6", "--subnet", "10.36.0.0/24", "--subnet", "fd00:36::/64"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "v6", c1]);
  await d.cli(["network", "connect", "--ip6", "fd00:36::99", "v6", c2]);
  const a1 = await ipOf(d, "v6", c1, 6);
  t.regex(a1, /^fd00:36::/);
  t.is(await ipOf(d, "v6", c2, 6), "fd00:36::99");
  t.true(await ping(lab, c1, "fd00:36::99"));
  t.true(await ping(lab, c2, a1));
  t.true(await ping(lab, c1, "fd00:36::1"), "IPv6 gateway");
  t.true(await ping(lab, c1, await ipOf(d, "v6", c2)));
  const r6 = await routes(lab, c1, 6);
  t.true(
    r6.some((x) => x.dst === "default" && x.gateway === "fd00:36::1"),
    JSON.stringify(r6),
  );
});
