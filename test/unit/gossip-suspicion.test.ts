/**
 * Lifeguard arithmetic: suspicion timeouts (cluster-size growth, shrinking with confirmations),
 * the suspicion timer, local health awareness, and the retransmit-limited broadcast queue.
 */
import test from "ava";
import fc from "fast-check";
import { Awareness } from "../../lib/overlay/gossip/awareness.js";
import { BroadcastQueue, MAX_QUEUED, retransmitLimit } from "../../lib/overlay/gossip/broadcast-queue.js";
import { DEFAULTS, VirtualClock } from "../../lib/overlay/gossip/index.js";
import { Suspicion, suspicionBounds, suspicionTimeout } from "../../lib/overlay/gossip/suspicion.js";

const cfg = { suspicionMult: 4, suspicionMaxTimeoutMult: 6, probeInterval: 250 };

test("suspicion bounds: min = mult × max(1, log10 n) × interval, max = maxMult × min, k = mult − 2", (t) => {
  t.deepEqual(suspicionBounds(cfg, 1), { min: 1000, max: 6000, k: 0 }, "alone: nobody to confirm");
  t.deepEqual(suspicionBounds(cfg, 3), { min: 1000, max: 6000, k: 1 }, "3 nodes: one other can confirm");
  t.deepEqual(suspicionBounds(cfg, 10), { min: 1000, max: 6000, k: 2 });
  t.deepEqual(suspicionBounds(cfg, 100), { min: 2000, max: 12000, k: 2 });
  t.is(suspicionBounds(cfg, 50).min, Math.floor(4 * Math.log10(50) * 250));
});

test("suspicion timeout starts at max, reaches min at k confirmations, never below", (t) => {
  const b = suspicionBounds(cfg, 100);
  t.is(suspicionTimeout(b, 0), 12000);
  t.is(suspicionTimeout(b, 2), 2000);
  t.is(suspicionTimeout(b, 5), 2000);
  t.is(suspicionTimeout({ ...b, k: 0 }, 0), 2000, "k = 0: fixed at min");
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 10 }), (n, c) => {
      const bb = suspicionBounds(cfg, n);
      const now = suspicionTimeout(bb, c);
      t.true(now >= bb.min && now <= bb.max);
      t.true(suspicionTimeout(bb, c + 1) <= now, "monotone in confirmations");
      t.true(suspicionBounds(cfg, n + 1).min >= bb.min, "grows with cluster size");
    }),
  );
});

test("a suspicion fires at max alone, sooner with each new independent confirmation", async (t) => {
  const clock = new VirtualClock();
  const b = suspicionBounds(cfg, 100);
  let firedAt = -1;
  const start = clock.now();
  const s = new Suspicion(clock, b, "prober", () => {
    firedAt = clock.now() - start;
  });
  await clock.advance(1000);
  t.false(s.confirm("prober"), "the first suspecter is no confirmation");
  t.true(s.confirm("x"));
  t.false(s.confirm("x"), "the same confirmer counts once");
  t.is(s.confirmations, 1);
  await clock.advance(1000);
  t.true(s.confirm("y"));
  t.false(s.confirm("z"), "beyond k nothing changes");
  await clock.advance(1);
  t.is(firedAt, 2000, "timeout measured from the start: min reached at k, fires right away when past");
  t.is(clock.pending(), 0);

  let alone = -1;
  const t0 = clock.now();
  new Suspicion(clock, b, "prober", () => {
    alone = clock.now() - t0;
  });
  await clock.advance(20_000);
  t.is(alone, 12000);
});

test("cancel stops a suspicion timer", async (t) => {
  const clock = new VirtualClock();
  let fired = false;
  const s = new Suspicion(clock, suspicionBounds(cfg, 10), "p", () => {
    fired = true;
  });
  s.cancel();
  await clock.advance(60_000);
  t.false(fired);
});

test("awareness scales timeouts by health + 1 and stays within [0, max − 1]", (t) => {
  const a = new Awareness(8);
  t.is(a.scale(100), 100);
  a.apply(3);
  t.is(a.scale(100), 400);
  a.apply(100);
  t.is(a.health, 7);
  a.apply(-100);
  t.is(a.health, 0);
  const off = new Awareness(1);
  off.apply(5);
  t.is(off.scale(100), 100, "max 1 disables it");
});

test("retransmit limit = mult × ceil(log10(n + 1))", (t) => {
  t.is(retransmitLimit(6, 1), 6);
  t.is(retransmitLimit(6, 9), 6);
  t.is(retransmitLimit(6, 10), 12);
  t.is(retransmitLimit(6, 99), 12);
  t.is(retransmitLimit(6, 100), 18);
  t.is(retransmitLimit(DEFAULTS.retransmitMult, 50), 12);
});

const cost = (b: Uint8Array): number => b.length;
const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

test("broadcast queue: each broadcast is sent `limit` times, then retired with its callback", (t) => {
  const q = new BroadcastQueue(() => 3);
  let done = 0;
  q.enqueue("m/a", bytes(10), () => done++);
  for (let i = 0; i < 3; i++) t.is(q.take(100, cost).length, 1);
  t.is(q.take(100, cost).length, 0);
  t.is(done, 1);
  t.is(q.size, 0);
});

test("broadcast queue: a newer broadcast about the same subject replaces the old one", (t) => {
  const q = new BroadcastQueue(() => 3);
  let replaced = false;
  q.enqueue("m/a", bytes(10, 1), () => {
    replaced = true;
  });
  q.enqueue("m/a", bytes(10, 2));
  t.true(replaced);
  t.deepEqual(q.take(100, cost), [bytes(10, 2)]);
});

test("broadcast queue: least-sent first, newest first, within the byte budget", (t) => {
  const q = new BroadcastQueue(() => 10);
  q.enqueue("a", bytes(40, 1));
  q.take(100, cost); // a sent once
  q.enqueue("b", bytes(40, 2));
  q.enqueue("c", bytes(40, 3));
  t.deepEqual(q.take(100, cost), [bytes(40, 3), bytes(40, 2)], "c and b (0 sends) before a; budget fits two");
  q.take(45, cost); // all three sent once now; the newest (c) went first
  t.deepEqual(q.take(45, cost), [bytes(40, 2)], "then b: c has two sends, a and b one, b is newer");
  t.deepEqual(q.take(10, cost), [], "nothing fits");
});

test("broadcast queue: oversized broadcasts go to the TCP path; the queue is bounded", (t) => {
  const q = new BroadcastQueue(() => 2);
  q.enqueue("small", bytes(10));
  q.enqueue("big", bytes(5000));
  t.deepEqual(q.take(1400, cost), [bytes(10)]);
  t.deepEqual(q.takeOversized(1400, cost), [bytes(5000)]);
  const bounded = new BroadcastQueue(() => 2);
  for (let i = 0; i < MAX_QUEUED + 10; i++) bounded.enqueue(`k${i}`, bytes(1));
  t.is(bounded.size, MAX_QUEUED);
  t.true(bounded.has(`k${MAX_QUEUED + 9}`), "the newest are kept");
});
