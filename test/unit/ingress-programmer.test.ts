/**
 * The service programmer against a strict fake of the kernel's table: full render first, element
 * diffs after, full resync when a diff is refused (drift), serialised calls, VIP addresses shared by
 * services, the mesh SNAT map, and — over random sequences of operations — a kernel state always
 * equal to the render of the desired services and SNAT entries.
 */
import test from "ava";
import fc from "fast-check";
import type { Service, SnatEntry } from "../../lib/ingress/model.js";
import { ServiceProgrammer } from "../../lib/ingress/programmer.js";
import { renderTable } from "../../lib/ingress/render.js";
import { FakeNft, tableElements, tableObjects } from "./ingress-fake-nft.js";

const svc = (id: number, backends: number, affinity: Service["affinity"] = "none"): Service => ({
  id,
  name: `svc${id}`,
  vips: [{ ip: `10.96.0.${id}`, port: 80, proto: "tcp" }],
  backends: Array.from({ length: backends }, (_, j) => ({ ip: `10.20.${id}.${j + 1}`, port: 8080 })),
  mesh: [],
  affinity,
});

/** A published port only (no VIP), its backends in 10.30.<id>.0/24. */
const pub = (id: number, port: number, backends: number): Service => ({
  id,
  name: `pub${id}`,
  vips: [],
  backends: [],
  mesh: [
    {
      proto: "tcp",
      port,
      backends: Array.from({ length: backends }, (_, j) => ({ ip: `10.30.${id}.${j + 1}`, port: 80 })),
    },
  ],
  affinity: "none",
});

/** One VIP unit the way the daemon makes them: one port of a service's VIP address. */
const unit = (id: number, ip: string, port: number): Service => ({
  ...svc(id, 1),
  vips: [{ ip, port, proto: "tcp" }],
});

const setup = () => {
  const nft = new FakeNft();
  const p = new ServiceProgrammer({ nftApply: nft.apply });
  const inSync = (services: Service[], snat: SnatEntry[] = []) =>
    JSON.stringify([...nft.elements].sort()) ===
    JSON.stringify([...tableElements(renderTable(services, snat))].sort());
  return { nft, p, inSync };
};

test("the first call renders the whole table; later ones send only the changed service's elements", async (t) => {
  const { nft, p, inSync } = setup();
  t.deepEqual(await p.sync([svc(1, 2), svc(2, 3)]), { mode: "full", services: 2 });
  t.deepEqual(await p.upsert(svc(2, 4)), { mode: "diff", services: 1 });
  const diff = nft.scripts[1]!;
  t.false(diff.includes("10.96.0.1 "), "service 1 is not touched");
  t.regex(diff, /^delete element ip trellis_svc services \{ 10\.96\.0\.2 \. tcp \. 80 \}$/m);
  t.deepEqual(await p.upsert(svc(2, 4)), { mode: "none", services: 0 });
  t.is(nft.scripts.length, 2, "no transaction for no change");
  t.deepEqual(await p.remove(1), { mode: "diff", services: 1 });
  t.deepEqual(await p.remove(1), { mode: "none", services: 0 });
  t.true(inSync([svc(2, 4)]));
  t.deepEqual(
    p.appliedServices()?.map((s) => s.id),
    [2],
  );
  // sync with the same set is a no-op; with one change, one service in one transaction
  t.deepEqual(await p.sync([svc(2, 4)]), { mode: "none", services: 0 });
  t.deepEqual(await p.sync([svc(2, 4), svc(3, 1, "client-ip")]), { mode: "diff", services: 1 });
  t.true(inSync([svc(2, 4), svc(3, 1, "client-ip")]));
});

test("a refused diff (the table drifted) is repaired by a full resync in the same call", async (t) => {
  const { nft, p, inSync } = setup();
  await p.sync([svc(1, 2), svc(2, 2)]);
  // someone deletes our table behind our back
  await nft.apply("table ip trellis_svc {}\ndelete table ip trellis_svc\n");
  const r = await p.upsert(svc(1, 3));
  t.is(r.mode, "full");
  t.is(r.services, 2);
  t.regex(r.recovered ?? "", /No such file or directory/);
  t.true(inSync([svc(1, 3), svc(2, 2)]));
});

