import test from "ava";
import fc from "fast-check";
import {
  apply,
  type BlockState,
  decide,
  emptyState,
  majority,
  ownedBy,
  ownerOf,
} from "../../lib/overlay/blocks.js";

/** Each node sees its own copy of the table; deliveries copy entries between copies. */
interface Sim {
  views: Map<string, BlockState>;
  /** log of (author, action) writes, delivered in order per (author → reader) subject to partitions */
  writes: Array<{ author: string; action: ReturnType<typeof decide>[number] }>;
}

function clone(s: BlockState): BlockState {
  return {
    claims: new Map([...s.claims].map(([k, v]) => [k, new Set(v)])),
    acks: new Map([...s.acks].map(([k, v]) => [k, new Map(v)])),
  };
}

test("single node: claims and owns a block at once (majority of one)", (t) => {
  const state = emptyState();
  const electorate = new Set(["a"]);
  for (const action of decide({ state, self: "a", electorate, blockCount: 4, needBlock: true }))
    apply(state, "a", action);
  t.deepEqual(ownedBy(state, "a", electorate), [0]);
});

test("two nodes racing for the same block: exactly one wins, the other takes the next", (t) => {
  const electorate = new Set(["a", "b"]);
  const shared = emptyState();
  // both decide on the same (empty) view, then both writes land
  const a = decide({ state: shared, self: "a", electorate, blockCount: 4, needBlock: true });
  const b = decide({ state: shared, self: "b", electorate, blockCount: 4, needBlock: true });
  for (const x of a) apply(shared, "a", x);
  for (const x of b) apply(shared, "b", x);
  for (let round = 0; round < 10; round++) {
    for (const self of ["a", "b"]) {
      const needBlock = ownedBy(shared, self, electorate).length === 0;
      for (const x of decide({ state: shared, self, electorate, blockCount: 4, needBlock }))
        apply(shared, self, x);
    }
  }
  t.deepEqual(ownedBy(shared, "a", electorate), [0]);
  t.deepEqual(ownedBy(shared, "b", electorate), [1]);
});

test("majority is a strict majority", (t) => {
  t.is(majority(1), 1);
  t.is(majority(2), 2);
  t.is(majority(3), 2);
  t.is(majority(4), 3);
});

/**
 * Property: under arbitrary interleavings, partial delivery and partitions, no block ever has two
 * owners in ANY node's view, and no two nodes ever both believe they own the same block.
 */
test("no block is ever owned by two nodes, whatever the delivery order and partitions", (t) => {
  const nodes = ["a", "b", "c", "d", "e"];
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.tuple(fc.nat(4), fc.nat(4), fc.boolean()), { minLength: 10, maxLength: 200 }),
      (n, steps) => {
        const members = nodes.slice(0, n);
        const electorate = new Set(members);
        const sim: Sim = { views: new Map(), writes: [] };
        for (const m of members) sim.views.set(m, emptyState());
        const pointers = new Map<string, Map<string, number>>(); // reader → author → next write index
        for (const m of members) pointers.set(m, new Map(members.map((x) => [x, 0])));
        const believed = new Map<number, Set<string>>();
        for (const [i, j, act] of steps) {
          const self = members[i % n]!;
          const view = sim.views.get(self)!;
          if (act) {
            const need = ownedBy(view, self, electorate).length < 2;
            for (const action of decide({ state: view, self, electorate, blockCount: 3, needBlock: need })) {
              apply(view, self, action);
              sim.writes.push({ author: self, action });
            }
          } else {
            // deliver the next pending write of one author to `self`, in that author's order
            const author = members[j % n]!;
            const ptr = pointers.get(self)!;
            let k = ptr.get(author)!;
            while (k < sim.writes.length && sim.writes[k]!.author !== author) k++;
            if (k < sim.writes.length && author !== self) {
              apply(view, author, sim.writes[k]!.action);
            }
            ptr.set(author, Math.min(k + 1, sim.writes.length));
          }
          for (const m of members) {
            for (const b of ownedBy(sim.views.get(m)!, m, electorate)) {
              const set = believed.get(b) ?? new Set<string>();
              set.add(m);
              believed.set(b, set);
            }
          }
        }
        for (const [block, owners] of believed) {
          if (owners.size > 1) throw new Error(`block ${block} owned by ${[...owners].join(",")}`);
        }
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test("a minority partition cannot win a block; the majority can", (t) => {
  const electorate = new Set(["a", "b", "c"]);
  const minority = emptyState();
  for (const x of decide({ state: minority, self: "a", electorate, blockCount: 4, needBlock: true }))
    apply(minority, "a", x);
  t.is(ownerOf(minority, 0, electorate), undefined, "a alone has 1 of 3 acks");
  const majoritySide = emptyState();
  for (const x of decide({ state: majoritySide, self: "b", electorate, blockCount: 4, needBlock: true })) {
    apply(majoritySide, "b", x);
  }
  for (const x of decide({ state: majoritySide, self: "c", electorate, blockCount: 4, needBlock: false })) {
    apply(majoritySide, "c", x);
  }
  t.is(ownerOf(majoritySide, 0, electorate), "b");
  // heal: a learns b's claim and c's ack; a yields
  const healed = clone(majoritySide);
  apply(healed, "a", { kind: "claim", block: 0 });
  t.is(ownerOf(healed, 0, electorate), "b");
  const actions = decide({ state: healed, self: "a", electorate, blockCount: 4, needBlock: true });
  t.deepEqual(actions[0], { kind: "withdraw", block: 0 });
});
