/**
 * The nft renderer of the bridge driver: golden text for a small state, properties over arbitrary
 * states (bridges, internal networks, determinism, map elements, port-change symmetry, service
 * address sets), and the kernel's own parser (`nft -c`, in a throwaway network namespace) accepting
 * what it renders.
 */
import test from "ava";
import fc from "fast-check";
import {
  type FirewallNetwork,
  type FirewallState,
  type PublishedPort,
  renderFirewall,
  renderPortChanges,
  renderServiceVipChanges,
} from "../../lib/bridge/firewall.js";
import { FirewallManager, type FirewallSource } from "../../lib/daemon/firewall.js";
import type { Kernel } from "../../lib/kernel/types.js";
import type { NetworkRecord, PoolRecord } from "../../lib/store/records.js";
import { run } from "../helpers/proc.js";

// --- a small state -----------------------------------------------------------------------------

const NORMAL: FirewallNetwork = {
  id: "n1",
  bridgeName: "br-normal",
  internal: false,
  masquerade: true,
  subnets4: ["172.18.0.0/16"],
};
const INTERNAL: FirewallNetwork = {
  id: "n2",
  bridgeName: "br-internal",
  internal: true,
  masquerade: true,
  subnets4: ["172.19.0.0/16"],
};
/** ICC off is enforced by isolated bridge ports, not by nft: it renders like any other network.
 * This one also has masquerading off and two subnets. */
const NO_ICC: FirewallNetwork = {
  id: "n3",
  bridgeName: "br-noicc",
  internal: false,
  masquerade: false,
  subnets4: ["172.20.0.0/16", "172.21.0.0/24"],
};

const PORTS: PublishedPort[] = [
  { proto: "tcp", hostPort: 8080, containerIp: "172.18.0.2", containerPort: 80 },
  { proto: "tcp", hostIp: "127.0.0.1", hostPort: 8443, containerIp: "172.18.0.2", containerPort: 443 },
  { proto: "udp", hostPort: 5353, containerIp: "172.20.0.3", containerPort: 53 },
  { proto: "udp", hostIp: "10.0.0.1", hostPort: 5000, containerIp: "172.20.0.3", containerPort: 5001 },
];

const SMALL: FirewallState = {
  networks: [{ ...NORMAL, services: true }, INTERNAL, NO_ICC],
  ports: PORTS,
  // out of order and with a repeat on purpose: the sets are sorted and each address is one element
  serviceVips: ["172.18.0.250", "172.20.0.250", "172.18.0.250"],
};
const NONE = { serviceVips: [] };

const GOLDEN = `table inet trellis {}
delete table inet trellis
table inet trellis {
  set bridges {
    type ifname
    elements = { "br-normal", "br-internal", "br-noicc" }
  }
  set svc_vips {
    type ipv4_addr
    elements = { 172.18.0.250, 172.20.0.250 }
  }
  map pub4_tcp {
    type inet_service : ipv4_addr . inet_service
    elements = { 8080 : 172.18.0.2 . 80 }
  }
  map pub4_tcp_ip {
    type ipv4_addr . inet_service : ipv4_addr . inet_service
    elements = { 127.0.0.1 . 8443 : 172.18.0.2 . 443 }
  }
  map pub4_udp {
    type inet_service : ipv4_addr . inet_service
    elements = { 5353 : 172.20.0.3 . 53 }
  }
  map pub4_udp_ip {
    type ipv4_addr . inet_service : ipv4_addr . inet_service
    elements = { 10.0.0.1 . 5000 : 172.20.0.3 . 5001 }
  }
  chain prerouting_raw {
    type filter hook prerouting priority raw; policy accept;
    ip saddr 172.19.0.0/16 ip daddr 172.19.0.0/16 notrack
    ip saddr 172.20.0.0/16 ip daddr 172.20.0.0/16 notrack
    ip saddr 172.21.0.0/24 ip daddr 172.21.0.0/24 notrack
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }
  chain publish {
    dnat ip to ip daddr . tcp dport map @pub4_tcp_ip
    dnat ip to tcp dport map @pub4_tcp
    dnat ip to ip daddr . udp dport map @pub4_udp_ip
    dnat ip to udp dport map @pub4_udp
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "br-normal" ip saddr 172.18.0.0/16 ct status dnat ct original ip daddr != @svc_vips masquerade
    ip saddr 172.18.0.0/16 oifname != "br-normal" masquerade
    oifname "br-noicc" ip saddr 172.20.0.0/16 ct status dnat ct original ip daddr != @svc_vips masquerade
    oifname "br-noicc" ip saddr 172.21.0.0/24 ct status dnat ct original ip daddr != @svc_vips masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "br-internal" oifname != "br-internal" drop
    oifname "br-internal" iifname != "br-internal" drop
    iifname "br-normal" oifname "br-normal" accept
    iifname "br-internal" oifname "br-internal" accept
    iifname "br-noicc" oifname "br-noicc" accept
    ct original ip daddr @svc_vips drop
    ct state established,related accept
    ct status dnat accept
    oifname @bridges drop
    iifname @bridges accept
  }
}
`;

