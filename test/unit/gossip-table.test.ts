/**
 * The replicated table on its own: last-writer-wins, tombstones and their reaping, hidden entries
 * of dead owners, owner authority, change events exactly once per effective change, and the
 * central property: any delivery order (with duplicates) of the same versions gives the same table.
 */
import test from "ava";
import fc from "fast-check";
import { decodeValue, encodeValue } from "../../lib/overlay/gossip/codec.js";
import { silentLogger, VirtualClock } from "../../lib/overlay/gossip/index.js";
import type { WireRecord } from "../../lib/overlay/gossip/messages.js";
import {
  ReplicatedTable,
  supersedes,
  type TableEntry,
  type TableHost,
} from "../../lib/overlay/gossip/table.js";

interface Harness {
  table: ReplicatedTable;
  clock: VirtualClock;
  live: Set<string>;
  known: Set<string>;
  events: TableEntry[];
  sent: WireRecord[];
}

function harness(self = "A", live: string[] = ["A", "B", "C"], extra: Partial<TableHost> = {}): Harness {
  const clock = new VirtualClock();
  const h = {
    clock,
    live: new Set(live),
    known: new Set(live),
    events: [] as TableEntry[],
    sent: [] as WireRecord[],
  };
  const table = new ReplicatedTable({
    self,
    clock,
    log: silentLogger(),
    maxValueBytes: 1024,
    tombstoneGraceMs: 1000,
    isOwnerLive: (o) => o === self || h.live.has(o),
    isOwnerKnown: (o) => h.known.has(o),
    broadcast: (r) => h.sent.push(r),
    ...extra,
  });
  table.on("change", (ev) => h.events.push(ev));
  return { ...h, table };
}

function rec(owner: string, lamport: number, value: unknown, key = "k", keyspace = "ks"): WireRecord {
  const deleted = value === undefined;
  const valueBytes = deleted ? new Uint8Array(0) : encodeValue(value as Uint8Array);
  return {
    keyspace,
    key,
    owner,
    lamport,
    deleted,
    valueBytes,
    value: deleted ? undefined : decodeValue(valueBytes),
  };
}

test("set: owner is this node, Lamport ticks, event fires, version is broadcast", (t) => {
  const h = harness();
  const a = h.table.set("ks", "k", { ip: "10.0.0.2" });
  const b = h.table.set("ks", "k2", new Uint8Array([1, 2]));
  t.is(a.owner, "A");
  t.true(b.lamport > a.lamport);
  t.deepEqual(h.table.get("ks", "k")?.value, { ip: "10.0.0.2" });
  t.deepEqual(h.table.get("ks", "k2")?.value, new Uint8Array([1, 2]));
  t.is(h.events.length, 2);
  t.is(h.sent.length, 2);
});

test("set refuses bad keys and oversize or non-JSON values", (t) => {
  const h = harness();
  t.throws(() => h.table.set("", "k", 1), { message: /keyspace/ });
  t.throws(() => h.table.set("ks", "x".repeat(2000), 1), { message: /key/ });
  t.throws(() => h.table.set("ks", "k", "x".repeat(2000)), { message: /max 1024/ });
  t.throws(() => h.table.set("ks", "k", 10n as unknown as number), { message: /JSON/ });
  t.is(h.table.size, 0);
});

test("last writer wins by lamport, then owner name; stale versions change nothing", (t) => {
  const h = harness();
  t.true(h.table.merge(rec("B", 5, "b5")));
  t.false(h.table.merge(rec("C", 4, "c4")), "older lamport loses");
  t.true(h.table.merge(rec("C", 5, "c5")), "same lamport, higher owner name wins");
  t.false(h.table.merge(rec("B", 5, "b5")), "the loser again: no-op");
  t.false(h.table.merge(rec("C", 5, "c5")), "duplicate: no-op");
  t.is(h.table.get("ks", "k")?.value, "c5");
  t.deepEqual(
    h.events.map((e) => e.value),
    ["b5", "c5"],
  );
});

test("the version order is total: ties on lamport and owner break on deleted, then value bytes", (t) => {
  t.true(supersedes(rec("B", 5, undefined), rec("B", 5, "x")));
  t.false(supersedes(rec("B", 5, "x"), rec("B", 5, undefined)));
  t.true(supersedes(rec("B", 5, "y"), rec("B", 5, "x")) !== supersedes(rec("B", 5, "x"), rec("B", 5, "y")));
});

