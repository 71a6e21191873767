/**
 * The service table's renderer: golden text for a small state, properties over arbitrary services
 * (a rule set that depends only on the backend counts in use, exact slot spread for VIPs and published
 * ports, diffs that turn one state into the other, create the groups they need and touch only their
 * own service), validation, and the kernel's parser (`nft -c` in a throwaway namespace).
 */
import test from "ava";
import fc from "fast-check";
import { elementsOf, groupCapacity, groupsOf, SIZED_FROM, TABLE } from "../../lib/ingress/layout.js";
import {
  type Backend,
  MAX_BACKENDS,
  type MeshPort,
  type Service,
  type SnatEntry,
  type Vip,
  validateService,
  validateServices,
  validateSnat,
} from "../../lib/ingress/model.js";
import { renderChange, renderSnatChange, renderTable, renderVipChange } from "../../lib/ingress/render.js";
import { run } from "../helpers/proc.js";
import { applyElementScript, tableElements, tableObjects } from "./ingress-fake-nft.js";

// --- fixtures ------------------------------------------------------------------------------------

const WEB: Service = {
  id: 1,
  name: "web",
  vips: [
    { ip: "10.20.0.250", port: 80, proto: "tcp" },
    { ip: "10.20.0.250", port: 53, proto: "udp" },
  ],
  // out of order on purpose: slots follow address order
  backends: [
    { ip: "10.20.0.4", port: 8080 },
    { ip: "10.20.0.3", port: 8080 },
  ],
  mesh: [],
  affinity: "none",
};
const STICKY: Service = {
  id: 2,
  name: "sticky",
  vips: [{ ip: "10.20.0.251", port: 443, proto: "tcp" }],
  backends: [
    { ip: "10.20.0.5", port: 8443 },
    { ip: "10.20.0.6", port: 8443 },
    { ip: "10.20.0.7", port: 8443 },
  ],
  mesh: [],
  affinity: "client-ip",
};
const EMPTY: Service = {
  id: 3,
  name: "empty",
  vips: [{ ip: "10.20.0.252", port: 80, proto: "tcp" }],
  backends: [],
  mesh: [],
  affinity: "none",
};
/** Published ports only (DNS round robin): one with a local and a remote backend, one with none. */
const PUB: Service = {
  id: 4,
  name: "pub",
  vips: [],
  backends: [],
  mesh: [
    {
      proto: "tcp",
      port: 8443,
      backends: [
        { ip: "10.30.0.5", port: 443 },
        { ip: "10.20.0.9", port: 443 },
      ],
    },
    { proto: "udp", port: 5353, backends: [] },
  ],
  affinity: "client-ip",
};
/** A VIP service that also publishes its port through the mesh. */
const BOTH: Service = {
  id: 5,
  name: "both",
  vips: [{ ip: "10.20.0.253", port: 80, proto: "tcp" }],
  backends: [{ ip: "10.20.0.8", port: 80 }],
  mesh: [{ proto: "tcp", port: 30080, backends: [{ ip: "10.20.0.8", port: 80 }] }],
  affinity: "none",
};
const SNAT: SnatEntry[] = [
  { backend: "10.30.0.5", source: "10.30.0.254" },
  { backend: "10.30.0.4", source: "10.30.0.254" },
];

/** The text of the block that starts with `  ${header} {` (maps and chains are one level deep). */
function block(text: string, header: string): string {
  const lines = text.split("\n");
  const start = lines.indexOf(`  ${header} {`);
  if (start < 0) return `no block ${header}`;
  const end = lines.indexOf("  }", start);
  return lines.slice(start, end + 1).join("\n");
}

/** The selection groups a table of these services holds (what the programmer would remember). */
const groupsIn = (services: readonly Service[]) => {
  const out = new Set<string>();
  for (const s of services) groupsOf(s, out);
  return out;
};

