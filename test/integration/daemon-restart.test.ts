/**
 * Crash safety: kill -9 in the middle of a burst of connects, restart, and the kernel matches the
 * store exactly (no leaked veth, address, allocation or rule), while an established container pair
 * keeps pinging the whole time. A clean SIGTERM leaves the data plane up.
 */
import test from "ava";
import { Lab, waitFor } from "../helpers/lab.js";

const BURST = 40;

import { apiInventory, kernelInventory } from "../helpers/leaks.js";
import { addrs, createNetwork, inspect, ipOf, ping } from "../helpers/net.js";

test("SIGTERM exits 0 and leaves links, addresses and rules in place; restart changes nothing", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "keep", ["--subnet", "10.60.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "-p", "8080:80", "keep", c1]);
  await d.cli(["network", "connect", "keep", c2]);
  const before = await kernelInventory(lab, host.ns);
  t.is(await d.kill("SIGTERM"), 0);
  t.deepEqual(await kernelInventory(lab, host.ns), before, "stopping the daemon changed the data plane");
  t.true(await ping(lab, c1, await ipOf2(lab, c2)), "traffic flows with the daemon stopped");
  await d.restart();
  t.deepEqual(await kernelInventory(lab, host.ns), before);
  t.is(Object.keys((await inspect(d, "keep")).Containers).length, 2);
});

async function ipOf2(lab: Lab, ns: string): Promise<string> {
  const eth0 = (await addrs(lab, ns)).find((a) => a.ifname === "eth0");
  return eth0!.addr_info.find((a) => a.family === "inet")!.local;
}

test("kill -9 during a burst of connects, then restart: kernel and store converge, no leaks, pings never stop", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "burst", ["--subnet", "10.61.0.0/22"]);
  const a = await lab.addContainer("a");
  const b = await lab.addContainer("b");
  await d.cli(["network", "connect", "burst", a]);
  await d.cli(["network", "connect", "burst", b]);
  const ipB = await ipOf(d, "burst", b);
  // A steady ping from a to b during everything that follows: 0.05 s interval.
  const pinger = lab.spawnIn(a, ["ping", "-n", "-i", "0.05", ipB]);
  const containers = await Promise.all(Array.from({ length: BURST }, (_, i) => lab.addContainer(`x${i}`)));
  let answered = 0;
  let killed = false;
  const burst = containers.map((c, i) =>
    d
      .api("POST", "/networks/burst/connect", {
        Container: c,
        Trellis: { Publish: [{ Proto: "tcp", HostPort: 7000 + i, ContainerPort: 80 }] },
      })
      .then(
        (r) => {
          if (!killed && r.status === 200) answered++;
        },
        () => undefined,
      ),
  );
  // Kill once a few connects have been answered: the rest are queued or half-way through.
  await waitFor(async () => answered >= 5, { timeoutMs: 20_000, intervalMs: 1, what: "first connects" });
  killed = true;
  const acknowledged = answered;
  await d.kill("SIGKILL");
  await Promise.all(burst);
  await d.restart();
  // Finish the job from a clean daemon: connect whatever is not connected, then check.
  const net = await inspect(d, "burst");
  const connected = Object.keys(net.Containers).length;
  t.true(connected - 2 >= acknowledged, "every acknowledged connect survives the crash");
  t.log(
    `${connected - 2} of ${BURST} burst connects survived the crash (recorded and completed or rolled back)`,
  );
  const api = await apiInventory(d);
  const kernel = await kernelInventory(lab, host.ns);
  t.is(kernel.hostVeths.length, api.endpoints, "one host veth per recorded endpoint, no more");
  t.is(kernel.portElements, api.endpoints - 2, "one published-port element per recorded burst endpoint");
  // Each container either has exactly its recorded address on eth0, or no eth0 at all.
  const recorded = new Map(Object.values(net.Containers).map((c) => [c.Name, c.IPv4Address]));
  for (const c of containers) {
    const eth0 = (await addrs(lab, c)).find((x) => x.ifname === "eth0");
    const want = recorded.get(c);
    if (want === undefined) t.is(eth0, undefined, `${c} has an eth0 the store does not know`);
    else t.is(`${eth0?.addr_info[0]?.local}/${eth0?.addr_info[0]?.prefixlen}`, want);
  }
  // Addresses of rolled-back connects are free again: connect the rest, all distinct.
  for (const c of containers) if (!recorded.has(c)) await d.cli(["network", "connect", "burst", c]);
  const after = await inspect(d, "burst");
  const ips = Object.values(after.Containers).map((c) => c.IPv4Address);
  t.is(ips.length, BURST + 2);
  t.is(new Set(ips).size, BURST + 2);
  pinger.kill("SIGINT");
  await new Promise((r) => pinger.once("exit", r));
  const out = lab.output(pinger);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  t.truthy(m, out);
  t.log(`ping a→b during crash and restart: ${m![2]}/${m![1]} received`);
  t.is(m![1], m![2], "the established pair lost packets during the crash/restart");
});