test("a failed full resync is reported, and the next call tries a full resync again", async (t) => {
  const { nft, p, inSync } = setup();
  nft.failNext = 1;
  const err = await t.throwsAsync(p.sync([svc(1, 2)]), {
    message: /\(full resync\): Error: injected failure/,
  });
  t.is((err as { code?: string } | undefined)?.code, "KERNEL");
  t.is(p.appliedServices(), undefined, "the kernel state is unknown");
  t.deepEqual(await p.upsert(svc(2, 1)), { mode: "full", services: 2 });
  t.true(inSync([svc(1, 2), svc(2, 1)]));
  // a diff and its resync both failing: error, then recovery
  nft.failNext = 2;
  await t.throwsAsync(p.upsert(svc(2, 3)));
  t.deepEqual(await p.resync(), { mode: "full", services: 2 });
  t.true(inSync([svc(1, 2), svc(2, 3)]));
});

test("invalid input and VIP conflicts are refused before anything is applied", async (t) => {
  const { nft, p } = setup();
  await p.sync([svc(1, 2)]);
  const thief = { ...svc(2, 1), vips: svc(1, 0).vips };
  await t.throwsAsync(p.upsert(thief), { message: /10\.96\.0\.1:80\/tcp belongs to service id 1/ });
  await t.throwsAsync(p.upsert({ ...svc(3, 1), vips: [] }), { message: /has no VIP and no published port/ });
  await t.throwsAsync(p.sync([svc(1, 1), thief]), { message: /both claim/ });
  await p.upsert(pub(7, 8080, 1));
  await t.throwsAsync(p.upsert(pub(8, 8080, 2)), {
    message: /published port 8080\/tcp belongs to service id 7/,
  });
  await t.throwsAsync(p.sync([pub(7, 8080, 1), pub(8, 8080, 2)]), { message: /both publish 8080\/tcp/ });
  await t.throwsAsync(p.setSnat([{ backend: "10.30.0.1", source: "nope" }]), { message: /not an IPv4/ });
  t.is(nft.scripts.length, 2);
  await p.remove(7);
  // a service may move its own VIPs, and take over a VIP another service gave up in the same sync
  t.is((await p.sync([svc(2, 1), { ...svc(3, 1), vips: svc(1, 0).vips }])).mode, "diff");
});

test("published ports: their own elements, diffs and ownership; a port moves between services in one sync", async (t) => {
  const { nft, p, inSync } = setup();
  t.deepEqual(await p.sync([pub(1, 8080, 2), svc(2, 1)]), { mode: "full", services: 2 });
  t.true(nft.elements.has("mesh tcp . 8080 : jump mlb_tcp_2"));
  t.true(nft.elements.has("mbe_tcp_2 8080 . 1 : 10.30.1.2 . 80"));
  t.deepEqual(await p.upsert(pub(1, 8080, 0)), { mode: "diff", services: 1 });
  t.regex(nft.scripts[1]!, /^add element ip trellis_svc mesh \{ tcp \. 8080 : jump refuse \}$/m);
  t.false(nft.scripts[1]!.includes("vips"), "no VIP address changed");
  t.true(inSync([pub(1, 8080, 0), svc(2, 1)]));
  // the port changes hands: gone from service 1, taken by service 3, one transaction
  t.deepEqual(await p.sync([svc(2, 1), pub(3, 8080, 1)]), { mode: "diff", services: 2 });
  t.true(inSync([svc(2, 1), pub(3, 8080, 1)]));
});

