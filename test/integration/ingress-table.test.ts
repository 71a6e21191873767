/**
 * The VIP table in a real kernel (a lab host namespace): what `nft -j list` shows equals the render
 * of the desired services element by element, the rule set grows only with the backend counts in use
 * (never with the number of services), 1 000 services created and removed one transaction at a time
 * leave nothing behind, and drift is repaired.
 */
import test from "ava";
import { elementsOf, groupsOf } from "../../lib/ingress/layout.js";
import type { Service } from "../../lib/ingress/model.js";
import { type ObservedTable, observeTable, ruleCount } from "../../lib/ingress/observe.js";
import { ServiceProgrammer } from "../../lib/ingress/programmer.js";
import { nftApply, nftListTable } from "../../lib/kernel/nft.js";
import { Lab } from "../helpers/lab.js";

/** refuse (2), prerouting (2), output (3), input, postrouting. */
const FIXED_RULES = 9;
const FIXED_CHAINS = 5;
/** services, mesh, mesh_snat (and the set vips). */
const FIXED_MAPS = ["mesh", "mesh_snat", "services"];
/** Each selection group in use (a protocol and backend count): its map, two chains of two rules. */
const RULES_PER_GROUP = 4;
const CHAINS_PER_GROUP = 2;

/** The selection groups (by backend map name) that some of the services use. */
const groupsIn = (services: Service[]) => {
  const out = new Set<string>();
  for (const s of services) groupsOf(s, out);
  return out;
};

/** Service i: one or two VIPs, 0-6 backends, every third with client-ip affinity, every fifth also
 * published (port 20000 + i) with its own backends. */
const svc = (i: number, backends = i % 7): Service => ({
  id: i,
  name: `svc${i}`,
  vips: [
    { ip: `10.96.${i >> 8}.${i & 255}`, port: 80, proto: "tcp" },
    ...(i % 2 ? [{ ip: `10.96.${i >> 8}.${i & 255}`, port: 53, proto: "udp" as const }] : []),
  ],
  backends: Array.from({ length: backends }, (_, j) => ({
    ip: `10.20.${i >> 8}.${(i + j) & 255}`,
    port: 8000 + j,
  })),
  mesh:
    i % 5 === 0
      ? [
          {
            proto: "tcp",
            port: 20000 + i,
            backends: Array.from({ length: backends % 4 }, (_, j) => ({
              ip: `10.21.${i >> 8}.${(i + j) & 255}`,
              port: 80,
            })),
          },
        ]
      : [],
  affinity: i % 3 === 0 ? "client-ip" : "none",
});

/** The @vips members a set of services needs. */
const vipSet = (services: Service[]) => [...new Set(services.flatMap((s) => s.vips.map((v) => v.ip)))].sort();

async function setup(t: { teardown(fn: () => unknown): void }) {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const netns = `/run/netns/${host.ns}`;
  const programmer = new ServiceProgrammer({ nftApply: (script) => nftApply(script, { netns }) });
  const observe = async (): Promise<ObservedTable | undefined> =>
    observeTable(await nftListTable("ip", "trellis_svc", { netns }));
  return { lab, host, netns, programmer, observe };
}

const sorted = (els: Array<{ map: string; key: string; value: string }>) =>
  els.map((e) => `${e.map} ${e.key} : ${e.value}`).sort();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