test("golden: normal, internal and ICC-off networks with tcp/udp ports, with and without host IP", (t) => {
  t.is(renderFirewall(SMALL), GOLDEN);
});

test("golden: an empty state still defines the table, the empty sets, the maps and the chains", (t) => {
  const text = renderFirewall({ networks: [], ports: [], ...NONE });
  t.true(text.startsWith("table inet trellis {}\ndelete table inet trellis\ntable inet trellis {\n"));
  t.true(text.includes("  set bridges {\n    type ifname\n  }\n"), "no elements line for an empty set");
  t.true(text.includes("  set svc_vips {\n    type ipv4_addr\n  }\n"));
  for (const map of ["pub4_tcp", "pub4_tcp_ip", "pub4_udp", "pub4_udp_ip"]) {
    t.true(text.includes(`  map ${map} {\n`), map);
  }
  t.false(text.includes("elements"));
  t.false(text.includes("masquerade"));
});

test("golden: port changes delete by key, add key : value, deletions first", (t) => {
  t.is(
    renderPortChanges({ add: PORTS.slice(0, 2), remove: PORTS.slice(2) }),
    "delete element inet trellis pub4_udp { 5353 }\n" +
      "delete element inet trellis pub4_udp_ip { 10.0.0.1 . 5000 }\n" +
      "add element inet trellis pub4_tcp { 8080 : 172.18.0.2 . 80 }\n" +
      "add element inet trellis pub4_tcp_ip { 127.0.0.1 . 8443 : 172.18.0.2 . 443 }\n",
  );
  t.is(renderPortChanges({}), "");
  t.is(renderPortChanges({ add: [], remove: [] }), "");
});

test("golden: service VIP changes delete then add", (t) => {
  t.is(
    renderServiceVipChanges({ add: ["172.18.0.251", "172.18.0.252"], remove: ["172.18.0.250"] }),
    "delete element inet trellis svc_vips { 172.18.0.250 }\n" +
      "add element inet trellis svc_vips { 172.18.0.251, 172.18.0.252 }\n",
  );
  t.is(renderServiceVipChanges({ add: ["10.0.0.1"] }), "add element inet trellis svc_vips { 10.0.0.1 }\n");
  t.is(renderServiceVipChanges({}), "");
  t.is(renderServiceVipChanges({ add: [], remove: [] }), "");
});

// --- parsing the rendered text back -------------------------------------------------------------

/** `elements = { a, b }` of every set/map block, by block name. */
function elementsByBlock(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string | undefined;
  for (const line of text.split("\n")) {
    const open = /^ {2}(?:set|map) (\S+) \{$/.exec(line);
    if (open) {
      current = open[1]!;
      out.set(current, []);
      continue;
    }
    if (line === "  }") current = undefined;
    const elements = /^ {4}elements = \{ (.*) \}$/.exec(line);
    if (elements && current !== undefined) out.set(current, elements[1]!.split(", "));
  }
  return out;
}

/** Lines of one chain's body. */
function chainLines(text: string, chain: string): string[] {
  const lines = text.split("\n");
  const start = lines.indexOf(`  chain ${chain} {`);
  if (start < 0) return [];
  const end = lines.indexOf("  }", start);
  return lines.slice(start + 1, end);
}

const mapOf = (p: PublishedPort) => `pub4_${p.proto}${p.hostIp === undefined ? "" : "_ip"}`;
const keyOf = (p: PublishedPort) =>
  p.hostIp === undefined ? `${p.hostPort}` : `${p.hostIp} . ${p.hostPort}`;
const elementOf = (p: PublishedPort) => `${keyOf(p)} : ${p.containerIp} . ${p.containerPort}`;

// --- arbitraries ---------------------------------------------------------------------------------

const ifName = fc.stringMatching(/^[A-Za-z0-9_.-]{1,15}$/).filter((n) => n !== "." && n !== "..");
const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));