test("a VIP address shared by several services stays in @vips until its last service goes", async (t) => {
  const { nft, p, inSync } = setup();
  await p.sync([unit(1, "10.96.9.1", 80)]);
  t.true(nft.elements.has("vips 10.96.9.1"));
  const second = await p.upsert(unit(2, "10.96.9.1", 443));
  t.is(second.mode, "diff");
  t.false(nft.scripts[1]!.includes(" vips "), "the address is already there");
  await p.remove(1);
  t.false(nft.scripts[2]!.includes(" vips "), "service 2 still holds it");
  t.true(inSync([unit(2, "10.96.9.1", 443)]));
  // a service moves to another address: the old one goes, the new one comes, in the same transaction
  await p.upsert(unit(2, "10.96.9.2", 443));
  t.regex(nft.scripts[3]!, /^delete element ip trellis_svc vips \{ 10\.96\.9\.1 \}$/m);
  t.regex(nft.scripts[3]!, /^add element ip trellis_svc vips \{ 10\.96\.9\.2 \}$/m);
  await p.remove(2);
  t.true(inSync([]));
  t.false([...nft.elements].some((e) => e.startsWith("vips ")));
  // the same address twice in one service counts once
  await p.upsert({
    ...unit(3, "10.96.9.3", 80),
    vips: [unit(3, "10.96.9.3", 80).vips[0]!, { ip: "10.96.9.3", port: 81, proto: "tcp" }],
  });
  await p.remove(3);
  t.true(inSync([]));
});

test("setSnat: part of the full render, element diffs after, no-op when unchanged, repaired by a resync", async (t) => {
  const { nft, p, inSync } = setup();
  const a = { backend: "10.30.1.2", source: "10.30.0.250" };
  const b = { backend: "10.30.1.3", source: "10.30.0.250" };
  // before any table exists: a full render that includes the entries
  t.deepEqual(await p.setSnat([a]), { mode: "full", services: 0 });
  t.true(inSync([], [a]));
  t.deepEqual(await p.sync([pub(1, 8080, 3)]), { mode: "diff", services: 1 });
  t.deepEqual(await p.setSnat([a, b]), { mode: "diff", services: 0 });
  t.is(nft.scripts.at(-1), "add element ip trellis_svc mesh_snat { 10.30.1.3 : 10.30.0.250 }\n");
  t.deepEqual(await p.setSnat([b, a]), { mode: "none", services: 0 });
  // a changed source is a delete and an add of the same key
  const moved = { ...a, source: "10.30.0.251" };
  t.deepEqual(await p.setSnat([moved, b]), { mode: "diff", services: 0 });
  t.true(inSync([pub(1, 8080, 3)], [moved, b]));
  t.deepEqual(p.appliedSnat(), [moved, b]);
  // drift: the table is gone; the next SNAT change re-renders everything, services included
  await nft.apply("table ip trellis_svc {}\ndelete table ip trellis_svc\n");
  const r = await p.setSnat([b]);
  t.is(r.mode, "full");
  t.regex(r.recovered ?? "", /No such file or directory/);
  t.true(inSync([pub(1, 8080, 3)], [b]));
  // a later service change keeps the entries; a forced resync renders them again
  await p.upsert(svc(2, 2));
  t.deepEqual(await p.resync(), { mode: "full", services: 2 });
  t.true(inSync([pub(1, 8080, 3), svc(2, 2)], [b]));
  await p.clear();
  t.is(p.appliedSnat(), undefined);
  await p.sync([]);
  t.true(inSync([], []), "clear() forgets the entries too");
});

test("selection groups: only those in use are rendered; a change creates a missing one once, in its own transaction; a full render drops unused ones", async (t) => {
  const { nft, p, inSync } = setup();
  await p.sync([svc(1, 2), svc(2, 2)]);
  const groups = () => [...nft.objects].filter((o) => /^map m?be_/.test(o)).sort();
  t.deepEqual(groups(), ["map be_tcp_2"]);
  t.false(nft.objects.has("chain lb_tcp_3"));
  t.deepEqual(await p.upsert(svc(1, 3, "client-ip")), { mode: "diff", services: 1 });
  t.regex(
    nft.scripts[1]!,
    /^create map ip trellis_svc be_tcp_3 \{ .+; \}\ncreate chain ip trellis_svc lb_tcp_3\n/m,
  );
  t.true(nft.objects.has("chain aff_tcp_3"));
  t.deepEqual(await p.upsert(svc(2, 3)), { mode: "diff", services: 1 });
  t.false(nft.scripts[2]!.includes("create"), "the group is there already");
  t.deepEqual(await p.upsert(svc(2, 1)), { mode: "diff", services: 1 });
  t.deepEqual(groups(), ["map be_tcp_1", "map be_tcp_2", "map be_tcp_3"], "be_tcp_2 stays, unused");
  t.true(inSync([svc(1, 3, "client-ip"), svc(2, 1)]));
  t.deepEqual(await p.resync(), { mode: "full", services: 2 });
  t.deepEqual(groups(), ["map be_tcp_1", "map be_tcp_3"]);
  // after a full render the programmer knows be_tcp_2 is gone: using it again creates it again
  t.deepEqual(await p.upsert(svc(3, 2)), { mode: "diff", services: 1 });
  t.regex(nft.scripts.at(-1)!, /^create map ip trellis_svc be_tcp_2 /m);
  // a group that exists behind the programmer's back: its create fails, a full resync repairs
  await nft.apply("create map ip trellis_svc be_tcp_4 { typeof x; }\n");
  const r = await p.upsert(svc(3, 4));
  t.is(r.mode, "full");
  t.regex(r.recovered ?? "", /File exists \(map be_tcp_4\)/);
  t.true(inSync([svc(1, 3, "client-ip"), svc(2, 1), svc(3, 4)]));
});

