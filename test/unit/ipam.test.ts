import test from "ava";
import fc from "fast-check";
import { geometryOf, nextFree, sortedTaken } from "../../lib/ipam/allocator.js";
import {
  contains,
  formatAddress,
  lastAddress,
  overlaps,
  parseAddress,
  parseCidr,
} from "../../lib/ipam/cidr.js";
import { defaultV4Candidates, pickFreeSubnet, ulaCandidate } from "../../lib/ipam/default-pools.js";
import { GATEWAY_OWNER, Ipam, type RequestPoolOptions } from "../../lib/ipam/ipam.js";
import type { PoolRecord } from "../../lib/store/records.js";
import { SqliteStore } from "../../lib/store/sqlite-store.js";

const NAMES: Record<string, string> = { n1: 'network "foo"', n2: 'network "bar"', e1: "endpoint web" };

function fresh() {
  const store = SqliteStore.openInMemory();
  const ipam = new Ipam({
    store,
    describeOwner: (o) => NAMES[o] ?? (o === GATEWAY_OWNER ? "the gateway" : o),
  });
  return { store, ipam };
}

const pool = (ipam: Ipam, opts: Partial<RequestPoolOptions> & { id: string }) =>
  ipam.requestPool({ owner: opts.id, family: 4, ...opts });

// --- default pools ----------------------------------------------------------------------------

test("default IPv4 candidates follow Docker's local pools", (t) => {
  const c = defaultV4Candidates();
  t.is(c.length, 31);
  t.is(c[0], "172.17.0.0/16");
  t.is(c[14], "172.31.0.0/16");
  t.is(c[15], "192.168.0.0/20");
  t.is(c[30], "192.168.240.0/20");
});

test("pickFreeSubnet skips used subnets and host routes but not the default route", (t) => {
  const used = [{ subnet: "172.17.0.0/16", owner: 'network "bridge"' }];
  t.is(pickFreeSubnet({ family: 4, used, hostRoutes: ["0.0.0.0/0", "172.18.5.0/24"] }), "172.19.0.0/16");
  t.is(pickFreeSubnet({ family: 4, used: [], hostRoutes: ["172.16.0.0/12"] }), "192.168.0.0/20");
  t.is(pickFreeSubnet({ family: 4, used: [], hostRoutes: ["fd00::/8"] }), "172.17.0.0/16", "other family");
});

test("pickFreeSubnet explains exhaustion", (t) => {
  const used = [{ subnet: "172.16.0.0/12", owner: 'network "foo"' }];
  const err = t.throws(() => pickFreeSubnet({ family: 4, used, hostRoutes: ["192.168.0.0/16"] }), {
    code: "EXHAUSTED",
  });
  t.is(
    err?.message,
    "no free IPv4 subnet in the default pools (172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16 in /20s): " +
      "all 31 candidates overlap existing networks or host routes (" +
      '172.17.0.0/16 overlaps 172.16.0.0/12 of network "foo"; ' +
      '172.18.0.0/16 overlaps 172.16.0.0/12 of network "foo"; ' +
      '172.19.0.0/16 overlaps 172.16.0.0/12 of network "foo"; and 28 more)',
  );
});

test("IPv6 default subnets are deterministic ULA /64s", (t) => {
  const a = pickFreeSubnet({ family: 6, used: [], hostRoutes: ["::/0"], seed: "net-a" });
  t.is(a, pickFreeSubnet({ family: 6, used: [], hostRoutes: [], seed: "net-a" }));
  t.true(a.endsWith("/64"));
  t.true(overlaps(a, "fd00::/8"));
  t.not(a, pickFreeSubnet({ family: 6, used: [], hostRoutes: [], seed: "net-b" }));
  const next = pickFreeSubnet({
    family: 6,
    used: [{ subnet: a, owner: "x" }],
    hostRoutes: [],
    seed: "net-a",
  });
  t.is(next, ulaCandidate("net-a", 1));
});