test("golden: the service-dependent blocks and the fixed chains of a small state", (t) => {
  const text = renderTable([WEB, STICKY, EMPTY, PUB, BOTH], SNAT);
  t.true(text.startsWith(`table ${TABLE} {}\ndelete table ${TABLE}\ntable ${TABLE} {\n`));
  t.true(text.endsWith("\n}\n"));
  t.is(
    block(text, "map services"),
    `  map services {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = {
      10.20.0.250 . tcp . 80 : jump lb_tcp_2, 10.20.0.250 . udp . 53 : jump lb_udp_2, 10.20.0.251 . tcp . 443 : jump aff_tcp_3, 10.20.0.252 . tcp . 80 : jump refuse, 10.20.0.253 . tcp . 80 : jump lba_tcp_1
    }
  }`,
  );
  t.is(
    [block(text, "map be_tcp_2"), block(text, "map be_udp_2"), block(text, "map be_tcp_3")].join("\n"),
    `  map be_tcp_2 {
    typeof ip daddr . th dport . numgen random mod 2 : ip daddr . th dport
    elements = {
      10.20.0.250 . 80 . 0 : 10.20.0.3 . 8080, 10.20.0.250 . 80 . 1 : 10.20.0.4 . 8080
    }
  }
  map be_udp_2 {
    typeof ip daddr . th dport . numgen random mod 2 : ip daddr . th dport
    elements = {
      10.20.0.250 . 53 . 0 : 10.20.0.3 . 8080, 10.20.0.250 . 53 . 1 : 10.20.0.4 . 8080
    }
  }
  map be_tcp_3 {
    typeof ip daddr . th dport . numgen random mod 3 : ip daddr . th dport
    elements = {
      10.20.0.251 . 443 . 0 : 10.20.0.5 . 8443, 10.20.0.251 . 443 . 1 : 10.20.0.6 . 8443, 10.20.0.251 . 443 . 2 : 10.20.0.7 . 8443
    }
  }`,
  );
  // only the groups in use: no map or chain for 4 backends, nor for 3 over UDP
  t.is(block(text, "map be_tcp_4"), "no block map be_tcp_4");
  t.is(block(text, "chain lb_udp_3"), "no block chain lb_udp_3");
  t.deepEqual(
    [...text.matchAll(/^ {2}(?:map|chain) ((?:m?be|m?lb|m?aff)a?_\S+) \{$/gm)].map((m) => m[1]),
    [
      ...["bea_tcp_1", "be_tcp_2", "be_tcp_3", "be_udp_2", "mbe_tcp_1", "mbe_tcp_2"],
      ...[
        "lba_tcp_1",
        "affa_tcp_1",
        "lb_tcp_2",
        "aff_tcp_2",
        "lb_tcp_3",
        "aff_tcp_3",
        "lb_udp_2",
        "aff_udp_2",
      ],
      ...["mlb_tcp_1", "maff_tcp_1", "mlb_tcp_2", "maff_tcp_2"],
    ],
  );
  t.is(
    [block(text, "map mesh"), block(text, "map mbe_tcp_1"), block(text, "map mbe_tcp_2")].join("\n"),
    `  map mesh {
    type inet_proto . inet_service : verdict
    elements = {
      tcp . 8443 : jump maff_tcp_2, udp . 5353 : jump refuse, tcp . 30080 : jump mlb_tcp_1
    }
  }
  map mbe_tcp_1 {
    typeof th dport . numgen random mod 1 : ip daddr . th dport
    elements = {
      30080 . 0 : 10.20.0.8 . 80
    }
  }
  map mbe_tcp_2 {
    typeof th dport . numgen random mod 2 : ip daddr . th dport
    elements = {
      8443 . 0 : 10.20.0.9 . 443, 8443 . 1 : 10.30.0.5 . 443
    }
  }`,
  );
  t.is(
    [block(text, "set vips"), block(text, "map mesh_snat")].join("\n"),
    `  set vips {
    type ipv4_addr
    elements = {
      10.20.0.250, 10.20.0.251, 10.20.0.252, 10.20.0.253
    }
  }
  map mesh_snat {
    type ipv4_addr : ipv4_addr
    elements = {
      10.30.0.4 : 10.30.0.254, 10.30.0.5 : 10.30.0.254
    }
  }`,
  );
  t.is(
    [
      block(text, "chain refuse"),
      block(text, "chain prerouting"),
      block(text, "chain output"),
      block(text, "chain input"),
      block(text, "chain postrouting"),
      block(text, "chain lb_tcp_3"),
      block(text, "chain aff_tcp_3"),
      block(text, "chain lb_udp_2"),
      block(text, "chain mlb_tcp_2"),
      block(text, "chain maff_tcp_2"),
      block(text, "map bea_tcp_1"),
      block(text, "chain lba_tcp_1"),
    ].join("\n"),
    `  chain refuse {
    meta l4proto tcp reject with tcp reset
    reject
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr . meta l4proto . th dport vmap @services
    fib daddr type local ip daddr != @vips meta l4proto . th dport vmap @mesh
  }
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr @vips ct mark set ct mark | 0x01000000
    ip daddr . meta l4proto . th dport vmap @services
    fib daddr type local ip daddr != 127.0.0.0/8 ip daddr != @vips meta l4proto . th dport vmap @mesh
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ip daddr @vips ct state new meta l4proto { tcp, udp } jump refuse
  }
  chain postrouting {
    type nat hook postrouting priority srcnat - 1; policy accept;
    ct mark & 0x01000000 != 0 snat to ip daddr map @mesh_snat
  }
  chain lb_tcp_3 {
    meta l4proto tcp dnat to ip daddr . th dport . numgen random mod 3 map @be_tcp_3
    goto refuse
  }
  chain aff_tcp_3 {
    meta l4proto tcp dnat to ip daddr . th dport . jhash ip saddr mod 3 seed 0x74726c73 map @be_tcp_3
    goto refuse
  }
  chain lb_udp_2 {
    meta l4proto udp dnat to ip daddr . th dport . numgen random mod 2 map @be_udp_2
    goto refuse
  }
  chain mlb_tcp_2 {
    meta l4proto tcp ct mark set ct mark | 0x01000000 dnat to th dport . numgen random mod 2 map @mbe_tcp_2
    goto refuse
  }
  chain maff_tcp_2 {
    meta l4proto tcp ct mark set ct mark | 0x01000000 dnat to th dport . jhash ip saddr mod 2 seed 0x74726c73 map @mbe_tcp_2
    goto refuse
  }
  map bea_tcp_1 {
    typeof ip daddr . th dport . numgen random mod 1 : ip daddr
    elements = {
      10.20.0.253 . 80 . 0 : 10.20.0.8
    }
  }
  chain lba_tcp_1 {
    meta l4proto tcp dnat to ip daddr . th dport . numgen random mod 1 map @bea_tcp_1
    goto refuse
  }`,
  );
  // many elements: eight to a line
  const big = renderTable([
    { ...STICKY, vips: Array.from({ length: 9 }, (_, i) => ({ ...STICKY.vips[0]!, port: 1 + i })) },
  ]);
  t.regex(
    block(big, "map services"),
    /\n {6}(10\.20\.0\.251 \. tcp \. \d : jump aff_tcp_3, ){7}10\.20\.0\.251 \. tcp \. 8 : jump aff_tcp_3,\n {6}10\.20\.0\.251 \. tcp \. 9 : jump aff_tcp_3\n {4}\}/,
  );
});

