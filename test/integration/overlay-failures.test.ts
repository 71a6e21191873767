/**
 * Overlay under failure: a host's daemon killed (its endpoints leave everyone's FDB after failure
 * detection, and come back when it restarts), a quick restart (no cross-host loss), a partition
 * (both sides keep allocating from their own blocks: no duplicate address after healing), and a
 * member with the wrong gossip key (rejected).
 */

import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import test from "ava";
import type { LabDaemon } from "../helpers/lab.js";
import { waitFor } from "../helpers/lab.js";
import { inspect, ping } from "../helpers/net.js";
import { cluster, overlayIp } from "../helpers/overlay.js";

interface Debug {
  Fdb: Array<{ mac: string; dst: string }>;
  Neighbours: Array<{ address: string; mac: string }>;
  Table: Array<{ node: string }>;
}

const debug = async (d: LabDaemon, net: string) =>
  (await d.api("GET", `/trellis/debug/overlay/${net}`)).body as Debug;

async function setup(t: Parameters<typeof cluster>[0], extra: string[] = []) {
  const c = await cluster(t, 3, extra);
  const [d1] = c.daemons as [LabDaemon, LabDaemon, LabDaemon];
  await d1.cli(["network", "create", "-d", "overlay", "--subnet", "10.150.0.0/24", "ovf"]);
  const cs: string[] = [];
  for (const [i, d] of c.daemons.entries()) {
    await waitFor(async () => (await d.api("GET", "/networks/ovf")).status === 200, {
      what: "ovf replicated",
    });
    const ctr = await c.lab.addContainer(`c${i + 1}`);
    await d.cli(["network", "connect", "ovf", ctr]);
    cs.push(ctr);
  }
  const ips = await Promise.all(cs.map((ctr, i) => overlayIp(c.daemons[i]!, "ovf", ctr)));
  await waitFor(async () => (await debug(d1, "ovf")).Fdb.length === 2, { what: "h1 programmed 2 remotes" });
  return { ...c, cs, ips };
}

test("kill -9 of a host's daemon: its endpoints leave the others' FDB; after restart they come back", async (t) => {
  const { lab, daemons, cs, ips } = await setup(t);
  const [d1, d2, d3] = daemons as [LabDaemon, LabDaemon, LabDaemon];
  t.true(await ping(lab, cs[0]!, ips[2]!));
  await d3.kill("SIGKILL");
  await waitFor(
    async () => (await debug(d1, "ovf")).Fdb.length === 1 && (await debug(d2, "ovf")).Fdb.length === 1,
    {
      timeoutMs: 20_000,
      what: "h3's endpoint removed on h1 and h2 after failure detection",
    },
  );
  t.false(
    (await debug(d1, "ovf")).Table.some((e) => e.node === "node3"),
    "node3's entries are gone from the table view",
  );
  await d3.restart();
  await waitFor(async () => (await debug(d1, "ovf")).Fdb.length === 2, {
    timeoutMs: 20_000,
    what: "h3 re-announced its endpoint after restart",
  });
  t.true(await ping(lab, cs[0]!, ips[2]!));
});

test("a daemon restarted within the failure-detection window: no cross-host packet lost", async (t) => {
  const { lab, daemons, cs, ips } = await setup(t);
  const d2 = daemons[1]!;
  const pinger = lab.spawnIn(cs[0]!, ["ping", "-n", "-i", "0.05", ips[1]!]);
  await new Promise((r) => setTimeout(r, 300));
  await d2.restart(); // SIGTERM, then start again with the same state
  await new Promise((r) => setTimeout(r, 1500));
  pinger.kill("SIGINT");
  await new Promise((r) => pinger.once("exit", r));
  const m = /(\d+) packets transmitted, (\d+) received/.exec(lab.output(pinger));
  t.truthy(m, lab.output(pinger));
  t.log(`h1→h2 during h2's daemon restart: ${m![2]}/${m![1]} received`);
  if (m![2] !== m![1])
    t.log(
      d2
        .logs()
        .split("\n")
        .filter((l) => /overlay|vxlan|reconcil|fdb|stray/i.test(l))
        .join("\n"),
    );
  t.is(m![2], m![1]);
  t.is((await debug(daemons[0]!, "ovf")).Fdb.length, 2, "h2's entries never left h1");
});

