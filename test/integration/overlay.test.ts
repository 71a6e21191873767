/**
 * Overlay networks on three lab hosts: one daemon per host joined by gossip, a network created on
 * one host appears on all, containers on different hosts ping and talk TCP over kernel VXLAN with
 * static FDB/neighbour entries only, addresses never collide, MTU leaves room for the VXLAN header.
 */
import test from "ava";
import { Lab, type LabDaemon, waitFor } from "../helpers/lab.js";
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
  // and every host has programmed the two others' endpoints before traffic is tested
  for (const d of daemons) {
    await waitFor(
      async () =>
        ((await d.api("GET", "/trellis/debug/overlay/ov1")).body as { Fdb: unknown[] }).Fdb.length === 2,
      { what: `${d.host.name} programmed both remote endpoints` },
    );
  }
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
  // a full-size TCP stream (16 MB) crosses without any IP fragmentation on either host
  const fragStats = async (ns: string) => {
    const snmp = (await lab.exec(ns, ["cat", "/proc/net/snmp"])).stdout
      .split("\n")
      .filter((l) => l.startsWith("Ip:"));
    const [names, values] = snmp.map((l) => l.trim().split(/\s+/));
    const get = (k: string) => Number(values![names!.indexOf(k)]);
    return get("FragCreates") + get("ReasmReqds");
  };
  const before = [await fragStats(hosts[0]!.ns), await fragStats(hosts[1]!.ns)];
  lab.spawnIn(cs[1]!, ["iperf3", "-s", "-1", "-p", "5201"]);
  await new Promise((r) => setTimeout(r, 300));
  const bulk = await lab.exec(cs[0]!, ["iperf3", "-c", ips[1]!, "-p", "5201", "-n", "16M", "-J"], {
    allowFail: true,
    timeoutMs: 30_000,
  });
  t.is(bulk.code, 0, bulk.stderr);
  const report = JSON.parse(bulk.stdout) as {
    start: { tcp_mss_default: number };
    end: { sum_sent: { bytes: number }; sum_received: { bytes: number } };
  };
  t.true(report.end.sum_sent.bytes >= 16 * 1024 * 1024, JSON.stringify(report.end.sum_sent));
  // (the server's byte count is sampled as the client finishes, so it is only checked to be substantial)
  t.true(report.end.sum_received.bytes > 8 * 1024 * 1024, JSON.stringify(report.end.sum_received));
  t.log(`16 MB over the overlay: MSS ${report.start.tcp_mss_default}`);
  t.true(report.start.tcp_mss_default <= 1450 - 40, "segments sized for the overlay MTU");
  t.deepEqual([await fragStats(hosts[0]!.ns), await fragStats(hosts[1]!.ns)], before, "no fragmentation");
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
});

test("two hosts that created the same overlay name apart converge on one network when they meet", async (t) => {
  // Two single-host clusters each create "twin" (the widest possible race), then join.
  const lab = await Lab.create(t);
  const h1 = await lab.addHost("h1");
  const h2 = await lab.addHost("h2");
  const opts = (h: { underlayIp: string }, name: string) => ({
    args: ["--advertise-addr", h.underlayIp, "--gossip-profile", "test", "--node-name", name],
  });
  const d1 = await lab.startDaemon(h1, opts(h1, "node1"));
  const d2 = await lab.startDaemon(h2, opts(h2, "node2"));
  await d1.cli(["network", "create", "-d", "overlay", "--subnet", "10.141.0.0/24", "twin"]);
  await d2.cli(["network", "create", "-d", "overlay", "--subnet", "10.142.0.0/24", "twin"]);
  const joined = await d2.cli(["cluster", "join", h1.underlayIp]);
  t.regex(joined.stdout, /joined: 1 of 1/);
  const twin = async (d: LabDaemon) => {
    const r = await d.api("GET", "/networks/twin");
    return r.status === 200
      ? (r.body as { Id: string; IPAM: { Config: Array<{ Subnet: string }> } })
      : undefined;
  };
  await waitFor(
    async () => {
      const [a, b] = [await twin(d1), await twin(d2)];
      return a !== undefined && a.Id === b?.Id;
    },
    { timeoutMs: 15_000, what: "one twin network on both hosts" },
  );
  const [a, b] = [await twin(d1), await twin(d2)];
  t.deepEqual(a?.IPAM.Config, b?.IPAM.Config, "same subnet too");
  for (const d of [d1, d2]) {
    const all = (await d.api("GET", "/networks")).body as Array<{ Name: string }>;
    t.is(all.filter((n) => n.Name === "twin").length, 1);
  }
  t.true(["10.141.0.0/24", "10.142.0.0/24"].includes(a!.IPAM.Config[0]!.Subnet));
});

test("the periodic audit repairs FDB and neighbour entries removed behind trellis's back", async (t) => {
  const { lab, hosts, daemons } = await cluster(t, 2, ["--overlay-audit-interval", "300"]);
  const [d1, d2] = daemons as [LabDaemon, LabDaemon];
  await d1.cli(["network", "create", "-d", "overlay", "--subnet", "10.143.0.0/24", "aud"]);
  await waitFor(async () => (await d2.api("GET", "/networks/aud")).status === 200, {
    what: "aud replicated",
  });
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d1.cli(["network", "connect", "aud", c1]);
  await d2.cli(["network", "connect", "aud", c2]);
  const ip2 = await overlayIp(d2, "aud", c2);
  type Debug = {
    Vxlan: string;
    Fdb: Array<{ mac: string }>;
    Neighbours: Array<{ address: string }>;
    AuditRepairs: number;
  };
  const debug = async () => (await d1.api("GET", "/trellis/debug/overlay/aud")).body as Debug;
  await waitFor(async () => (await debug()).Fdb.length === 1, { what: "h2's endpoint programmed on h1" });
  t.true(await ping(lab, c1, ip2));
  const before = await debug();
  await lab.exec(hosts[0]!.ns, ["bridge", "fdb", "del", before.Fdb[0]!.mac, "dev", before.Vxlan, "self"]);
  await lab.exec(hosts[0]!.ns, ["ip", "neigh", "del", before.Neighbours[0]!.address, "dev", before.Vxlan]);
  await waitFor(
    async () => {
      const d = await debug();
      return d.Fdb.length === 1 && d.Neighbours.length === 1 && d.AuditRepairs >= 2;
    },
    { timeoutMs: 10_000, what: "the audit put both entries back and counted them" },
  );
  t.true(await ping(lab, c1, ip2));
});