test("golden: a backend joining rewrites only that service's elements, in one script; a new backend count gets its group first", (t) => {
  const after: Service = { ...WEB, backends: [...WEB.backends, { ip: "10.20.0.9", port: 8080 }] };
  const groups = groupsIn([WEB, STICKY]);
  t.deepEqual([...groups].sort(), ["be_tcp_2", "be_tcp_3", "be_udp_2"]);
  t.is(
    renderChange(WEB, after, groups),
    `create map ip trellis_svc be_udp_3 { typeof ip daddr . th dport . numgen random mod 3 : ip daddr . th dport; }
create chain ip trellis_svc lb_udp_3
add rule ip trellis_svc lb_udp_3 meta l4proto udp dnat to ip daddr . th dport . numgen random mod 3 map @be_udp_3
add rule ip trellis_svc lb_udp_3 goto refuse
create chain ip trellis_svc aff_udp_3
add rule ip trellis_svc aff_udp_3 meta l4proto udp dnat to ip daddr . th dport . jhash ip saddr mod 3 seed 0x74726c73 map @be_udp_3
add rule ip trellis_svc aff_udp_3 goto refuse
delete element ip trellis_svc services { 10.20.0.250 . tcp . 80, 10.20.0.250 . udp . 53 }
delete element ip trellis_svc be_tcp_2 { 10.20.0.250 . 80 . 0, 10.20.0.250 . 80 . 1 }
delete element ip trellis_svc be_udp_2 { 10.20.0.250 . 53 . 0, 10.20.0.250 . 53 . 1 }
add element ip trellis_svc services { 10.20.0.250 . tcp . 80 : jump lb_tcp_3, 10.20.0.250 . udp . 53 : jump lb_udp_3 }
add element ip trellis_svc be_tcp_3 { 10.20.0.250 . 80 . 0 : 10.20.0.3 . 8080, 10.20.0.250 . 80 . 1 : 10.20.0.4 . 8080, 10.20.0.250 . 80 . 2 : 10.20.0.9 . 8080 }
add element ip trellis_svc be_udp_3 { 10.20.0.250 . 53 . 0 : 10.20.0.3 . 8080, 10.20.0.250 . 53 . 1 : 10.20.0.4 . 8080, 10.20.0.250 . 53 . 2 : 10.20.0.9 . 8080 }
`,
  );
  t.deepEqual(
    [...groups].sort(),
    ["be_tcp_2", "be_tcp_3", "be_udp_2", "be_udp_3"],
    "the group is remembered",
  );
  t.false(renderChange(after, WEB, groups).includes("create"), "the groups are there: elements only");
  // same count, one backend swapped: only its slots change, the verdict stays
  const swapped: Service = {
    ...WEB,
    backends: [
      { ip: "10.20.0.3", port: 8080 },
      { ip: "10.20.0.8", port: 8080 },
    ],
  };
  t.is(
    renderChange(WEB, swapped, groups),
    `delete element ip trellis_svc be_tcp_2 { 10.20.0.250 . 80 . 1 }
delete element ip trellis_svc be_udp_2 { 10.20.0.250 . 53 . 1 }
add element ip trellis_svc be_tcp_2 { 10.20.0.250 . 80 . 1 : 10.20.0.8 . 8080 }
add element ip trellis_svc be_udp_2 { 10.20.0.250 . 53 . 1 : 10.20.0.8 . 8080 }
`,
  );
  // the last backend leaves: the VIP stays, now refusing
  t.is(
    renderChange(STICKY, { ...STICKY, backends: [] }, groups),
    `delete element ip trellis_svc services { 10.20.0.251 . tcp . 443 }
delete element ip trellis_svc be_tcp_3 { 10.20.0.251 . 443 . 0, 10.20.0.251 . 443 . 1, 10.20.0.251 . 443 . 2 }
add element ip trellis_svc services { 10.20.0.251 . tcp . 443 : jump refuse }
`,
  );
  t.is(
    renderChange(EMPTY, { ...EMPTY, affinity: "client-ip" }, groups),
    "",
    "affinity of a service without backends changes nothing in the kernel",
  );
  t.is(renderChange(WEB, WEB, groups), "");
});