test("the Lamport clock jumps past every version seen, so the next local write wins", (t) => {
  const h = harness();
  h.table.merge(rec("B", h.table.lamport + 1000, "remote"));
  const mine = h.table.set("ks", "k", "local");
  t.true(mine.lamport > h.table.lamport - 1);
  t.is(h.table.get("ks", "k")?.value, "local");
});

test("delete writes a tombstone that wins, fires one deleted event, and is reaped after the grace", async (t) => {
  const h = harness();
  h.table.merge(rec("B", 3, "v"));
  t.true(h.table.delete("ks", "k"));
  t.false(h.table.delete("ks", "k"), "already deleted");
  t.false(h.table.delete("ks", "nope"));
  const e = h.table.get("ks", "k");
  t.like(e, { deleted: true, owner: "A", value: undefined });
  t.false(h.table.merge(rec("B", 3, "v")), "the old live version cannot resurrect it");
  t.deepEqual(
    h.events.map((x) => x.deleted),
    [false, true],
  );
  await h.clock.advance(999);
  t.is(h.table.reap(), 0);
  await h.clock.advance(1);
  t.is(h.table.reap(), 1);
  t.is(h.table.get("ks", "k"), undefined);
  t.is(h.events.length, 2, "reaping a tombstone is no visible change");
});

test("a dead owner's entries read as deleted with one event each, and come back with it", (t) => {
  const h = harness();
  h.table.merge(rec("B", 1, "b1", "k1"));
  h.table.merge(rec("B", 2, "b2", "k2"));
  h.table.merge(rec("C", 3, "c3", "k3"));
  const digest = h.table.digest();
  h.events.length = 0;
  h.live.delete("B");
  h.table.ownerChanged("B", true);
  t.deepEqual(
    h.events.map((e) => [e.key, e.deleted]),
    [
      ["k1", true],
      ["k2", true],
    ],
  );
  t.like(h.table.get("ks", "k1"), { deleted: true, value: undefined, owner: "B" });
  t.is(
    h.table.digest(),
    digest,
    "hiding rewrites nothing: digests still agree with nodes that disagree on liveness",
  );
  h.table.ownerChanged("B", false); // no-op: no change of liveness
  t.is(h.events.length, 2);
  h.live.add("B");
  h.table.ownerChanged("B", false);
  t.deepEqual(h.table.get("ks", "k2")?.value, "b2");
  t.is(h.events.length, 4);
});

test("purgeOwner drops a reaped member's versions; unknown owners are purged after the grace", async (t) => {
  const h = harness();
  h.table.merge(rec("B", 1, "b", "k1"));
  h.table.merge(rec("Z", 2, "z", "k2")); // owner nobody knows (yet): hidden, no event
  t.is(h.events.length, 1);
  t.true(h.table.get("ks", "k2")?.deleted);
  h.live.delete("B");
  h.known.delete("B");
  h.table.ownerChanged("B", true);
  h.table.purgeOwner("B");
  t.is(h.table.get("ks", "k1"), undefined);
  await h.clock.advance(1000);
  t.is(h.table.reap(), 1);
  t.is(h.table.size, 0);
});

test("the owner re-asserts what it wrote when a newer version claims to be its own", (t) => {
  const h = harness();
  const mine = h.table.set("ks", "k", "current");
  h.sent.length = 0;
  t.false(h.table.merge(rec("A", mine.lamport + 50, "from a previous life")));
  const now = h.table.get("ks", "k");
  t.is(now?.value, "current");
  t.true((now?.lamport ?? 0) > mine.lamport + 50);
  t.is(h.sent.length, 1, "re-asserted version broadcast");
});

test("a restarted owner adopts the versions the cluster holds for it", (t) => {
  const h = harness();
  t.true(h.table.merge(rec("A", 5, "kept by peers")));
  t.is(h.table.get("ks", "k")?.value, "kept by peers");
  t.is(h.sent.length, 0);
});

test("entries() lists a keyspace by key, tombstones included; keyspaces() lists them all", (t) => {
  const h = harness();
  h.table.set("b", "z", 1);
  h.table.set("b", "a", 2);
  h.table.set("a", "x", 3);
  h.table.delete("b", "z");
  t.deepEqual(
    h.table.entries("b").map((e) => [e.key, e.deleted]),
    [
      ["a", false],
      ["z", true],
    ],
  );
  t.deepEqual(h.table.keyspaces(), ["a", "b"]);
  t.deepEqual(h.table.entries("none"), []);
});