test("partition then heal: both sides keep allocating from their own blocks, no duplicate address", async (t) => {
  const { lab, hosts, daemons, cs } = await setup(t);
  const [d1, , d3] = daemons as [LabDaemon, LabDaemon, LabDaemon];
  const cut = `table inet trpart {
  chain in { type filter hook input priority -300; policy accept; iifname "eth0" drop; }
  chain out { type filter hook output priority -300; policy accept; oifname "eth0" drop; }
}
`;
  await lab.exec(hosts[2]!.ns, ["nft", "-f", "-"], { input: cut });
  await waitFor(async () => (await debug(d1, "ovf")).Fdb.length === 1, {
    timeoutMs: 20_000,
    what: "the majority side dropped h3",
  });
  // both sides attach more containers while partitioned
  const more: Array<[LabDaemon, string]> = [];
  for (const [d, name] of [
    [d1, "p1"],
    [d1, "p2"],
    [d3, "p3"],
    [d3, "p4"],
  ] as const) {
    const c = await lab.addContainer(name);
    await d.cli(["network", "connect", "ovf", c]);
    more.push([d, c]);
  }
  await lab.exec(hosts[2]!.ns, ["nft", "delete", "table", "inet", "trpart"]);
  await waitFor(
    async () => {
      const views = await Promise.all(daemons.map((d: LabDaemon) => inspect(d, "ovf")));
      return views.every((v) => Object.keys(v.Containers).length === 7);
    },
    { timeoutMs: 20_000, what: "all 7 endpoints visible everywhere after healing" },
  );
  const all = Object.values((await inspect(d1, "ovf")).Containers).map((c) => c.IPv4Address);
  t.is(new Set(all).size, 7, `addresses after the partition: ${all.join(" ")}`);
  const p3ip = await overlayIp(d3, "ovf", more[2]![1]);
  // the data plane follows the table within a moment (both hosts program each other's new entries)
  const reaches = async (from: string, ip: string) =>
    waitFor(() => ping(lab, from, ip), { timeoutMs: 10_000, what: `${from} reaches ${ip}` }).then(
      () => true,
      () => false,
    );
  t.true(await reaches(more[0]![1], p3ip), "a container attached on each side reaches the other");
  t.true(await reaches(cs[0]!, p3ip));
});

test("a node with the wrong gossip key is rejected; the keyed cluster works", async (t) => {
  const dir = `/tmp/trellis-keys-${randomBytes(3).toString("hex")}`;
  const { mkdirSync, rmSync } = await import("node:fs");
  mkdirSync(dir, { recursive: true });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/good`, randomBytes(32).toString("base64"));
  writeFileSync(`${dir}/bad`, randomBytes(32).toString("base64"));
  const { lab, hosts, daemons } = await cluster(t, 2, ["--gossip-key", `${dir}/good`]);
  const intruderHost = await lab.addHost("h9");
  const intruder = await lab.startDaemon(intruderHost, {
    args: [
      "--advertise-addr",
      intruderHost.underlayIp,
      "--gossip-profile",
      "test",
      "--node-name",
      "intruder",
      "--gossip-key",
      `${dir}/bad`,
      "--join",
      hosts[0]!.underlayIp,
    ],
  });
  await new Promise((r) => setTimeout(r, 2000));
  const seen = (await daemons[0]!.api("GET", "/trellis/nodes")).body as Array<{ Name: string }>;
  t.deepEqual(seen.map((n) => n.Name).sort(), ["node1", "node2"]);
  const theirs = (await intruder.api("GET", "/trellis/nodes")).body as Array<{ Name: string }>;
  t.deepEqual(
    theirs.map((n) => n.Name),
    ["intruder"],
  );
});

test("20 % random packet loss on the underlay: no member is declared dead", async (t) => {
  const { lab, hosts, daemons } = await cluster(t, 3);
  const loss = `table inet trloss {
  chain in { type filter hook input priority -300; policy accept; iifname "eth0" numgen random mod 100 < 20 drop; }
}
`;
  for (const h of hosts) await lab.exec(h.ns, ["nft", "-f", "-"], { input: loss });
  const states = new Set<string>();
  const until = Date.now() + 8000;
  while (Date.now() < until) {
    for (const d of daemons) {
      for (const n of (await d.api("GET", "/trellis/nodes")).body as Array<{ State: string }>)
        states.add(n.State);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const h of hosts) await lab.exec(h.ns, ["nft", "delete", "table", "inet", "trloss"]);
  t.log(`member states seen under 20 % loss: ${[...states].join(", ")}`);
  t.false(states.has("dead"), "a member was declared dead under 20 % loss");
});