/** Networks with distinct bridge names and distinct subnets (10.I.J.0/24, I = network index). */
const networksArb: fc.Arbitrary<FirewallNetwork[]> = fc
  .uniqueArray(ifName, { minLength: 0, maxLength: 8 })
  .chain((names) =>
    fc.tuple(
      ...names.map((bridgeName, i) =>
        fc
          .record({
            internal: fc.boolean(),
            masquerade: fc.boolean(),
            subnetCount: fc.integer({ min: 0, max: 3 }),
            services: fc.boolean(),
          })
          .map(({ internal, masquerade, subnetCount, services }) => ({
            id: `net${i}`,
            bridgeName,
            internal,
            ...(services ? { services } : {}),
            masquerade,
            subnets4: Array.from({ length: subnetCount }, (_, j) => `10.${i}.${j}.0/24`),
          })),
      ),
    ),
  );

const portArb: fc.Arbitrary<PublishedPort> = fc.record(
  {
    proto: fc.constantFrom("tcp" as const, "udp" as const),
    hostIp: ipv4,
    hostPort: fc.integer({ min: 1, max: 65535 }),
    containerIp: ipv4,
    containerPort: fc.integer({ min: 1, max: 65535 }),
  },
  { requiredKeys: ["proto", "hostPort", "containerIp", "containerPort"] },
);

/** Published ports with distinct keys (a key may map to one target only, as the daemon ensures). */
const portsArb = fc.uniqueArray(portArb, {
  maxLength: 20,
  selector: (p) => `${mapOf(p)} ${keyOf(p)}`,
});

const stateArb: fc.Arbitrary<FirewallState> = fc.record({
  networks: networksArb,
  ports: portsArb,
  serviceVips: fc.array(ipv4, { maxLength: 6 }),
});

// --- properties ----------------------------------------------------------------------------------

test("property: every bridge name appears in set bridges, and nothing else does", (t) => {
  fc.assert(
    fc.property(stateArb, (state) => {
      const got = elementsByBlock(renderFirewall(state)).get("bridges") ?? [];
      const want = state.networks.map((n) => JSON.stringify(n.bridgeName));
      return JSON.stringify([...got].sort()) === JSON.stringify([...want].sort());
    }),
  );
  t.pass();
});

test("property: internal networks never get a masquerade rule", (t) => {
  fc.assert(
    fc.property(stateArb, (state) => {
      const post = chainLines(renderFirewall(state), "postrouting").filter((l) => l.includes("masquerade"));
      for (const net of state.networks.filter((n) => n.internal)) {
        const br = JSON.stringify(net.bridgeName);
        for (const line of post) {
          if (line.includes(br)) return false;
          if (net.subnets4.some((s) => line.includes(` ${s} `))) return false;
        }
      }
      // and every non-internal network with masquerading on has one per subnet
      for (const net of state.networks.filter((n) => !n.internal && n.masquerade)) {
        for (const s of net.subnets4) {
          const rule = `    ip saddr ${s} oifname != ${JSON.stringify(net.bridgeName)} masquerade`;
          if (post.filter((l) => l === rule).length !== 1) return false;
        }
      }
      return true;
    }),
  );
  t.pass();
});

test("property: VIPs are the set elements, each once; networks with services keep conntrack, the others notrack inside; every hairpin masquerade spares VIPs", (t) => {
  fc.assert(
    fc.property(stateArb, (state) => {
      const text = renderFirewall(state);
      const blocks = elementsByBlock(text);
      const same = (got: string[] | undefined, want: string[]) =>
        JSON.stringify([...(got ?? [])].sort()) === JSON.stringify([...new Set(want)].sort());
      if (!same(blocks.get("svc_vips"), state.serviceVips)) return false;
      const raw = chainLines(text, "prerouting_raw").filter((l) => l.endsWith(" notrack"));
      const untracked = state.networks.filter((n) => !n.services).flatMap((n) => n.subnets4);
      if (raw.length !== untracked.length) return false;
      if (!untracked.every((s) => raw.some((l) => l.trim().startsWith(`ip saddr ${s} ip daddr ${s}`))))
        return false;
      const hairpin = chainLines(text, "postrouting").filter((l) => l.includes("ct status dnat"));
      return hairpin.every((l) => l.endsWith(" ct status dnat ct original ip daddr != @svc_vips masquerade"));
    }),
  );
  t.pass();
});