test("sync() renders only the services that differ from the last call", async (t) => {
  const { nft, p, inSync } = setup();
  const many = Array.from({ length: 50 }, (_, i) => svc(i + 1, i % 4));
  t.deepEqual(await p.sync(many), { mode: "full", services: 50 });
  const next = many.map((s) => (s.id === 7 ? svc(7, 5) : { ...s }));
  t.deepEqual(await p.sync(next), { mode: "diff", services: 1 });
  t.false(/10\.96\.0\.(?!7 )/.test(nft.scripts[1]!), "only service 7's elements");
  t.deepEqual(await p.sync(next), { mode: "none", services: 0 });
  // the same backends in another order: compared as given, rendered as the same slots, no change
  const reordered = next.map((s) => (s.id === 3 ? { ...s, backends: [...s.backends].reverse() } : s));
  t.deepEqual(await p.sync(reordered), { mode: "none", services: 0 });
  t.deepEqual(await p.sync(next.slice(1)), { mode: "diff", services: 1 });
  t.true(inSync(next.slice(1)));
  // an unchanged service is not validated again, but still checked against the others
  const thief = { ...svc(60, 1), vips: next[1]!.vips };
  await t.throwsAsync(p.sync([...next.slice(1), thief]), { message: /svc2 and svc60 both claim/ });
  // a new name alone changes nothing in the kernel, and is kept
  t.deepEqual(await p.sync(next.slice(1).map((s) => ({ ...s, name: `renamed${s.id}` }))), {
    mode: "none",
    services: 0,
  });
  t.is(p.appliedServices()?.find((s) => s.id === 2)?.name, "renamed2");
});

test("a backend map that a full render sized is never overfilled: the change that would do it renders the table anew", async (t) => {
  const { nft, p, inSync } = setup();
  // n services with 2 backends each: 2n slots in be_tcp_2
  const wide = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      ...svc(i + 1, 0),
      vips: [{ ip: `10.96.${(i + 1) >> 8}.${(i + 1) & 255}`, port: 80, proto: "tcp" as const }],
      backends: [1, 2].map((j) => ({ ip: `10.20.${(i + 1) >> 8}.${(i + 1) & 255}`, port: 8080 + j })),
    }));
  t.deepEqual(await p.sync(wide(600)), { mode: "full", services: 600 });
  t.is(nft.sizes.get("be_tcp_2"), 4096, "1 200 slots: room to double and more");
  t.deepEqual(await p.sync(wide(2048)), { mode: "diff", services: 1448 }, "4 096 slots: full to the brim");
  t.deepEqual(await p.sync(wide(2049)), { mode: "full", services: 2049 }, "planned, not a refused diff");
  t.is(nft.sizes.get("be_tcp_2"), 16384);
  t.true(inSync(wide(2049)));
  // removals, and growth of maps without a size, are not limited
  const three = { ...svc(200, 3), vips: [{ ip: "10.97.0.1", port: 80, proto: "tcp" as const }] };
  t.deepEqual(await p.sync([...wide(10), three]), { mode: "diff", services: 2039 });
  t.true(inSync([...wide(10), three]));
});

