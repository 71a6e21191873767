/**
 * Overlay networks on three lab hosts: one daemon per host joined by gossip, a network created on
 * one host appears on all, containers on different hosts ping and talk TCP over kernel VXLAN with
 * static FDB/neighbour entries only, addresses never collide, MTU leaves room for the VXLAN header.
 */
import test from "ava";
import { type LabDaemon, waitFor } from "../helpers/lab.js";
import { fetchMarker, inspect, links, ping, startServer } from "../helpers/net.js";
import { cluster, overlayIp } from "../helpers/overlay.js";

test("an overlay network spans three hosts: cross-host ping and TCP, no duplicate addresses", async (t) => {
  const { lab, hosts, daemons } = await cluster(t);
  const [d1, d2, d3] = daemons as [LabDaemon, LabDaemon, LabDaemon];
  const created = await d1.cli(["network", "create", "-d", "overlay", "--subnet", "10.140.0.0/24", "ov1"]);
  const id = created.stdout.trim();
  t.regex(id, /^[0-9a-f]{64}$/);
  // the same network (same id, subnet) everywhere
  for (const d of [d2, d3]) {
    await waitFor(async () => (await d.api("GET", "/networks/ov1")).status === 200, {
      what: "ov1 replicated",
    });
    const net = await inspect(d, "ov1");
    t.is(net.Id, id);
    t.is(net.Driver, "overlay");
  }
  const cs: string[] = [];
  for (const [i, d] of daemons.entries()) {
    const c = await lab.addContainer(`c${i + 1}`);
    await d.cli(["network", "connect", "ov1", c]);
    cs.push(c);
  }
  const ips = await Promise.all(cs.map((c, i) => overlayIp(daemons[i]!, "ov1", c)));
  t.is(new Set(ips).size, 3, `distinct addresses ${ips.join(" ")}`);
  // every host lists every endpoint, with its node
  await waitFor(async () => Object.keys((await inspect(d1, "ov1")).Containers).length === 3, {
    what: "all endpoints visible on h1",
  });
  const nodes = Object.values((await inspect(d1, "ov1")).Containers)
    .map((c) => (c as { Node?: string }).Node)
    .sort();
  t.deepEqual(nodes, ["node1", "node2", "node3"]);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      if (i !== j) t.true(await ping(lab, cs[i]!, ips[j]!), `${cs[i]} → ${ips[j]}`);
    }
  }
  // the embedded DNS of every host resolves endpoints of every host
  const resolve = async (from: string, name: string) => {
    const r = await lab.exec(from, ["dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", name], {
      allowFail: true,
    });
    return r.stdout.trim();
  };
  await waitFor(async () => (await resolve(cs[0]!, cs[2]!)) === ips[2], {
    what: "h1 resolves h3's container",
  });
  t.is(await resolve(cs[1]!, cs[0]!), ips[0]!);
  await startServer(lab, cs[2]!, 8000, "over-the-overlay");
  t.is(await fetchMarker(lab, cs[0]!, ips[2]!, 8000), "over-the-overlay");
  // MTU: underlay 1500 → overlay 1450 on the container's interface; DF-marked full-size packets pass
  t.is((await links(lab, cs[0]!)).find((l) => l.ifname === "eth0")?.mtu, 1450);
  const df = await lab.exec(cs[0]!, ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1422", ips[1]!], {
    allowFail: true,
  });
  t.is(df.code, 0, df.stdout + df.stderr);
  // disconnect on h3: its FDB/neighbour entries vanish on h1 and h2
  await d3.cli(["network", "disconnect", "ov1", cs[2]!]);
  await waitFor(
    async () => {
      const dbg = (await d1.api("GET", "/trellis/debug/overlay/ov1")).body as {
        Fdb: unknown[];
        Neighbours: unknown[];
      };
      return dbg.Fdb.length === 1 && dbg.Neighbours.length === 1;
    },
    { what: "h3's entries removed on h1" },
  );
  t.false(await ping(lab, cs[0]!, ips[2]!));
  t.is(await resolve(cs[0]!, cs[2]!), "", "a disconnected remote endpoint no longer resolves");
  t.true(await ping(lab, cs[0]!, ips[1]!));
  void hosts;
});