test("IPv6 default subnet exhaustion names the seed and the blocker", (t) => {
  t.throws(() => pickFreeSubnet({ family: 6, used: [], hostRoutes: ["fd00::/8"], seed: "s" }), {
    code: "EXHAUSTED",
    message: new RegExp(
      '^no free IPv6 subnet among 64 ULA /64s derived from seed "s": all 64 candidates overlap ' +
        "existing networks or host routes \\(fd[0-9a-f:]+/64 overlaps host route fd00::/8; .*; and 61 more\\)$",
    ),
  });
});

test("property: pickFreeSubnet never returns an overlapping subnet", (t) => {
  const cidr = fc
    .tuple(fc.bigInt(0xac000000n, 0xc0a8ffffn), fc.integer({ min: 8, max: 24 }))
    .map(([v, len]) => `${formatAddress(4, v)}/${len}`);
  fc.assert(
    fc.property(fc.array(cidr, { maxLength: 12 }), fc.array(cidr, { maxLength: 4 }), (usedList, routes) => {
      const used = usedList.map((subnet) => ({ subnet, owner: "x" }));
      try {
        const s = pickFreeSubnet({ family: 4, used, hostRoutes: routes });
        return [...usedList, ...routes].every((u) => !overlaps(s, u));
      } catch {
        // exhaustion is only allowed when every candidate really is blocked
        return defaultV4Candidates().every((c) => [...usedList, ...routes].some((u) => overlaps(c, u)));
      }
    }),
  );
  t.pass();
});

// --- pools ------------------------------------------------------------------------------------

test("requestPool picks the first free default subnet and reserves the gateway", (t) => {
  const { store, ipam } = fresh();
  const p = pool(ipam, { id: "n1" });
  t.like(p, { subnet: "172.17.0.0/16", gateway: "172.17.0.1", family: 4, owner: "n1" });
  t.deepEqual(store.listAllocations("n1"), [{ poolId: "n1", address: "172.17.0.1", owner: GATEWAY_OWNER }]);
  t.is(pool(ipam, { id: "n2" }).subnet, "172.18.0.0/16");
  t.is(pool(ipam, { id: "n3", hostRoutes: ["172.19.0.0/16"] }).subnet, "172.20.0.0/16");
  t.deepEqual(
    ipam.poolsOf("n2").map((p) => p.id),
    ["n2"],
  );
});

test("requestPool normalises the subnet and validates range and gateway", (t) => {
  const { ipam } = fresh();
  const p = pool(ipam, { id: "n1", subnet: "10.1.2.3/16", ipRange: "10.1.7.9/24", gateway: "10.1.0.254" });
  t.like(p, { subnet: "10.1.0.0/16", ipRange: "10.1.7.0/24", gateway: "10.1.0.254" });
  const cases: Array<[Partial<RequestPoolOptions>, string]> = [
    [{ subnet: "10.2.0.0/24", gateway: "10.3.0.1" }, "gateway 10.3.0.1 is outside subnet 10.2.0.0/24"],
    [
      { subnet: "10.2.0.0/24", gateway: "10.2.0.0" },
      "gateway 10.2.0.0 is the network address of subnet 10.2.0.0/24 and cannot be assigned",
    ],
    [
      { subnet: "10.2.0.0/24", gateway: "10.2.0.255" },
      "gateway 10.2.0.255 is the broadcast address of subnet 10.2.0.0/24 and cannot be assigned",
    ],
    [
      { subnet: "10.2.0.0/24", gateway: "10.2.0.300" },
      'invalid gateway "10.2.0.300": octet 300 is out of range 0-255',
    ],
    [{ subnet: "10.2.0.0/24", ipRange: "10.3.0.0/25" }, "ip range 10.3.0.0/25 is outside subnet 10.2.0.0/24"],
    [{ subnet: "10.2.0.0/24", ipRange: "10.2.0.0/23" }, "ip range 10.2.0.0/23 is outside subnet 10.2.0.0/24"],
    [
      { subnet: "10.2.0.0/24", ipRange: "10.2.0.0/32" },
      "ip range 10.2.0.0/32 holds no assignable address of subnet 10.2.0.0/24",
    ],
    [{ ipRange: "10.2.0.0/25" }, "an ip range needs an explicit subnet"],
    [{ subnet: "fd00::/64" }, "subnet fd00::/64 is not an IPv4 subnet"],
    [{ subnet: "10.2.0.0/33" }, 'invalid CIDR "10.2.0.0/33": prefix length must be 0-32'],
  ];
  for (const [opts, message] of cases) {
    t.throws(() => pool(ipam, { id: "bad", ...opts }), { code: "INVALID_ARGUMENT", message });
  }
  t.deepEqual(ipam.poolsOf("bad"), [], "failed requests leave nothing behind");
});

