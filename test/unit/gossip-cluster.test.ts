/**
 * Whole-cluster protocol tests on the in-memory network with a virtual clock: deterministic for
 * their seeds, no sockets, minutes of protocol time in a second or two of real time. Default
 * (LAN) configuration unless a test says otherwise, so the timings asserted are the real ones.
 */
import test from "ava";
import { Keyring, SimCluster, type TableEntry } from "../../lib/overlay/gossip/index.js";

for (const n of [10, 50, 100]) {
  test(`N=${n}: nodes join, converge, and an entry set on one node reaches all within 1 s`, async (t) => {
    const sim = new SimCluster({ n, seed: n });
    await sim.startAll();
    const converged = await sim.converge(10_000);
    t.true(converged >= 0, "every node sees every node alive");
    t.true(sim.nodes.every((node) => node.members().length === n));
    const src = sim.nodes[n - 1]!;
    src.table.set("endpoints/net1", "ep1", { ip: "10.1.0.2", mac: "02:42:0a:01:00:02", vtep: "192.168.0.9" });
    const took = await sim.clock.runUntil(
      () => sim.visibleEverywhere("endpoints/net1", "ep1", src.name),
      10_000,
    );
    t.log(`N=${n}: converged ${converged} ms after the last join; entry everywhere after ${took} ms`);
    t.true(took >= 0 && took <= 1000, `propagation ${took} ms`);
    t.deepEqual(sim.nodes[0]!.table.get("endpoints/net1", "ep1")?.value, {
      ip: "10.1.0.2",
      mac: "02:42:0a:01:00:02",
      vtep: "192.168.0.9",
    });
    t.true(sim.tablesConverged());
    t.deepEqual(sim.falseDeaths, []);
    await sim.stopAll();
    await sim.clock.advance(60_000); // in-flight datagrams and connects land on closed nodes
    t.is(sim.clock.pending(), 0, "nothing reschedules after stop: no timer left behind");
  });
}

test("a crashed node is declared dead everywhere within 5 s, its entries removed with one event each", async (t) => {
  const sim = new SimCluster({ n: 20, seed: 2 });
  await sim.startAll();
  const victim = sim.nodes[7]!;
  victim.table.set("eps", "a", 1);
  victim.table.set("eps", "b", 2);
  await sim.clock.runUntil(() => sim.visibleEverywhere("eps", "b"), 5_000);
  const removals = new Map<string, TableEntry[]>();
  for (const node of sim.nodes) {
    node.table.on("change", (ev) => {
      if (ev.deleted) removals.set(node.name, [...(removals.get(node.name) ?? []), ev]);
    });
  }
  await sim.kill(7);
  const took = await sim.clock.runUntil(
    () => sim.seenAs(victim.name, "dead") && sim.goneEverywhere("eps", "a") && sim.goneEverywhere("eps", "b"),
    10_000,
  );
  t.log(`dead everywhere and entries removed after ${took} ms`);
  t.true(took >= 0 && took <= 5000);
  for (const node of sim.running()) {
    t.deepEqual(
      removals
        .get(node.name)
        ?.map((e) => e.key)
        .sort(),
      ["a", "b"],
      `${node.name}: one removal event per entry`,
    );
  }
  await sim.clock.advance(10_000);
  t.true(sim.seenAs(victim.name, "dead"), "stays dead");
  t.deepEqual(sim.falseDeaths, []);
  await sim.stopAll();
});

test("graceful leave: peers see 'left', not 'dead', quickly, and drop its entries", async (t) => {
  const sim = new SimCluster({ n: 10, seed: 3 });
  await sim.startAll();
  const leaver = sim.nodes[4]!;
  leaver.table.set("eps", "x", "y");
  await sim.clock.runUntil(() => sim.visibleEverywhere("eps", "x"), 5_000);
  sim.stopped.add(leaver.name);
  await sim.drive(leaver.leave(1_000));
  const took = await sim.clock.runUntil(
    () => sim.seenAs(leaver.name, "left") && sim.goneEverywhere("eps", "x"),
    5_000,
  );
  t.true(took >= 0 && took < 1000, `left everywhere after ${took} ms`);
  await sim.clock.advance(15_000);
  t.true(sim.seenAs(leaver.name, "left"), "never turned into dead");
  t.deepEqual(sim.falseDeaths, []);
  await sim.stopAll();
});

test("a restarted node (fresh process, same name) refutes its death, comes back alive, its new entries win", async (t) => {
  const sim = new SimCluster({ n: 10, seed: 4 });
  await sim.startAll();
  sim.nodes[5]!.table.set("eps", "e1", "before");
  await sim.clock.runUntil(() => sim.visibleEverywhere("eps", "e1"), 5_000);
  await sim.kill(5);
  await sim.clock.runUntil(() => sim.seenAs("node-005", "dead"), 10_000);
  const incarnationWhenDead = sim.nodes[0]!.members().find((m) => m.name === "node-005")!.incarnation;
  const reborn = await sim.restart(5);
  t.is(reborn.table.get("eps", "e1")?.value, "before", "adopts what the cluster kept for it");
  reborn.table.set("eps", "e1", "after");
  const took = await sim.clock.runUntil(
    () =>
      sim.seenAs("node-005", "alive") &&
      sim.running().every((n) => n.table.get("eps", "e1")?.value === "after"),
    10_000,
  );
  t.true(took >= 0, "alive again everywhere with the new value");
  t.true(sim.nodes[0]!.members().find((m) => m.name === "node-005")!.incarnation > incarnationWhenDead);
  t.true(sim.tablesConverged());
  await sim.stopAll();
});

