/**
 * Protocol tests under faults, on the simulated network: partitions that heal, random datagram
 * loss, a node with the wrong key, and key rotation while the cluster runs.
 */
import test from "ava";
import { Keyring, type SimCluster as Sim, SimCluster } from "../../lib/overlay/gossip/index.js";

const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);
const addrs = (sim: Sim, from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => sim.address(from + i));

test("a partition heals: both sides rejoin, entries written on either side reach all, digests equal", async (t) => {
  const sim = new SimCluster({ n: 10, seed: 21 });
  await sim.startAll();
  sim.nodes[0]!.table.set("eps", "before", 0);
  await sim.clock.runUntil(() => sim.visibleEverywhere("eps", "before"), 5_000);
  sim.net.partition(addrs(sim, 0, 6), addrs(sim, 6, 10));
  await sim.clock.advance(500);
  sim.nodes[1]!.table.set("eps", "left-side", 1);
  sim.nodes[8]!.table.set("eps", "right-side", 2);
  sim.nodes[9]!.table.delete("eps", "before");
  const split = await sim.clock.runUntil(
    () => sim.nodes[0]!.members().filter((m) => m.state === "dead").length === 4,
    20_000,
  );
  t.true(split >= 0, "each side declares the other dead");
  t.true(sim.nodes[0]!.table.get("eps", "right-side") === undefined);
  t.true(sim.nodes[7]!.table.get("eps", "left-side") === undefined);

  sim.net.heal();
  const healed = await sim.clock.runUntil(
    () => sim.allSeeAllAlive() && sim.tablesConverged() && sim.visibleEverywhere("eps", "left-side"),
    60_000,
  );
  t.log(`partition healed, all alive and tables converged after ${healed} ms`);
  t.true(healed >= 0);
  t.true(sim.visibleEverywhere("eps", "right-side"));
  t.true(sim.goneEverywhere("eps", "before"), "the delete made on one side wins on the other");
  await sim.stopAll();
});

test("a single isolated node is declared dead, then heals: alive again and its entries visible again", async (t) => {
  const sim = new SimCluster({ n: 8, seed: 22 });
  await sim.startAll();
  const lonely = sim.nodes[3]!;
  lonely.table.set("eps", "mine", "x");
  await sim.clock.runUntil(() => sim.visibleEverywhere("eps", "mine"), 5_000);
  sim.net.partition([sim.address(3)]);
  await sim.clock.runUntil(() => sim.seenAs(lonely.name, "dead"), 20_000);
  t.true(sim.nodes[0]!.table.get("eps", "mine")?.deleted, "hidden while its owner is dead");
  sim.net.heal();
  const back = await sim.clock.runUntil(
    () => sim.seenAs(lonely.name, "alive") && sim.visibleEverywhere("eps", "mine"),
    30_000,
  );
  t.true(back >= 0, `back after ${back} ms (reconnect by push-pull to a dead member)`);
  t.true((await sim.clock.runUntil(() => sim.tablesConverged(), 30_000)) >= 0);
  await sim.stopAll();
});

for (const [n, loss] of [
  [40, 0.1],
  [30, 0.2],
] as const) {
  test(`${loss * 100} % random datagram loss, N=${n}, 60 s: no false death, entries still propagate`, async (t) => {
    const sim = new SimCluster({ n, seed: 23, loss });
    await sim.startAll();
    await sim.clock.advance(2_000);
    let worst = 0;
    for (let i = 0; i < 5; i++) {
      sim.nodes[(i * 7) % n]!.table.set("eps", `k${i}`, i);
      const took = await sim.clock.runUntil(() => sim.visibleEverywhere("eps", `k${i}`), 10_000);
      worst = Math.max(worst, took < 0 ? Number.POSITIVE_INFINITY : took);
    }
    await sim.clock.advance(60_000);
    const suspicions = sim.nodes.reduce((s, node) => s + node.stats().suspicionsRaised, 0);
    t.log(`worst propagation ${worst} ms; ${suspicions} suspicions raised, all refuted`);
    t.deepEqual(sim.falseDeaths, []);
    t.true(sim.noneDeclaredDown());
    t.true(worst <= 2_000);
    await sim.stopAll();
  });
}