test("requestPool refuses overlaps, naming the other network or the route", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.1.0.0/16" });
  t.throws(() => pool(ipam, { id: "n2", subnet: "10.1.0.0/24" }), {
    code: "CONFLICT",
    message: 'subnet 10.1.0.0/24 overlaps 10.1.0.0/16 of network "foo"',
  });
  t.throws(
    () => pool(ipam, { id: "n2", subnet: "192.168.1.0/24", hostRoutes: ["0.0.0.0/0", "192.168.0.0/16"] }),
    {
      code: "CONFLICT",
      message: "subnet 192.168.1.0/24 overlaps host route 192.168.0.0/16",
    },
  );
  t.throws(
    () => pool(ipam, { id: "n2", subnet: "10.9.0.0/24", used: [{ subnet: "10.0.0.0/8", owner: "docker0" }] }),
    {
      message: "subnet 10.9.0.0/24 overlaps 10.0.0.0/8 of docker0",
    },
  );
  t.throws(() => pool(ipam, { id: "n1", subnet: "10.200.0.0/16" }), { message: 'pool "n1" already exists' });
  t.is(pool(ipam, { id: "n2", subnet: "10.2.0.0/16", hostRoutes: ["0.0.0.0/0"] }).subnet, "10.2.0.0/16");
});

test("IPv6 pools: automatic ULA subnet, gateway ::1", (t) => {
  const { ipam } = fresh();
  const p = ipam.requestPool({ id: "n1/v6", owner: "n1", family: 6 });
  t.is(p.subnet, ulaCandidate("n1/v6", 0));
  t.is(p.gateway, formatAddress(6, parseCidr(p.subnet).network + 1n));
  const a = ipam.requestAddress(p.id, { owner: "e1" });
  t.is(parseAddress(a).value, parseCidr(p.subnet).network + 2n);
});

test("releasePool drops the pool and its allocations", (t) => {
  const { store, ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.1.0.0/24" });
  ipam.requestAddress("n1", { owner: "e1" });
  t.true(ipam.releasePool("n1"));
  t.false(ipam.releasePool("n1"));
  t.deepEqual(store.listAllocations("n1"), []);
  t.is(pool(ipam, { id: "n2", subnet: "10.1.0.0/24" }).subnet, "10.1.0.0/24", "the subnet is free again");
});

// --- addresses --------------------------------------------------------------------------------

test("dynamic addresses go round robin: a released address is not handed back at once", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.0.0.0/29" }); // usable .1-.6, gateway .1
  t.is(ipam.requestAddress("n1", { owner: "a" }), "10.0.0.2");
  t.true(ipam.releaseAddress("n1", "10.0.0.2"));
  t.is(ipam.requestAddress("n1", { owner: "b" }), "10.0.0.3");
  t.deepEqual(
    ["c", "d", "e", "f"].map((owner) => ipam.requestAddress("n1", { owner })),
    ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"],
    "wraps around to the released address, never .7 (broadcast)",
  );
  t.throws(() => ipam.requestAddress("n1", { owner: "g" }), {
    code: "EXHAUSTED",
    message: "no free address in 10.0.0.0/29: all 6 assignable addresses are in use",
  });
});