test("property: the render is deterministic (same state, or a deep copy of it, gives the same text)", (t) => {
  fc.assert(
    fc.property(stateArb, (state) => {
      const copy = structuredClone(state);
      const a = renderFirewall(state);
      return a === renderFirewall(state) && a === renderFirewall(copy) && a.endsWith("}\n");
    }),
  );
  t.pass();
});

test("property: each published port is exactly one element, in the map of its proto and host-IP kind", (t) => {
  fc.assert(
    fc.property(stateArb, (state) => {
      const blocks = elementsByBlock(renderFirewall(state));
      const all = ["pub4_tcp", "pub4_tcp_ip", "pub4_udp", "pub4_udp_ip"].flatMap((m) => blocks.get(m) ?? []);
      if (all.length !== state.ports.length) return false;
      return state.ports.every(
        (p) =>
          all.filter((e) => e === elementOf(p)).length === 1 &&
          (blocks.get(mapOf(p)) ?? []).includes(elementOf(p)),
      );
    }),
  );
  t.pass();
});

test("property: renderPortChanges add then remove of the same ports mention the same map keys", (t) => {
  const addRe = /^add element inet trellis (\S+) \{ (.+) : \S+ \. \d+ \}$/;
  const delRe = /^delete element inet trellis (\S+) \{ (.+) \}$/;
  const lines = (text: string) => (text === "" ? [] : text.replace(/\n$/, "").split("\n"));
  fc.assert(
    fc.property(portsArb, (ports) => {
      const added = lines(renderPortChanges({ add: ports })).map((l) => {
        const m = addRe.exec(l);
        return m ? `${m[1]} ${m[2]}` : `unparsed: ${l}`;
      });
      const removed = lines(renderPortChanges({ remove: ports })).map((l) => {
        const m = delRe.exec(l);
        return m ? `${m[1]} ${m[2]}` : `unparsed: ${l}`;
      });
      const want = ports.map((p) => `${mapOf(p)} ${keyOf(p)}`);
      return (
        JSON.stringify(added) === JSON.stringify(want) && JSON.stringify(removed) === JSON.stringify(want)
      );
    }),
  );
  t.pass();
});

// --- FirewallManager: the service address sets ----------------------------------------------------

/** A manager over no networks, with an nftApply that records scripts and fails when told to. */
function manager() {
  const scripts: string[] = [];
  let failNext = 0;
  const kernel = {
    nftApply: async (script: string) => {
      scripts.push(script);
      if (failNext > 0) {
        failNext--;
        throw new Error("Error: No such file or directory");
      }
    },
  } as unknown as Kernel;
  const net = {
    id: "n1",
    name: "n1",
    poolIds: ["p1"],
    internal: false,
    bridge: { bridgeName: "br-n1", masquerade: true },
  } as unknown as NetworkRecord;
  const source: FirewallSource = {
    listNetworks: () => [net],
    listEndpoints: () => [],
    listPublishingEndpoints: () => [],
    getPool: (id) =>
      id === "p1" ? ({ id, family: 4, subnet: "10.0.1.0/24", gateway: "10.0.1.1" } as PoolRecord) : undefined,
  };
  return {
    fw: new FirewallManager(kernel, source),
    scripts,
    failOnce: () => {
      failNext = 1;
    },
  };
}