test("1 000 services added and removed one transaction each: the kernel matches the render, then holds zero elements", async (t) => {
  // 2 000 nft processes one after the other: minutes on a loaded machine, not the default 3
  t.timeout(8 * 60_000);
  const { programmer, observe } = await setup(t);
  await programmer.sync([]);
  const empty = await observe();
  t.is(empty?.elements.length, 0);
  t.is(ruleCount(empty!), FIXED_RULES);
  t.is(empty?.chains.length, FIXED_CHAINS);
  t.deepEqual(empty?.maps.sort(), FIXED_MAPS);
  t.deepEqual(empty?.sets, new Map([["vips", []]]));

  const services = Array.from({ length: 1000 }, (_, i) => svc(i));
  // tcp and udp VIPs with 1-6 backends, published tcp ports with 1-3: 15 groups
  const groups = groupsIn(services);
  t.is(groups.size, 15);
  const addMs: number[] = [];
  for (const s of services) {
    const started = process.hrtime.bigint();
    const r = await programmer.upsert(s);
    addMs.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (r.mode !== "diff") t.fail(`service ${s.id}: ${JSON.stringify(r)}`);
  }
  const full = await observe();
  t.deepEqual(
    sorted(full!.elements),
    sorted(services.flatMap(elementsOf)),
    "kernel == render, element by element",
  );
  t.deepEqual([...(full?.sets.get("vips") ?? [])].sort(), vipSet(services), "every VIP address in @vips");
  t.is(ruleCount(full!), FIXED_RULES + RULES_PER_GROUP * groups.size, "1 000 services, 15 groups' rules");
  t.is(full?.chains.length, FIXED_CHAINS + CHAINS_PER_GROUP * groups.size);
  t.deepEqual(full?.maps.sort(), [...FIXED_MAPS, ...groups].sort(), "a map per group, created on first use");

  const removeMs: number[] = [];
  for (const s of services) {
    const started = process.hrtime.bigint();
    await programmer.remove(s.id);
    removeMs.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const after = await observe();
  t.is(after?.elements.length, 0, "no element left behind");
  t.deepEqual(after?.sets.get("vips"), []);
  t.is(ruleCount(after!), ruleCount(full!), "unused groups stay until the next full render");
  t.deepEqual(after?.maps.sort(), full?.maps.sort());
  t.log(
    `${full!.elements.length} elements for 1 000 services; per change (nsenter + nft): add p50 ${median(addMs).toFixed(1)} ms, remove p50 ${median(removeMs).toFixed(1)} ms`,
  );

  // the same in one transaction each way
  t.is((await programmer.sync(services)).mode, "diff");
  t.is((await observe())?.elements.length, full?.elements.length);
  t.is((await programmer.sync([])).mode, "diff");
  t.is((await observe())?.elements.length, 0);
  t.deepEqual((await observe())?.sets.get("vips"), []);
  t.is((await programmer.resync()).mode, "full");
  const resynced = await observe();
  t.is(ruleCount(resynced!), FIXED_RULES, "a full render holds only the groups in use: none");
  t.deepEqual(resynced?.maps.sort(), FIXED_MAPS);
  await programmer.clear();
  t.is(await observe(), undefined, "clear() removes the table");
});

test("drift in the kernel (an element deleted by hand) is repaired by a full resync on the next change", async (t) => {
  const { lab, host, programmer, observe } = await setup(t);
  const services = [svc(1, 3), svc(2, 2), svc(3, 0)];
  await programmer.sync(services);
  await lab.exec(host.ns, [
    "nft",
    "delete",
    "element",
    "ip",
    "trellis_svc",
    "be_tcp_3",
    "{ 10.96.0.1 . 80 . 0 }",
  ]);
  const r = await programmer.upsert(svc(1, 4));
  t.is(r.mode, "full");
  t.regex(r.recovered ?? "", /No such file or directory|Could not process rule/);
  const want = [svc(1, 4), svc(2, 2), svc(3, 0)];
  t.deepEqual(sorted((await observe())!.elements), sorted(want.flatMap(elementsOf)));
  t.deepEqual((await observe())?.sets.get("vips")?.sort(), vipSet(want));
  // a new programmer (a restarted daemon) starts with a full render that replaces the table
  const fresh = new ServiceProgrammer({
    nftApply: (script) => nftApply(script, { netns: `/run/netns/${host.ns}` }),
  });
  t.is((await fresh.sync(want)).mode, "full");
  t.deepEqual(sorted((await observe())!.elements), sorted(want.flatMap(elementsOf)));
});

test("mesh SNAT entries and published ports in the kernel: element diffs, the same after a full render", async (t) => {
  const { programmer, observe } = await setup(t);
  const services = [svc(15, 3), svc(10, 2)];
  const snat = [
    { backend: "10.21.0.5", source: "10.21.255.250" },
    { backend: "10.21.0.6", source: "10.21.255.250" },
  ];
  await programmer.sync(services);
  t.is((await programmer.setSnat(snat)).mode, "diff");
  const observed = await observe();
  const snatOf = (o: ObservedTable | undefined) => sorted(o!.elements.filter((e) => e.map === "mesh_snat"));
  t.deepEqual(snatOf(observed), [
    "mesh_snat 10.21.0.5 : 10.21.255.250",
    "mesh_snat 10.21.0.6 : 10.21.255.250",
  ]);
  t.true(
    observed!.elements.some(
      (e) => e.map === "mesh" && e.key === "tcp . 20015" && e.value === "jump maff_tcp_3",
    ),
    "service 15 (client-ip) published on 20015 with 3 backends",
  );
  t.is((await programmer.setSnat(snat.slice(1))).mode, "diff");
  t.deepEqual(snatOf(await observe()), ["mesh_snat 10.21.0.6 : 10.21.255.250"]);
  t.is((await programmer.resync()).mode, "full");
  const again = await observe();
  t.deepEqual(snatOf(again), ["mesh_snat 10.21.0.6 : 10.21.255.250"]);
  t.deepEqual(
    sorted(again!.elements.filter((e) => e.map !== "mesh_snat")),
    sorted(services.flatMap(elementsOf)),
  );
});

test("a large backend map gets a fixed size in the kernel; a change that would overfill it renders the table anew", async (t) => {
  const { programmer, observe } = await setup(t);
  // n services with 2 backends each: 2n slots in be_tcp_2
  const wide = (n: number): Service[] =>
    Array.from({ length: n }, (_, i) => ({
      id: i,
      name: `w${i}`,
      vips: [{ ip: `10.96.${i >> 8}.${i & 255}`, port: 80, proto: "tcp" }],
      backends: [1, 2].map((j) => ({ ip: `10.20.${i >> 8}.${i & 255}`, port: 8080 + j })),
      mesh: [],
      affinity: "none",
    }));
  t.is((await programmer.sync(wide(600))).mode, "full");
  t.is((await observe())?.sizes.get("be_tcp_2"), 4096, "1 200 slots: room to double");
  t.deepEqual(await programmer.sync(wide(2048)), { mode: "diff", services: 1448 }, "4 096 slots fit");
  t.deepEqual(await programmer.sync(wide(2049)), { mode: "full", services: 2049 }, "planned, no refusal");
  const grown = await observe();
  t.is(grown?.sizes.get("be_tcp_2"), 16384);
  t.deepEqual(sorted(grown!.elements), sorted(wide(2049).flatMap(elementsOf)));
});