test("dynamic addresses come from the ip range", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.1.0.0/24", ipRange: "10.1.0.252/30" });
  t.deepEqual(
    ["a", "b", "c"].map((owner) => ipam.requestAddress("n1", { owner })),
    ["10.1.0.252", "10.1.0.253", "10.1.0.254"],
  );
  t.throws(() => ipam.requestAddress("n1", { owner: "d" }), {
    code: "EXHAUSTED",
    message: "no free address in 10.1.0.0/24 (range 10.1.0.252/30): all 3 assignable addresses are in use",
  });
  t.is(
    ipam.requestAddress("n1", { owner: "d", address: "10.1.0.7" }),
    "10.1.0.7",
    "static may leave the range",
  );
});

test("static addresses are checked and named in errors", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.1.0.0/24" });
  t.is(ipam.requestAddress("n1", { owner: "e1", address: "10.1.0.5" }), "10.1.0.5");
  const cases: Array<[string, string, string]> = [
    ["10.1.0.5", "CONFLICT", "address 10.1.0.5 is already in use by endpoint web"],
    ["10.1.0.1", "CONFLICT", "address 10.1.0.1 is already in use by the gateway"],
    ["10.2.0.5", "INVALID_ARGUMENT", "address 10.2.0.5 is outside subnet 10.1.0.0/24"],
    ["fd00::5", "INVALID_ARGUMENT", "address fd00::5 is outside subnet 10.1.0.0/24"],
    ["10.1.0.300", "INVALID_ARGUMENT", 'invalid address "10.1.0.300": octet 300 is out of range 0-255'],
    [
      "10.1.0.255",
      "INVALID_ARGUMENT",
      "address 10.1.0.255 is the broadcast address of subnet 10.1.0.0/24 and cannot be assigned",
    ],
  ];
  for (const [address, code, message] of cases) {
    t.throws(() => ipam.requestAddress("n1", { owner: "x", address }), { code, message });
  }
  t.throws(() => ipam.requestAddress("nope", { owner: "x" }), {
    code: "NOT_FOUND",
    message: 'address pool "nope" not found',
  });
  t.false(ipam.releaseAddress("n1", "10.1.0.77"), "unknown address: no-op");
  t.false(ipam.releaseAddress("nope", "10.1.0.5"), "unknown pool: no-op");
  t.is(ipam.requestAddress("n1", { owner: "x" }), "10.1.0.2", "static requests do not move the cursor");
});

test("/31 and /32 pools use every address", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "p31", subnet: "10.9.0.0/31" });
  t.is(ipam.requestAddress("p31", { owner: "a" }), "10.9.0.1");
  pool(ipam, { id: "p32", subnet: "10.9.1.1/32", gateway: false });
  t.is(ipam.requestAddress("p32", { owner: "a" }), "10.9.1.1");
});

test("big pools are not enumerated: a /8 and an IPv6 /64", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.0.0.0/8", ipRange: "10.255.255.0/24" });
  ipam.requestPool({ id: "v6", owner: "v6", family: 6, subnet: "fd12:3456:789a:1::/64" });
  const started = Date.now();
  for (let i = 0; i < 200; i++) ipam.requestAddress("n1", { owner: `e${i}` });
  for (let i = 0; i < 200; i++) ipam.requestAddress("v6", { owner: `e${i}` });
  t.is(ipam.requestAddress("v6", { owner: "last" }), "fd12:3456:789a:1::ca");
  t.true(Date.now() - started < 2000);
});

test("a long run of taken addresses after the cursor is walked page by page", (t) => {
  const { ipam } = fresh();
  pool(ipam, { id: "n1", subnet: "10.0.0.0/20" });
  for (let i = 2; i < 1000; i++)
    ipam.requestAddress("n1", { owner: "s", address: formatAddress(4, 0x0a000000n + BigInt(i)) });
  t.is(ipam.requestAddress("n1", { owner: "d" }), formatAddress(4, 0x0a000000n + 1000n));
});

// --- allocator properties ---------------------------------------------------------------------