test("a throwing change listener does not break the table", (t) => {
  const h = harness();
  h.table.on("change", () => {
    throw new Error("listener bug");
  });
  h.table.set("ks", "k", 1);
  t.is(h.table.get("ks", "k")?.value, 1);
});

// ----------------------------------------------------------------------------- properties

const arbRecord = fc
  .record({
    owner: fc.constantFrom("A", "B", "C"),
    lamport: fc.integer({ min: 1, max: 12 }),
    key: fc.constantFrom("k1", "k2", "k3"),
    keyspace: fc.constantFrom("x", "y"),
    value: fc.option(fc.constantFrom("p", "q", 7), { nil: undefined }),
  })
  .map((r) => rec(r.owner, r.lamport, r.value, r.key, r.keyspace));

/** Applies records in order on a fresh table of node "R" and returns what it holds. */
function replay(records: WireRecord[]) {
  const h = harness("R", ["A", "B", "C"]);
  for (const r of records) h.table.merge(r);
  const entries = ["x", "y"].flatMap((ks) => h.table.entries(ks));
  return { digest: h.table.digest(), entries, events: h.events, table: h.table };
}

test("property: any delivery order, with duplicates, converges to the same table", (t) => {
  fc.assert(
    fc.property(
      fc.array(arbRecord, { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 60 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (records, order, dups) => {
        const keyed = records.map((r, i) => ({ r, k: order[i] ?? i }));
        const shuffled = keyed.sort((a, b) => a.k - b.k).map((x) => x.r);
        const withDups = [
          ...shuffled,
          ...dups.filter(() => records.length > 0).map((d) => records[d % records.length]!),
        ];
        const a = replay(records);
        const b = replay(withDups);
        t.is(a.digest, b.digest);
        t.deepEqual(a.entries, b.entries);
        // ...and equal to the maximum version per key under the total order.
        for (const e of a.entries) {
          const versions = records.filter((r) => r.keyspace === e.keyspace && r.key === e.key);
          const max = versions.reduce((m, r) => (supersedes(r, m) ? r : m));
          t.is(e.lamport, max.lamport);
          t.is(e.owner, max.owner);
          t.is(e.deleted, max.deleted);
        }
      },
    ),
    { numRuns: 400 },
  );
});

test("property: change events fire exactly once per effective change and replay to the final table", (t) => {
  fc.assert(
    fc.property(fc.array(arbRecord, { maxLength: 30 }), (records) => {
      const { events, table } = replay([...records, ...records]);
      const last = new Map<string, TableEntry>();
      for (const ev of events) {
        const id = `${ev.keyspace}/${ev.key}`;
        const prev = last.get(id);
        // Never two identical consecutive events, never "deleted" for something not visible.
        const same =
          prev !== undefined &&
          prev.deleted === ev.deleted &&
          prev.lamport === ev.lamport &&
          prev.owner === ev.owner &&
          JSON.stringify(prev.value) === JSON.stringify(ev.value);
        t.false(same);
        t.false(ev.deleted && (prev === undefined || prev.deleted));
        last.set(id, ev);
      }
      for (const ks of ["x", "y"]) {
        for (const e of table.entries(ks)) {
          const ev = last.get(`${ks}/${e.key}`);
          if (e.deleted) t.true(ev === undefined || ev.deleted);
          else t.deepEqual(ev, e);
        }
      }
    }),
    { numRuns: 400 },
  );
});

test("property: bucket digests single out exactly the buckets holding different versions", (t) => {
  fc.assert(
    fc.property(fc.array(arbRecord, { maxLength: 20 }), arbRecord, (records, extra) => {
      const a = replay(records).table;
      const b = replay([...records, extra]).table;
      const differing = a.differingBuckets(b.bucketDigests());
      const onlyInB = b.recordsIn(differing);
      if (a.digest() === b.digest()) t.is(differing.size, 0);
      else t.true(onlyInB.some((r) => r.key === extra.key && r.keyspace === extra.keyspace));
      for (const r of onlyInB) a.merge(r);
      t.is(a.digest(), b.digest(), "merging the differing buckets' records repairs the difference");
    }),
    { numRuns: 300 },
  );
});