test("FirewallManager.setServiceAddresses: VIPs by element diff, a network's first or last service by full render", async (t) => {
  const { fw, scripts } = manager();
  const notrack = (text: string) =>
    text.includes("ip saddr 10.0.1.0/24 ip daddr 10.0.1.0/24 ip daddr != { 10.0.1.1 } notrack");
  t.true(notrack(fw.render()), "a network without services skips conntrack inside");
  await fw.setServiceAddresses(["10.0.1.250", "10.0.1.250"], ["n1"]);
  t.is(scripts.length, 1);
  t.true(scripts[0]!.startsWith("table inet trellis {}\ndelete table inet trellis\n"), "the whole table");
  t.false(notrack(scripts[0]!), "the network now keeps conntrack");
  t.true(scripts[0]!.includes("  set svc_vips {\n    type ipv4_addr\n    elements = { 10.0.1.250 }\n  }\n"));
  await fw.setServiceAddresses(["10.0.1.251"], ["n1"]);
  t.is(
    scripts[1],
    "delete element inet trellis svc_vips { 10.0.1.250 }\nadd element inet trellis svc_vips { 10.0.1.251 }\n",
  );
  await fw.setServiceAddresses(["10.0.1.251"], ["n1"]);
  t.is(scripts.length, 2, "no transaction for no change");
  t.false(notrack(fw.render()), "remembered for later full renders");
  await fw.setServiceAddresses([], []);
  t.is(scripts.length, 3);
  t.true(notrack(scripts[2]!), "the last service gone: notrack is back");
});

test("FirewallManager.setServiceAddresses: a refused diff becomes a full render; bad addresses change nothing", async (t) => {
  const { fw, scripts, failOnce } = manager();
  failOnce();
  await fw.setServiceAddresses(["10.0.1.250"], []);
  t.is(scripts.length, 2);
  t.true(scripts[1]!.startsWith("table inet trellis {}\ndelete table inet trellis\n"), "the whole table");
  t.true(scripts[1]!.includes("elements = { 10.0.1.250 }"));
  for (const bad of ["fd00::1", "10.0.1.300", "banana"]) {
    const err = await t.throwsAsync(fw.setServiceAddresses([bad], []));
    t.is((err as { code?: string } | undefined)?.code, "INVALID_ARGUMENT", bad);
  }
  t.is(scripts.length, 2, "nothing applied");
  t.true(fw.render().includes("elements = { 10.0.1.250 }"), "the remembered sets are unchanged");
  // concurrent calls: each diff starts from the one before it
  await Promise.all([
    fw.setServiceAddresses(["10.0.1.251"], []),
    fw.setServiceAddresses(["10.0.1.251", "10.0.1.252"], []),
  ]);
  t.deepEqual(scripts.slice(2), [
    "delete element inet trellis svc_vips { 10.0.1.250 }\nadd element inet trellis svc_vips { 10.0.1.251 }\n",
    "add element inet trellis svc_vips { 10.0.1.252 }\n",
  ]);
});

// --- the kernel's parser ------------------------------------------------------------------------

/**
 * `nft -c -f -` in a fresh network namespace: parse and validate against the kernel, apply nothing.
 * run() drops node_modules/.bin from PATH, whose `nft` (a file tracer) would shadow /usr/sbin/nft.
 */
const nftCheck = (script: string) => run(["unshare", "--net", "nft", "-c", "-f", "-"], { input: script });

test("nft -c accepts the rendered ruleset, followed by element changes, in a throwaway namespace", async (t) => {
  const script =
    renderFirewall(SMALL) +
    renderPortChanges({
      remove: [PORTS[0]!, PORTS[3]!],
      add: [
        { proto: "tcp", hostIp: "192.0.2.1", hostPort: 80, containerIp: "172.18.0.9", containerPort: 8080 },
      ],
    }) +
    renderServiceVipChanges({ add: ["172.18.0.251"], remove: ["172.20.0.250"] });
  const { code, stderr } = await nftCheck(script);
  t.is(stderr, "");
  t.is(code, 0);
});

test("nft -c accepts the empty ruleset and rejects a broken one (the check is real)", async (t) => {
  const empty = await nftCheck(renderFirewall({ networks: [], ports: [], ...NONE }));
  t.is(empty.stderr, "");
  t.is(empty.code, 0);
  const broken = await nftCheck(
    renderFirewall(SMALL).replace("dnat ip to tcp dport", "dnat ip to tcp dportx"),
  );
  t.not(broken.code, 0);
  t.regex(broken.stderr, /dportx/);
});

test("property (nft -c): arbitrary states render rulesets the kernel accepts", async (t) => {
  await fc.assert(
    fc.asyncProperty(stateArb, async (state) => {
      const { code, stderr } = await nftCheck(renderFirewall(state));
      if (code !== 0) throw new Error(`nft -c failed (${code}): ${stderr}`);
    }),
    { numRuns: 15 },
  );
  t.pass();
});
