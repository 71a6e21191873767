/**
 * The service programmer against a strict fake of the kernel's table: full render first, element
 * diffs after, full resync when a diff is refused (drift), serialised calls, and — over random
 * sequences of operations — a kernel state always equal to the render of the desired services.
 */
import test from "ava";
import fc from "fast-check";
import type { Service } from "../../lib/ingress/model.js";
import { ServiceProgrammer } from "../../lib/ingress/programmer.js";
import { renderTable } from "../../lib/ingress/render.js";
import { FakeNft, tableElements } from "./ingress-fake-nft.js";

const svc = (id: number, backends: number, affinity: Service["affinity"] = "none"): Service => ({
  id,
  name: `svc${id}`,
  vips: [{ ip: `10.96.0.${id}`, port: 80, proto: "tcp" }],
  backends: Array.from({ length: backends }, (_, j) => ({ ip: `10.20.${id}.${j + 1}`, port: 8080 })),
  affinity,
});

const setup = () => {
  const nft = new FakeNft();
  const p = new ServiceProgrammer({ nftApply: nft.apply });
  const inSync = (services: Service[]) =>
    JSON.stringify([...nft.elements].sort()) ===
    JSON.stringify([...tableElements(renderTable(services))].sort());
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
  await t.throwsAsync(p.upsert({ ...svc(3, 1), vips: [] }), { message: /has no VIP/ });
  await t.throwsAsync(p.sync([svc(1, 1), thief]), { message: /both claim/ });
  t.is(nft.scripts.length, 1);
  // a service may move its own VIPs, and take over a VIP another service gave up in the same sync
  t.is((await p.sync([svc(2, 1), { ...svc(3, 1), vips: svc(1, 0).vips }])).mode, "diff");
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
  const op = fc.oneof(
    fc.record({ kind: fc.constant("upsert" as const), id: fc.integer({ min: 1, max: 6 }), n: fc.nat(6) }),
    fc.record({ kind: fc.constant("remove" as const), id: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ kind: fc.constant("drift" as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
      const { nft, p, inSync } = setup();
      const desired = new Map<number, Service>();
      await p.sync([]);
      let drifted = false;
      for (const o of ops) {
        let r: { mode: string };
        if (o.kind === "upsert") {
          desired.set(o.id, svc(o.id, o.n, o.n % 2 ? "client-ip" : "none"));
          r = await p.upsert(desired.get(o.id)!);
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
        if (r.mode === "full") drifted = false;
        if (!drifted && !inSync([...desired.values()])) return false;
      }
      await p.resync();
      return inSync([...desired.values()]);
    }),
    { numRuns: 200 },
  );
  t.pass();
});