test("concurrent calls are applied one after the other, in call order", async (t) => {
  const { nft, p, inSync } = setup();
  await p.sync([]);
  const order: number[] = [];
  await Promise.all(
    [1, 2, 3, 4, 5].map((id) =>
      p.upsert(svc(id, id)).then((r) => {
        order.push(id);
        return r;
      }),
    ),
  );
  t.deepEqual(order, [1, 2, 3, 4, 5]);
  t.true(inSync([1, 2, 3, 4, 5].map((id) => svc(id, id))));
  t.is(nft.scripts.length, 6);
});

test("clear() deletes the table and forgets every service", async (t) => {
  const { nft, p } = setup();
  await p.sync([svc(1, 2)]);
  await p.clear();
  t.false(nft.exists);
  t.is(p.appliedServices(), undefined, "no table: the next call renders it whole");
  t.deepEqual(await p.upsert(svc(1, 1)), { mode: "full", services: 1 });
});

test("property: after any sequence of operations, the kernel holds the render of the desired state; drift is repaired by the next transaction that meets it, or by resync()", async (t) => {
  // Services share VIP addresses (two addresses, ports by id) and publish ports 8080/8081 in turn.
  const shaped = (id: number, n: number, addr: number, published: boolean): Service => ({
    ...svc(id, n, n % 2 ? "client-ip" : "none"),
    vips: [{ ip: `10.96.0.${addr}`, port: 1000 + id, proto: "tcp" }],
    mesh: published ? [{ proto: "tcp", port: 8080 + (id % 2), backends: svc(id, n).backends }] : [],
  });
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("upsert" as const),
      id: fc.integer({ min: 1, max: 6 }),
      n: fc.nat(6),
      addr: fc.integer({ min: 1, max: 2 }),
      published: fc.boolean(),
    }),
    fc.record({ kind: fc.constant("remove" as const), id: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ kind: fc.constant("snat" as const), backends: fc.subarray([1, 2, 3, 4]), source: fc.nat(2) }),
    fc.record({ kind: fc.constant("drift" as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
      const { nft, p, inSync } = setup();
      const desired = new Map<number, Service>();
      let snat: SnatEntry[] = [];
      await p.sync([]);
      let drifted = false;
      for (const o of ops) {
        let r: { mode: string };
        if (o.kind === "upsert") {
          const next = shaped(o.id, o.n, o.addr, o.published);
          // a published port held by another service: refused, and nothing changes
          const owner = [...desired.values()].find(
            (s) => s.id !== o.id && s.mesh.some((m) => next.mesh.some((x) => x.port === m.port)),
          );
          if (owner) {
            const before = nft.scripts.length;
            const refused = await p.upsert(next).then(
              () => false,
              () => true,
            );
            if (!refused || nft.scripts.length !== before) return false;
            continue;
          }
          desired.set(o.id, next);
          r = await p.upsert(next);
        } else if (o.kind === "snat") {
          snat = o.backends.map((b) => ({ backend: `10.20.9.${b}`, source: `10.20.0.${250 + o.source}` }));
          r = await p.setSnat(snat);
        } else if (o.kind === "remove") {
          desired.delete(o.id);
          r = await p.remove(o.id);
        } else {
          // drop one element behind the programmer's back
          const first = [...nft.elements][0];
          if (first) nft.elements.delete(first);
          drifted ||= first !== undefined;
          continue;
        }
        // a full resync only repairs drift: a diff the fake refused otherwise (a map or chain it
        // lacked, say) would be a bug hidden by the recovery
        if (r.mode === "full" && !drifted) return false;
        if (r.mode === "full") drifted = false;
        if (!drifted && !inSync([...desired.values()], snat)) return false;
      }
      await p.resync();
      const objects = [...tableObjects(renderTable([...desired.values()], snat))].sort();
      return (
        inSync([...desired.values()], snat) &&
        JSON.stringify([...nft.objects].sort()) === JSON.stringify(objects)
      );
    }),
    { numRuns: 200 },
  );
  t.pass();
});
