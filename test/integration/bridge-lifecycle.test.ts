/**
 * Lifecycle on the kernel: inspect/ls/rm, disconnect frees everything, network rm removes the bridge
 * and its rules, hundreds of cycles leak nothing, 50 concurrent connects get distinct addresses.
 */
import test from "ava";
import { Lab } from "../helpers/lab.js";
import { kernelInventory } from "../helpers/leaks.js";
import { createNetwork, type EndpointJson, inspect, ipOf, links, nftTable, ping } from "../helpers/net.js";

test("create, ls, inspect (Docker's shape), rm refused while attached, disconnect, rm, prune", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  const id = await createNetwork(d, "life", [
    "--subnet",
    "10.50.0.0/24",
    "--gateway",
    "10.50.0.254",
    "--label",
    "team=net",
    "-o",
    "com.docker.network.bridge.name=trlife0",
    "-o",
    "com.docker.network.driver.mtu=1400",
  ]);
  const ls = await d.cli(["network", "ls"]);
  t.regex(ls.stdout, new RegExp(`${id.slice(0, 12)}\\s+life\\s+bridge\\s+local`));
  const net = await inspect(d, "life");
  t.like(net, {
    Name: "life",
    Id: id,
    Scope: "local",
    Driver: "bridge",
    EnableIPv6: false,
    Internal: false,
    Labels: { team: "net" },
    IPAM: { Driver: "default", Config: [{ Subnet: "10.50.0.0/24", Gateway: "10.50.0.254" }] },
  });
  const bridge = (await links(lab, host.ns)).find((l) => l.ifname === "trlife0");
  t.truthy(bridge);
  t.is(bridge!.mtu, 1400);
  const c1 = await lab.addContainer("c1");
  await d.cli(["network", "connect", "--alias", "www", "life", c1]);
  const eth0 = (await links(lab, c1)).find((l) => l.ifname === "eth0");
  t.is(eth0?.mtu, 1400, "the container's interface has the network's MTU");
  const containers = (await inspect(d, "life")).Containers;
  const [cid, ep] = Object.entries(containers)[0] as [string, EndpointJson];
  t.regex(cid, /^[0-9a-f]{64}$/);
  t.like(ep, { Name: c1, IPv4Address: "10.50.0.1/24" });
  t.regex(ep.MacAddress, /^02:42:0a:32:00:01$/);
  t.true(await ping(lab, c1, "10.50.0.254"));

  const refused = await d.cli(["network", "rm", "life"], { allowFail: true });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /connected endpoint/);

  await d.cli(["network", "disconnect", "life", c1]);
  t.deepEqual(
    (await links(lab, c1)).map((l) => l.ifname),
    ["lo"],
  );
  await d.cli(["network", "rm", "life"]);
  t.false(
    (await links(lab, host.ns)).some((l) => l.ifname === "trlife0"),
    "bridge removed",
  );
  const table = await nftTable(lab, host.ns);
  t.false(JSON.stringify(table).includes("trlife0"), "no rule mentions the removed bridge");
  await createNetwork(d, "p1", ["--subnet", "10.50.1.0/24"]);
  await createNetwork(d, "p2", ["--subnet", "10.50.2.0/24"]);
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "p2", c2]);
  const pruned = await d.cli(["network", "prune", "-f"]);
  t.regex(pruned.stdout, /p1/);
  t.notRegex(pruned.stdout, /p2/);
  t.is((await d.api("GET", "/networks")).body.length, 1);
});

test("200 connect/disconnect cycles leak no veth, address or rule", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "cyc", ["--subnet", "10.51.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const body = {
      Container: c1,
      EndpointConfig: {},
      Trellis: { Publish: [{ Proto: "tcp", HostPort: 6000, ContainerPort: 80 }] },
    };
    const r = await d.api("POST", "/networks/cyc/connect", body);
    t.is(r.status, 200, JSON.stringify(r.body));
    if (i % 50 === 0) seen.add(await ipOf(d, "cyc", c1));
    const r2 = await d.api("POST", "/networks/cyc/disconnect", { Container: c1 });
    t.is(r2.status, 200, JSON.stringify(r2.body));
  }
  // round robin: a released address is not handed back at once
  t.is(seen.size, 4);
  await d.api("POST", "/networks/cyc/connect", { Container: c1 });
  t.true(await ping(lab, c1, "10.51.0.1"));
  await d.api("POST", "/networks/cyc/disconnect", { Container: c1 });
  await waitNoVeths(lab, host.ns);
  const inv = await kernelInventory(lab, host.ns);
  t.deepEqual(inv.hostVeths, []);
  t.is(inv.portElements, 0);
  t.deepEqual(
    (await links(lab, c1)).map((l) => l.ifname),
    ["lo"],
  );
  t.deepEqual((await inspect(d, "cyc")).Containers, {});
});

async function waitNoVeths(lab: Lab, ns: string) {
  for (let i = 0; i < 100; i++) {
    if ((await kernelInventory(lab, ns)).hostVeths.length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("50 concurrent connects get distinct addresses; 50 concurrent disconnects leave nothing", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "conc", ["--subnet", "10.52.0.0/24"]);
  const containers = await Promise.all(Array.from({ length: 50 }, (_, i) => lab.addContainer(`c${i}`)));
  const started = Date.now();
  const connects = await Promise.all(
    containers.map((c) => d.api("POST", "/networks/conc/connect", { Container: c, EndpointConfig: {} })),
  );
  t.log(`50 concurrent connects: ${Date.now() - started} ms`);
  t.deepEqual(
    connects.map((r) => r.status),
    Array(50).fill(200),
  );
  const net = await inspect(d, "conc");
  const ips = Object.values(net.Containers).map((c) => c.IPv4Address);
  t.is(new Set(ips).size, 50);
  t.true(await ping(lab, containers[0]!, (ips[49] as string).split("/")[0]!));
  const disconnects = await Promise.all(
    containers.map((c) => d.api("POST", "/networks/conc/disconnect", { Container: c })),
  );
  t.deepEqual(
    disconnects.map((r) => r.status),
    Array(50).fill(200),
  );
  await waitNoVeths(lab, host.ns);
  t.deepEqual((await kernelInventory(lab, host.ns)).hostVeths, []);
  t.deepEqual((await inspect(d, "conc")).Containers, {});
});