test("a node restarted within the detection window is never declared dead and keeps its entries visible", async (t) => {
  const sim = new SimCluster({ n: 10, seed: 5 });
  await sim.startAll();
  sim.nodes[2]!.table.set("eps", "e", "v");
  await sim.clock.runUntil(() => sim.visibleEverywhere("eps", "e"), 5_000);
  sim.stopped.add("node-002"); // its own restart; any "dead" about it is still recorded below
  let deaths = 0;
  for (const node of sim.nodes)
    node.on("member", (m) => m.name === "node-002" && m.state === "dead" && deaths++);
  const reborn = await sim.restart(2);
  await sim.clock.advance(10_000);
  t.is(deaths, 0);
  t.true(sim.seenAs("node-002", "alive"));
  t.true(sim.visibleEverywhere("eps", "e"), "no data-plane outage for its endpoint");
  t.is(reborn.table.get("eps", "e")?.value, "v");
  await sim.stopAll();
});

test("a node that missed every broadcast still converges by anti-entropy (digests equal)", async (t) => {
  // retransmitMult 0: nothing is gossiped over UDP, only push-pull carries entries.
  const sim = new SimCluster({ n: 8, seed: 6, tunables: { retransmitMult: 0, pushPullInterval: 2_000 } });
  await sim.startAll();
  sim.nodes[1]!.table.set("eps", "a", 1);
  sim.nodes[6]!.table.set("eps", "b", 2);
  sim.nodes[3]!.table.set("eps", "c", 3);
  sim.nodes[3]!.table.delete("eps", "c");
  const took = await sim.clock.runUntil(
    () => sim.tablesConverged() && sim.visibleEverywhere("eps", "a") && sim.visibleEverywhere("eps", "b"),
    60_000,
  );
  t.true(took >= 0, `converged by push-pull alone after ${took} ms`);
  t.true(sim.goneEverywhere("eps", "c"));
  await sim.stopAll();
});

test("dead members and tombstones are reaped after their grace periods", async (t) => {
  const sim = new SimCluster({
    n: 6,
    seed: 7,
    tunables: { deadNodeReclaimMs: 5_000, tombstoneGraceMs: 3_000 },
  });
  await sim.startAll();
  sim.nodes[1]!.table.set("eps", "gone", 1);
  sim.nodes[2]!.table.set("eps", "deleted", 1);
  await sim.clock.runUntil(
    () => sim.visibleEverywhere("eps", "gone") && sim.visibleEverywhere("eps", "deleted"),
    5_000,
  );
  sim.nodes[2]!.table.delete("eps", "deleted");
  await sim.kill(1);
  await sim.clock.runUntil(() => sim.seenAs("node-001", "dead"), 10_000);
  t.true(
    sim.running().every((n) => n.table.get("eps", "gone")?.deleted === true),
    "hidden while listed dead",
  );
  const took = await sim.clock.runUntil(
    () => sim.running().every((n) => !n.members().some((m) => m.name === "node-001") && n.table.size === 0),
    20_000,
  );
  t.true(took >= 0, "member, its entries and the tombstone all reaped");
  await sim.stopAll();
});

test("values larger than a datagram travel over TCP; no datagram ever exceeds udpBufferSize", async (t) => {
  const sim = new SimCluster({ n: 12, seed: 8, keyring: () => new Keyring([new Uint8Array(32).fill(3)]) });
  await sim.startAll();
  const blob = new Uint8Array(20_000).map((_, i) => i % 251);
  sim.nodes[3]!.table.set("blobs", "big", blob);
  const took = await sim.clock.runUntil(() => sim.visibleEverywhere("blobs", "big"), 5_000);
  t.true(took >= 0 && took < 2_000, `big entry everywhere after ${took} ms`);
  t.deepEqual(sim.nodes[9]!.table.get("blobs", "big")?.value, blob);
  // Many small updates at once: compound datagrams fill up to the limit, never beyond.
  for (let i = 0; i < 300; i++) sim.nodes[i % 12]!.table.set("many", `k${i}`, { i, pad: "x".repeat(40) });
  t.true((await sim.clock.runUntil(() => sim.visibleEverywhere("many", "k299"), 10_000)) >= 0);
  t.log(`largest datagram: ${sim.net.counters.largestPacket} bytes (encrypted)`);
  t.true(sim.net.counters.largestPacket <= 1400);
  t.true(sim.net.counters.largestPacket > 1000, "datagrams are packed, not one message each");
  await sim.clock.runUntil(() => sim.tablesConverged(), 30_000);
  t.true(sim.tablesConverged());
  await sim.stopAll();
});

test("join reports how many seeds answered and fails when none did", async (t) => {
  const sim = new SimCluster({ n: 3, seed: 9 });
  for (const node of sim.nodes) await sim.drive(node.start());
  t.is(await sim.drive(sim.nodes[1]!.join([sim.address(0), "10.9.9.9:7946"])), 1);
  await t.throwsAsync(sim.drive(sim.nodes[2]!.join(["10.9.9.9:7946"])), {
    message: /reached none of 1 seeds/,
  });
  await sim.stopAll();
});