test("a node with the wrong key never joins; its packets are dropped and counted", async (t) => {
  const sim = new SimCluster({ n: 5, seed: 24, keyring: (i) => new Keyring([key(i === 4 ? 9 : 1)]) });
  for (const node of sim.nodes) await sim.drive(node.start());
  for (let i = 1; i < 4; i++) await sim.drive(sim.nodes[i]!.join([sim.address(0)]));
  const intruder = sim.nodes[4]!;
  await t.throwsAsync(sim.drive(intruder.join([sim.address(0), sim.address(1)])), {
    message: /reached none/,
  });
  await sim.clock.advance(5_000);
  t.true(
    sim.nodes
      .slice(0, 4)
      .every((n) => n.members().length === 4 && !n.members().some((m) => m.name === intruder.name)),
  );
  t.is(intruder.members().length, 1);
  const dropped = sim.nodes.slice(0, 2).reduce((s, n) => s + n.stats().droppedUnauthenticated, 0);
  t.true(dropped >= 2, `${dropped} unauthenticated frames dropped`);
  t.true(sim.nodes.slice(0, 4).every((n) => n.members().every((m) => m.state === "alive")));
  await sim.stopAll();
});

test("a plaintext node cannot talk to an encrypted cluster, nor the reverse", async (t) => {
  const sim = new SimCluster({
    n: 3,
    seed: 25,
    keyring: (i) => (i === 2 ? undefined : new Keyring([key(1)])),
  });
  for (const node of sim.nodes) await sim.drive(node.start());
  await sim.drive(sim.nodes[1]!.join([sim.address(0)]));
  await t.throwsAsync(sim.drive(sim.nodes[2]!.join([sim.address(0)])));
  t.true(sim.nodes[0]!.stats().droppedUnauthenticated > 0, "the keyed seed drops the plaintext request");
  await t.throwsAsync(sim.drive(sim.nodes[1]!.join([sim.address(2)])));
  t.true(sim.nodes[2]!.stats().droppedUnauthenticated > 0, "the plaintext node drops an encrypted request");
  await sim.stopAll();
});

test("key rotation mid-run (add, use, remove on every node) keeps the cluster healthy", async (t) => {
  const sim = new SimCluster({ n: 12, seed: 26, keyring: () => new Keyring([key(1)]) });
  await sim.startAll();
  await sim.converge(10_000);
  const step = async (fn: (ring: Keyring) => void) => {
    // Node by node, with protocol time in between, as an operator's fan-out would do it.
    for (const node of sim.nodes) {
      fn(node.keyring!);
      await sim.clock.advance(97);
    }
    await sim.clock.advance(2_000);
  };
  await step((r) => r.add(key(2)));
  sim.nodes[0]!.table.set("eps", "during", 1);
  await step((r) => r.use(key(2)));
  await step((r) => r.remove(key(1)));
  sim.nodes[5]!.table.set("eps", "after", 2);
  const took = await sim.clock.runUntil(
    () => sim.visibleEverywhere("eps", "during") && sim.visibleEverywhere("eps", "after"),
    5_000,
  );
  t.true(took >= 0);
  await sim.clock.advance(10_000);
  t.deepEqual(sim.falseDeaths, []);
  t.true(sim.allSeeAllAlive());
  t.is(
    sim.nodes.reduce((s, n) => s + n.stats().droppedUnauthenticated, 0),
    0,
    "no packet was ever undecryptable",
  );
  // The old key alone is now locked out.
  const stale = sim.makeNode(12, new Keyring([key(1)]));
  sim.stopped.add(stale.name);
  await sim.drive(stale.start());
  await t.throwsAsync(sim.drive(stale.join([sim.address(0)])));
  await stale.stop();
  await sim.stopAll();
});

test("the simulation is deterministic for a seed", async (t) => {
  const run = async () => {
    const sim = new SimCluster({ n: 15, seed: 27, loss: 0.05 });
    await sim.startAll();
    sim.nodes[3]!.table.set("eps", "k", 1);
    await sim.clock.advance(5_000);
    await sim.kill(4);
    await sim.clock.advance(5_000);
    const fingerprint = sim.nodes.map(
      (n) =>
        `${n.table.digest()} ${n.stats().packetsSent} ${n
          .members()
          .map((m) => m.state)
          .join("")}`,
    );
    await sim.stopAll();
    return fingerprint;
  };
  t.deepEqual(await run(), await run());
});