test("property: nextFree matches a brute-force search", (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 24, max: 30 }),
      fc.uniqueArray(fc.integer({ min: 0, max: 255 })),
      fc.integer({ min: -1, max: 256 }),
      (len, takenOffsets, cursorOffset) => {
        const g = geometryOf({ subnet: `10.0.0.0/${len}` });
        const taken = takenOffsets.map((o) => 0x0a000000n + BigInt(o)).sort((a, b) => (a < b ? -1 : 1));
        const cursor = 0x0a000000n + BigInt(cursorOffset);
        const got = nextFree(g, cursor, sortedTaken(taken));
        const order: bigint[] = [];
        const start = cursor >= g.dynFirst && cursor < g.dynLast ? cursor + 1n : g.dynFirst;
        for (let a = start; a <= g.dynLast; a++) order.push(a);
        for (let a = g.dynFirst; a < start; a++) order.push(a);
        return got === order.find((a) => !taken.includes(a));
      },
    ),
  );
  t.pass();
});

type Op = { kind: "dyn" } | { kind: "static"; offset: number } | { kind: "release"; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: "dyn" as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 300 }).map((offset) => ({ kind: "static" as const, offset })),
  },
  { weight: 3, arbitrary: fc.nat().map((pick) => ({ kind: "release" as const, pick })) },
);

const poolArb = fc.oneof(
  fc.tuple(fc.integer({ min: 26, max: 30 }), fc.option(fc.integer({ min: 0, max: 3 }))).map(([len, r]) => ({
    family: 4 as const,
    subnet: `10.7.0.0/${len}`,
    ipRange: r === null ? undefined : `10.7.0.${r * 2 ** (32 - len - 2)}/${len + 2}`,
  })),
  fc
    .integer({ min: 122, max: 126 })
    .map((len) => ({ family: 6 as const, subnet: `fd00:7::/${len}`, ipRange: undefined })),
);

test("property: addresses are unique while held, inside the pool, never reserved, and come back", (t) => {
  fc.assert(
    fc.property(poolArb, fc.array(opArb, { maxLength: 80 }), (spec, ops) => {
      const { ipam } = fresh();
      let p: PoolRecord;
      try {
        p = ipam.requestPool({ id: "p", owner: "n", ...spec });
      } catch {
        fc.pre(false); // e.g. a /32 range on the network address: refused, tested elsewhere
        return true;
      }
      const g = geometryOf(p);
      const subnet = parseCidr(p.subnet);
      const held = new Set<string>([p.gateway!]);
      const dynFree = () => {
        let n = 0;
        for (let a = g.dynFirst; a <= g.dynLast; a++) if (!held.has(formatAddress(p.family, a))) n++;
        return n;
      };
      let lastDyn: string | undefined;
      for (const op of ops) {
        if (op.kind === "release") {
          const list = [...held].filter((a) => a !== p.gateway);
          if (list.length === 0) continue;
          const victim = list[op.pick % list.length]!;
          if (!ipam.releaseAddress("p", victim)) return false;
          held.delete(victim);
          continue;
        }
        const freeBefore = dynFree();
        let a: string;
        try {
          const address =
            op.kind === "static" ? formatAddress(p.family, subnet.network + BigInt(op.offset)) : undefined;
          a = ipam.requestAddress("p", { owner: "e", address });
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (op.kind === "dyn") {
            if (code !== "EXHAUSTED" || freeBefore !== 0) return false;
          } else if (code !== "CONFLICT" && code !== "INVALID_ARGUMENT") return false;
          continue;
        }
        const v = parseAddress(a).value;
        if (held.has(a)) return false; // handed out twice
        if (!contains(subnet, { family: p.family, value: v })) return false;
        if (v === subnet.network || (p.family === 4 && subnet.prefixLen < 31 && v === lastAddress(subnet)))
          return false;
        if (op.kind === "dyn" && (v < g.dynFirst || v > g.dynLast)) return false;
        // round robin: the previous dynamic address (even if released since) comes back only
        // when nothing else is free
        if (op.kind === "dyn" && a === lastDyn && freeBefore > 1) return false;
        if (op.kind === "dyn") lastDyn = a;
        held.add(a);
      }
      // everything free, released ones included, is eventually handed out again
      while (dynFree() > 0) {
        const a = ipam.requestAddress("p", { owner: "fill" });
        if (held.has(a)) return false;
        held.add(a);
      }
      return true;
    }),
  );
  t.pass();
});