test("golden: a published port's backend joining touches only the mesh maps; VIP addresses and SNAT by element", (t) => {
  const grown: Service = {
    ...PUB,
    mesh: [
      { ...PUB.mesh[0]!, backends: [...PUB.mesh[0]!.backends, { ip: "10.20.0.10", port: 443 }] },
      PUB.mesh[1]!,
    ],
  };
  const groups = groupsIn([PUB, STICKY]);
  t.is(
    renderChange(PUB, grown, groups),
    `create map ip trellis_svc mbe_tcp_3 { typeof th dport . numgen random mod 3 : ip daddr . th dport; }
create chain ip trellis_svc mlb_tcp_3
add rule ip trellis_svc mlb_tcp_3 meta l4proto tcp ct mark set ct mark | 0x01000000 dnat to th dport . numgen random mod 3 map @mbe_tcp_3
add rule ip trellis_svc mlb_tcp_3 goto refuse
create chain ip trellis_svc maff_tcp_3
add rule ip trellis_svc maff_tcp_3 meta l4proto tcp ct mark set ct mark | 0x01000000 dnat to th dport . jhash ip saddr mod 3 seed 0x74726c73 map @mbe_tcp_3
add rule ip trellis_svc maff_tcp_3 goto refuse
delete element ip trellis_svc mesh { tcp . 8443 }
delete element ip trellis_svc mbe_tcp_2 { 8443 . 0, 8443 . 1 }
add element ip trellis_svc mesh { tcp . 8443 : jump maff_tcp_3 }
add element ip trellis_svc mbe_tcp_3 { 8443 . 0 : 10.20.0.9 . 443, 8443 . 1 : 10.20.0.10 . 443, 8443 . 2 : 10.30.0.5 . 443 }
`,
  );
  // a published port with no backend left refuses, like a VIP
  t.is(
    renderChange(BOTH, { ...BOTH, mesh: [{ ...BOTH.mesh[0]!, backends: [] }] }, groupsIn([BOTH])),
    `delete element ip trellis_svc mesh { tcp . 30080 }
delete element ip trellis_svc mbe_tcp_1 { 30080 . 0 }
add element ip trellis_svc mesh { tcp . 30080 : jump refuse }
`,
  );
  t.is(
    renderVipChange({ add: ["10.20.0.1", "10.20.0.2"], remove: ["10.20.0.3"] }),
    `delete element ip trellis_svc vips { 10.20.0.3 }
add element ip trellis_svc vips { 10.20.0.1, 10.20.0.2 }
`,
  );
  t.is(renderVipChange({ add: [], remove: [] }), "");
  t.is(
    renderSnatChange(SNAT, [
      { backend: "10.30.0.5", source: "10.30.0.253" },
      { backend: "10.30.0.6", source: "10.30.0.254" },
    ]),
    `delete element ip trellis_svc mesh_snat { 10.30.0.5, 10.30.0.4 }
add element ip trellis_svc mesh_snat { 10.30.0.5 : 10.30.0.253, 10.30.0.6 : 10.30.0.254 }
`,
  );
  t.is(renderSnatChange(SNAT, [...SNAT].reverse()), "", "order does not matter");
});

// --- arbitraries ---------------------------------------------------------------------------------

const octet = fc.integer({ min: 0, max: 255 });
const ipArb = fc.tuple(octet, octet).map(([a, b]) => `10.${a}.${b}.1`);
const portArb = fc.integer({ min: 1, max: 65535 });
const vipArb: fc.Arbitrary<Vip> = fc.record({
  ip: ipArb,
  port: portArb,
  proto: fc.constantFrom("tcp" as const, "udp" as const),
});
const backendArb: fc.Arbitrary<Backend> = fc.record({
  ip: fc.tuple(octet, octet).map(([a, b]) => `172.16.${a}.${b}`),
  port: portArb,
});
const backendsArb = fc.uniqueArray(backendArb, { maxLength: 12, selector: (b) => `${b.ip}:${b.port}` });
const meshArb: fc.Arbitrary<MeshPort> = fc.record({
  proto: fc.constantFrom("tcp" as const, "udp" as const),
  port: portArb,
  backends: backendsArb,
});
/** Half of them from a few addresses and ports, so services often share a VIP address. */
const sharedVipArb: fc.Arbitrary<Vip> = fc.record({
  ip: fc.constantFrom("10.96.0.1", "10.96.0.2", "10.96.0.3"),
  port: fc.constantFrom(53, 80, 443),
  proto: fc.constantFrom("tcp" as const, "udp" as const),
});
/** Backends on `port` only: the daemon's VIP units (and published ports that keep their port). */
const onPort = (backends: Backend[], port: number) => [
  ...new Map(backends.map((b) => [b.ip, { ip: b.ip, port }])).values(),
];
const serviceFields = fc
  .record({
    vips: fc.uniqueArray(fc.oneof(vipArb, sharedVipArb), {
      maxLength: 3,
      selector: (v) => `${v.ip}/${v.port}/${v.proto}`,
    }),
    backends: backendsArb,
    mesh: fc.uniqueArray(meshArb, { maxLength: 2, selector: (m) => `${m.proto}/${m.port}` }),
    affinity: fc.constantFrom("none" as const, "client-ip" as const),
    samePort: fc.boolean(),
  })
  .map(({ samePort, ...f }) =>
    samePort
      ? {
          ...f,
          backends: f.vips[0] ? onPort(f.backends, f.vips[0].port) : f.backends,
          mesh: f.mesh.map((m) => ({ ...m, backends: onPort(m.backends, m.port) })),
        }
      : f,
  );
const vipId = (v: Vip) => `${v.ip}/${v.port}/${v.proto}`;
const meshId = (m: MeshPort) => `${m.proto}/${m.port}`;
/** Services with distinct ids and no VIP or published port claimed twice. */
const servicesArb = fc
  .array(serviceFields, { maxLength: 8 })
  .map((list) => {
    const seenVips = new Set<string>();
    const seenPorts = new Set<string>();
    return list.map((f, i) => {
      const vips = f.vips.filter((v) => !seenVips.has(vipId(v)));
      for (const v of vips) seenVips.add(vipId(v));
      const mesh = f.mesh.filter((m) => !seenPorts.has(meshId(m)));
      for (const m of mesh) seenPorts.add(meshId(m));
      return { id: i, name: `s${i}`, ...f, vips, mesh };
    });
  })
  .map((list) => list.filter((s) => s.vips.length > 0 || s.mesh.length > 0));
const snatArb: fc.Arbitrary<SnatEntry[]> = fc.uniqueArray(
  fc.record({ backend: backendArb.map((b) => b.ip), source: ipArb }),
  { maxLength: 4, selector: (e) => e.backend },
);

// --- helpers over rendered text ------------------------------------------------------------------

/** Rule lines of a rendered table: everything inside a chain except its `type ... hook` line. */
function ruleLines(text: string): string[] {
  const rules: string[] = [];
  let inChain = false;
  for (const line of text.split("\n")) {
    if (/^ {2}chain \S+ \{$/.test(line)) inChain = true;
    else if (line === "  }") inChain = false;
    else if (inChain && !line.includes(" hook ")) rules.push(line.trim());
  }
  return rules;
}

/** The map elements of a rendered table: what renderChange() manages (the programmer keeps @vips,
 * which services share, and @mesh_snat). */
const mapElements = (text: string) =>
  new Set([...tableElements(text)].filter((e) => !e.startsWith("vips ") && !e.startsWith("mesh_snat ")));

/** The table with every `elements = { ... }` block and `size` removed: what does not depend on the
 * number of services. */
const skeleton = (text: string) =>
  text.replace(/\n {4}elements = \{\n[\s\S]*?\n {4}\}/g, "").replace(/\n {4}size \d+/g, "");

const many = (count: number, backends: number): Service[] =>
  Array.from({ length: count }, (_, i) => ({
    id: i,
    name: `svc${i}`,
    vips: [{ ip: `10.96.${i >> 8}.${i & 255}`, port: 80, proto: "tcp" as const }],
    backends: Array.from({ length: backends }, (_, j) => ({
      ip: `10.20.${(i * backends + j) >> 8}.${(i * backends + j) & 255}`,
      port: 8080,
    })),
    // every fourth also published through the mesh
    mesh:
      i % 4 === 0
        ? [
            {
              proto: "tcp" as const,
              port: 1024 + i,
              backends: [{ ip: `10.21.${i >> 8}.${i & 255}`, port: 80 }],
            },
          ]
        : [],
    affinity: "none" as const,
  }));

// --- properties ----------------------------------------------------------------------------------

test("the rule set depends on the backend counts in use, never on the number of services: only map elements grow", (t) => {
  const empty = renderTable([]);
  t.is(ruleLines(empty).length, 9, "refuse (2), prerouting (2), output (3), input, postrouting");
  // every service: a VIP with 5 backends; every fourth also a published port with 1 backend
  const first = renderTable(many(1, 5));
  const rules = ruleLines(first);
  t.is(rules.length, 9 + 2 * 4, "two groups in use (be_tcp_5, mbe_tcp_1): 2 chains of 2 rules each");
  for (const n of [10, 1000]) {
    const text = renderTable(many(n, 5), SNAT);
    t.deepEqual(ruleLines(text), rules, `${n} services`);
    t.is(skeleton(text), skeleton(first), `${n} services: nothing but elements (and sizes) differs`);
    // per service: VIP verdict + 5 slots + its @vips address; every fourth: mesh verdict + 1 slot
    const mesh = Math.ceil(n / 4) * 2;
    t.is(tableElements(text).size, n * (1 + 5 + 1) + mesh + SNAT.length);
  }
  // at most a group per protocol and count, for VIPs and for the mesh
  const all = Array.from({ length: 2 * MAX_BACKENDS }, (_, i): Service => {
    const n = (i % MAX_BACKENDS) + 1;
    const proto = i < MAX_BACKENDS ? ("tcp" as const) : ("udp" as const);
    const backends = Array.from({ length: n }, (_, j) => ({ ip: `10.20.${j}.1`, port: 80 }));
    return {
      id: i,
      name: `s${i}`,
      vips: [{ ip: `10.96.${i >> 8}.${i & 255}`, port: 80, proto }],
      backends,
      mesh: [{ proto, port: 1000 + i, backends }],
      affinity: "none",
    };
  });
  t.is(
    ruleLines(renderTable(all)).length,
    9 + 4 * 2 * 2 * MAX_BACKENDS,
    "with the backends on the port: 512 of the 1 024 possible groups",
  );
});

test("a large backend map gets a size with room to double; small ones none", async (t) => {
  const text = renderTable(many(600, 2));
  t.regex(
    block(text, "map be_tcp_2"),
    /^ {2}map be_tcp_2 \{\n {4}typeof .+\n {4}size 4096\n {4}elements = \{\n/,
  );
  t.false(block(text, "map mbe_tcp_1").includes("size"), "150 slots");
  t.is(groupCapacity(SIZED_FROM - 1), undefined);
  t.is(groupCapacity(SIZED_FROM), 2 * SIZED_FROM);
  t.is(groupCapacity(50_000), 131_072);
  const r = await nftCheck(text);
  t.is(r.code, 0, r.stderr);
});

test("property: every backend owns exactly one slot per VIP and per published port, so each gets exactly 1/N of new connections", (t) => {
  fc.assert(
    fc.property(servicesArb, (services) => {
      validateServices(services);
      for (const s of services) {
        const n = s.backends.length;
        const els = elementsOf(s);
        for (const v of s.vips) {
          // every slot of this VIP, in whichever map of its protocol
          // backends on the VIP's own port: the address-only group ("a"), the port is kept
          const a = n > 0 && s.backends.every((b) => b.port === v.port) ? "a" : "";
          const target = (b: Backend) => (a ? b.ip : `${b.ip} . ${b.port}`);
          const prefix = `${v.ip} . ${v.port} . `;
          const mine = new RegExp(`^bea?_${v.proto}_`);
          const slots = els.filter((e) => mine.test(e.map) && e.key.startsWith(prefix));
          if (slots.length !== n) return false;
          if (n > 0 && slots.some((e) => e.map !== `be${a}_${v.proto}_${n}`)) return false;
          const slotNumbers = slots.map((e) => Number(e.key.slice(prefix.length))).sort((a, b) => a - b);
          if (slotNumbers.join() !== Array.from({ length: n }, (_, i) => i).join()) return false;
          const targets = new Set(slots.map((e) => e.value));
          if (targets.size !== n) return false;
          if (!s.backends.every((b) => targets.has(target(b)))) return false;
          const verdict = els.find(
            (e) => e.map === "services" && e.key === `${v.ip} . ${v.proto} . ${v.port}`,
          );
          const mode = s.affinity === "client-ip" ? "aff" : "lb";
          const chain = n === 0 ? "refuse" : `${mode}${a}_${v.proto}_${n}`;
          if (verdict?.value !== `jump ${chain}`) return false;
        }
        for (const m of s.mesh) {
          const n = m.backends.length;
          const a = n > 0 && m.backends.every((b) => b.port === m.port) ? "a" : "";
          const target = (b: Backend) => (a ? b.ip : `${b.ip} . ${b.port}`);
          const prefix = `${m.port} . `;
          const mine = new RegExp(`^mbea?_${m.proto}_`);
          const slots = els.filter((e) => mine.test(e.map) && e.key.startsWith(prefix));
          if (slots.length !== n || slots.some((e) => e.map !== `mbe${a}_${m.proto}_${n}`)) return false;
          const slotNumbers = slots.map((e) => Number(e.key.slice(prefix.length))).sort((a, b) => a - b);
          if (slotNumbers.join() !== Array.from({ length: n }, (_, i) => i).join()) return false;
          const targets = new Set(slots.map((e) => e.value));
          if (targets.size !== n || !m.backends.every((b) => targets.has(target(b)))) return false;
          const verdict = els.find((e) => e.map === "mesh" && e.key === `${m.proto} . ${m.port}`)?.value;
          const mode = s.affinity === "client-ip" ? "maff" : "mlb";
          const chain = n === 0 ? "refuse" : `${mode}${a}_${m.proto}_${n}`;
          if (verdict !== `jump ${chain}`) return false;
        }
      }
      return true;
    }),
  );
  t.pass();
});

test("property: the render does not depend on the order of backends or services", (t) => {
  fc.assert(
    fc.property(servicesArb, (services) => {
      const shuffled = [...services].reverse().map((s) => ({
        ...s,
        backends: [...s.backends].reverse(),
        mesh: s.mesh.map((m) => ({ ...m, backends: [...m.backends].reverse() })),
      }));
      return renderTable(services) === renderTable(shuffled);
    }),
  );
  t.pass();
});

test("property: renderChange turns the table of one state into the table of the next, touching one service", (t) => {
  fc.assert(
    fc.property(servicesArb, serviceFields, fc.nat(), (services, fields, pick) => {
      fc.pre(services.length > 0);
      const target = services[pick % services.length]!;
      const others = services.filter((s) => s !== target);
      const taken = new Set(others.flatMap((s) => [...s.vips.map(vipId), ...s.mesh.map(meshId)]));
      const vips = fields.vips.filter((v) => !taken.has(vipId(v)));
      const mesh = fields.mesh.filter((m) => !taken.has(meshId(m)));
      const changed: Service | undefined =
        vips.length + mesh.length > 0 ? { ...target, ...fields, vips, mesh } : undefined;
      const table = renderTable(services);
      const before = mapElements(table);
      const after = mapElements(renderTable(changed ? [...others, changed] : others));
      const script = renderChange(target, changed, groupsIn(services));
      // strict: every map and chain the script uses exists, or the script creates it
      const got = applyElementScript(before, script, tableObjects(table));
      // only the target's keys appear in the script
      const ownKeys = new Set(
        [...elementsOf(target), ...(changed ? elementsOf(changed) : [])].map((e) => e.key),
      );
      const scriptKeys = [...script.matchAll(/^(?:add|delete) element .* \{ (.+) \}$/gm)].flatMap((m) =>
        m[1]!.split(", ").map((i) => i.split(" : ")[0]!),
      );
      return (
        JSON.stringify([...got].sort()) === JSON.stringify([...after].sort()) &&
        scriptKeys.every((k) => ownKeys.has(k))
      );
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test("property: create then remove of a service leaves the elements as they were", (t) => {
  fc.assert(
    fc.property(servicesArb, (services) => {
      fc.pre(services.length > 0);
      const last = services[services.length - 1]!;
      const rest = services.slice(0, -1);
      const table = renderTable(rest);
      const base = mapElements(table);
      const groups = groupsIn(rest);
      const objects = tableObjects(table);
      const added = applyElementScript(base, renderChange(undefined, last, groups), objects);
      const removed = applyElementScript(added, renderChange(last, undefined, groups), objects);
      return (
        JSON.stringify([...added].sort()) ===
          JSON.stringify([...mapElements(renderTable(services))].sort()) &&
        JSON.stringify([...removed].sort()) === JSON.stringify([...base].sort())
      );
    }),
  );
  t.pass();
});

// --- validation ----------------------------------------------------------------------------------

test("validation refuses what the renderer cannot express, naming the service", (t) => {
  const bad = (patch: Partial<Service>) => ({ ...WEB, ...patch });
  const cases: Array<[Service, RegExp]> = [
    [bad({ vips: [] }), /has no VIP and no published port/],
    [bad({ vips: [{ ip: "fd00::1", port: 80, proto: "tcp" }] }), /not an IPv4 address/],
    [bad({ vips: [{ ip: "10.020.0.1", port: 80, proto: "tcp" }] }), /not an IPv4 address/],
    [bad({ vips: [{ ip: "10.20.0.1", port: 0, proto: "tcp" }] }), /port 0 is not 1-65535/],
    [bad({ vips: [{ ip: "10.20.0.1", port: 80, proto: "sctp" as "tcp" }] }), /tcp or udp/],
    [bad({ backends: [WEB.backends[0]!, { ...WEB.backends[0]! }] }), /listed twice/],
    [bad({ id: -1 }), /non-negative integer/],
    [bad({ affinity: "sticky" as "none" }), /unknown affinity/],
    [
      bad({
        backends: Array.from({ length: MAX_BACKENDS + 1 }, (_, i) => ({
          ip: `10.30.${i >> 8}.${i & 255}`,
          port: 80,
        })),
      }),
      /at most 128/,
    ],
    [bad({ mesh: [{ proto: "tcp", port: 0, backends: [] }] }), /published port 0 is not 1-65535/],
    [bad({ mesh: [{ proto: "icmp" as "tcp", port: 80, backends: [] }] }), /published port protocol/],
    [bad({ mesh: [PUB.mesh[1]!, { ...PUB.mesh[1]! }] }), /published port 5353\/udp listed twice/],
    [
      bad({ mesh: [{ proto: "tcp", port: 80, backends: [{ ip: "10.1.1.1", port: 70000 }] }] }),
      /published port 80\/tcp: backend port 70000/,
    ],
    [
      bad({ mesh: [{ proto: "tcp", port: 80, backends: [{ ip: "10.1.1.01", port: 80 }] }] }),
      /published port 80\/tcp backend: "10.1.1.01" is not an IPv4 address/,
    ],
    [
      bad({ mesh: [{ proto: "tcp", port: 80, backends: [WEB.backends[0]!, { ...WEB.backends[0]! }] }] }),
      /published port 80\/tcp: backend 10.20.0.4:8080 listed twice/,
    ],
    [
      bad({
        mesh: [
          {
            proto: "udp",
            port: 53,
            backends: Array.from({ length: MAX_BACKENDS + 1 }, (_, i) => ({ ip: `10.30.0.${i}`, port: 53 })),
          },
        ],
      }),
      /published port 53\/udp: 129 backends, at most 128/,
    ],
  ];
  for (const [service, message] of cases) {
    const err = t.throws(() => validateService(service), { message });
    t.regex(err?.message ?? "", /^service "web" \(id -?1\)/);
    t.is((err as { code?: string } | undefined)?.code, "INVALID_ARGUMENT");
  }
  t.throws(() => validateServices([WEB, { ...STICKY, id: 1 }]), { message: /both have id 1/ });
  t.throws(() => validateServices([WEB, { ...STICKY, vips: [WEB.vips[1]!] }]), {
    message: /both claim 10.20.0.250:53\/udp/,
  });
  t.throws(() => validateServices([PUB, { ...BOTH, mesh: [{ ...PUB.mesh[1]!, backends: [] }] }]), {
    message: /services pub and both both publish 5353\/udp/,
  });
  t.notThrows(() => validateServices([WEB, STICKY, EMPTY, PUB, BOTH]));
  // a published port may equal a VIP port: they are different keys
  t.notThrows(() => validateServices([WEB, { ...PUB, mesh: [{ proto: "tcp", port: 80, backends: [] }] }]));
  // a backend large list (the Set path of the duplicate check) is checked too
  const many = Array.from({ length: 40 }, (_, i) => ({ ip: `10.30.0.${i}`, port: 80 }));
  t.throws(() => validateService({ ...WEB, backends: [...many, many[7]!] }), {
    message: /10.30.0.7:80 listed twice/,
  });
  t.notThrows(() => validateService({ ...WEB, backends: many }));
});

test("validation of SNAT entries: IPv4 addresses, one source per backend", (t) => {
  t.notThrows(() => validateSnat(SNAT));
  t.notThrows(() => validateSnat([]));
  t.throws(() => validateSnat([...SNAT, { backend: "10.30.0.4", source: "10.30.0.1" }]), {
    message: /backend 10.30.0.4 listed twice/,
  });
  t.throws(() => validateSnat([{ backend: "10.30.0.4", source: "fd00::1" }]), {
    message: /source for 10.30.0.4: "fd00::1" is not an IPv4 address/,
  });
  t.throws(() => validateSnat([{ backend: "x", source: "10.1.1.1" }]), { message: /backend: "x"/ });
});

// --- the kernel's parser -------------------------------------------------------------------------

/** nft -c in a fresh network namespace: parsed and validated by the kernel, nothing applied.
 * run() drops node_modules/.bin from PATH, whose `nft` would shadow /usr/sbin/nft. */
const nftCheck = (script: string) => run(["unshare", "--net", "nft", "-c", "-f", "-"], { input: script });

test("nft -c accepts the rendered table followed by changes (join, swap, leave, remove, mesh, VIPs, SNAT) in one batch", async (t) => {
  const grown: Service = { ...WEB, backends: [...WEB.backends, { ip: "10.20.0.9", port: 8080 }] };
  const groups = groupsIn([WEB, STICKY, EMPTY, PUB]);
  const script = [
    renderTable([WEB, STICKY, EMPTY, PUB], SNAT),
    renderChange(WEB, grown, groups),
    renderChange(STICKY, { ...STICKY, backends: [] }, groups),
    renderChange(EMPTY, { ...EMPTY, backends: STICKY.backends }, groups),
    renderChange(grown, undefined, groups),
    renderChange(PUB, { ...PUB, mesh: [{ ...PUB.mesh[1]!, backends: STICKY.backends }] }, groups),
    renderChange(undefined, BOTH, groups),
    renderVipChange({ add: ["10.20.0.253"], remove: ["10.20.0.250"] }),
    renderSnatChange(SNAT, [{ backend: "10.30.0.5", source: "10.30.0.1" }]),
  ].join("");
  const r = await nftCheck(script);
  t.is(r.code, 0, r.stderr);
  t.true(script.includes("create map ip trellis_svc mbe_udp_3 "), "a new group on the way");
  const broken = await nftCheck(`${renderTable([WEB])}add element ${TABLE} be_tcp_2 { nonsense }\n`);
  t.not(broken.code, 0, "the check is real");
});

test("property (nft -c): arbitrary states render tables the kernel accepts", async (t) => {
  await fc.assert(
    fc.asyncProperty(servicesArb, snatArb, async (services, snat) => {
      const r = await nftCheck(renderTable(services, snat));
      if (r.code !== 0) throw new Error(`nft -c failed (${r.code}): ${r.stderr}`);
    }),
    { numRuns: 15 },
  );
  t.pass();
});
