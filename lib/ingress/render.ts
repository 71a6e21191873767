/**
 * Pure rendering of the service data plane (layout in layout.ts): the whole table, created or
 * replaced atomically, and the element-level diffs (one service, the VIP address set, the SNAT map),
 * the fast path for every change. All expect input that passed validateServices()/validateSnat().
 */
import {
  AFFINITY_SEED,
  affinityChain,
  backendMap,
  type Element,
  elementId,
  elementsOf,
  MESH_MAP,
  MESH_MARK,
  meshAffinityChain,
  meshBackendMap,
  meshRandomChain,
  REFUSE_CHAIN,
  randomChain,
  SERVICES_MAP,
  SNAT_MAP,
  TABLE,
  VIPS_SET,
  visitElements,
} from "./layout.js";
import { MAX_BACKENDS, type Service, type SnatEntry } from "./model.js";

const VIP_KEY_EXPR = "ip daddr . meta l4proto . th dport";
const MESH_KEY_EXPR = "meta l4proto . th dport";
const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
const MARK = hex(MESH_MARK);

function renderMap(name: string, header: string, items: readonly string[], kind = "map"): string[] {
  const lines = [`  ${kind} ${name} {`, `    ${header}`];
  if (items.length > 0) lines.push(`    elements = {\n      ${items.join(",\n      ")}\n    }`);
  lines.push("  }");
  return lines;
}

function renderSelectionChains(n: number): string[] {
  // Falling through the dnat (a slot missing from @be_N) must not send the packet on to the VIP,
  // where it would time out: refuse it like a service without backends.
  const pick = (expr: string) => `    dnat to ${VIP_KEY_EXPR} . ${expr} map @${backendMap(n)}`;
  // The mark goes with the dnat in one rule: set whatever the lookup finds (a miss is refused anyway).
  const meshPick = (expr: string) =>
    `    ct mark set ct mark | ${MARK} dnat to ${MESH_KEY_EXPR} . ${expr} map @${meshBackendMap(n)}`;
  const random = `numgen random mod ${n}`;
  const affinity = `jhash ip saddr mod ${n} seed ${hex(AFFINITY_SEED)}`;
  const chain = (name: string, rule: string) => [
    `  chain ${name} {`,
    rule,
    `    goto ${REFUSE_CHAIN}`,
    "  }",
  ];
  return [
    ...chain(randomChain(n), pick(random)),
    ...chain(affinityChain(n), pick(affinity)),
    ...chain(meshRandomChain(n), meshPick(random)),
    ...chain(meshAffinityChain(n), meshPick(affinity)),
  ];
}

function renderBaseChains(): string[] {
  // The mesh answers on the host's own addresses but not on VIPs (local too: a /32 on each bridge),
  // which serve their own ports only.
  const mesh = `ip daddr != @${VIPS_SET} ${MESH_KEY_EXPR} vmap @${MESH_MAP}`;
  return [
    // A fast, explicit refusal: TCP gets a reset, UDP an ICMP port unreachable.
    `  chain ${REFUSE_CHAIN} {`,
    "    meta l4proto tcp reject with tcp reset",
    "    reject",
    "  }",
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    `    ${VIP_KEY_EXPR} vmap @${SERVICES_MAP}`,
    `    fib daddr type local ${mesh}`,
    "  }",
    // Connections the host itself opens (nft 1.0.6 knows `dstnat` only for prerouting). Their source
    // is the VIP or a gateway address every host shares: marked, so a remote backend gets them SNATed.
    // Loopback is left alone: DNAT from 127/8 to another host's address would be dropped as martian.
    "  chain output {",
    "    type nat hook output priority -100; policy accept;",
    `    ip daddr @${VIPS_SET} ct mark set ct mark | ${MARK}`,
    `    ${VIP_KEY_EXPR} vmap @${SERVICES_MAP}`,
    `    fib daddr type local ip daddr != 127.0.0.0/8 ${mesh}`,
    "  }",
    // What reaches a VIP address here was not taken by any of its ports. Only new connections: the
    // replies to a connection the host opened from a VIP address come back to it.
    "  chain input {",
    "    type filter hook input priority filter; policy accept;",
    `    ip daddr @${VIPS_SET} ct state new meta l4proto { tcp, udp } jump ${REFUSE_CHAIN}`,
    "  }",
    // Just before srcnat: the first nat chain that binds a source wins, so this one goes before the
    // bridge firewall's masquerade (and Docker's) for the same connection.
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat - 1; policy accept;",
    `    ct mark & ${MARK} != 0 snat to ip daddr map @${SNAT_MAP}`,
    "  }",
  ];
}

/** The whole table, replacing whatever was there in one transaction (never a moment without it). */
export function renderTable(services: readonly Service[], snat: readonly SnatEntry[] = []): string {
  const byMap = new Map<string, string[]>();
  const vips = new Set<string>();
  // By id, so the text depends only on the set of services (golden tests, comparing renders).
  for (const s of [...services].sort((a, b) => a.id - b.id)) {
    for (const v of s.vips) vips.add(v.ip);
    visitElements(s, (map, key, value) => {
      const items = byMap.get(map);
      if (items) items.push(`${key} : ${value}`);
      else byMap.set(map, [`${key} : ${value}`]);
    });
  }
  const lines = [
    renderDeleteTable().trimEnd(),
    `table ${TABLE} {`,
    ...renderMap(
      SERVICES_MAP,
      "type ipv4_addr . inet_proto . inet_service : verdict",
      byMap.get(SERVICES_MAP) ?? [],
    ),
    ...renderMap(MESH_MAP, "type inet_proto . inet_service : verdict", byMap.get(MESH_MAP) ?? []),
  ];
  for (let n = 1; n <= MAX_BACKENDS; n++) {
    // typeof needs an expression for the slot; the modulus shown is only documentation.
    const header = `typeof ${VIP_KEY_EXPR} . numgen random mod ${n} : ip daddr . th dport`;
    lines.push(...renderMap(backendMap(n), header, byMap.get(backendMap(n)) ?? []));
  }
  for (let n = 1; n <= MAX_BACKENDS; n++) {
    const header = `typeof ${MESH_KEY_EXPR} . numgen random mod ${n} : ip daddr . th dport`;
    lines.push(...renderMap(meshBackendMap(n), header, byMap.get(meshBackendMap(n)) ?? []));
  }
  lines.push(
    ...renderMap(VIPS_SET, "type ipv4_addr", [...vips].sort(), "set"),
    ...renderMap(
      SNAT_MAP,
      "type ipv4_addr : ipv4_addr",
      [...snat].sort(bySnatKey).map((e) => `${e.backend} : ${e.source}`),
    ),
  );
  lines.push(...renderBaseChains());
  for (let n = 1; n <= MAX_BACKENDS; n++) lines.push(...renderSelectionChains(n));
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

const bySnatKey = (a: SnatEntry, b: SnatEntry) =>
  a.backend < b.backend ? -1 : a.backend > b.backend ? 1 : 0;

/** Deletes the table if it exists (creating it empty first makes the delete never fail). */
export function renderDeleteTable(): string {
  return `table ${TABLE} {}\ndelete table ${TABLE}\n`;
}

/** `add`/`delete element` commands, one per map, deletions first (a changed value is both). */
export function renderElementDiff(before: readonly Element[], after: readonly Element[]): string {
  const old = new Map(before.map((e) => [elementId(e), e]));
  const now = new Map(after.map((e) => [elementId(e), e]));
  const deletes = new Map<string, string[]>();
  const adds = new Map<string, string[]>();
  const push = (into: Map<string, string[]>, map: string, item: string) => {
    const list = into.get(map);
    if (list) list.push(item);
    else into.set(map, [item]);
  };
  for (const [id, e] of old) {
    if (now.get(id)?.value !== e.value) push(deletes, e.map, e.key);
  }
  for (const [id, e] of now) {
    if (old.get(id)?.value !== e.value) push(adds, e.map, `${e.key} : ${e.value}`);
  }
  const lines: string[] = [];
  for (const [map, keys] of deletes) lines.push(`delete element ${TABLE} ${map} { ${keys.join(", ")} }`);
  for (const [map, items] of adds) lines.push(`add element ${TABLE} ${map} { ${items.join(", ")} }`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

/**
 * The change from one version of a service to the next (undefined: does not exist), touching only
 * that service's elements. Empty when nothing changed.
 */
export function renderChange(before: Service | undefined, after: Service | undefined): string {
  return renderElementDiff(before ? elementsOf(before) : [], after ? elementsOf(after) : []);
}

/** Adds and removes VIP addresses of @vips (the caller counts the services sharing an address). */
export function renderVipChange(change: { add?: readonly string[]; remove?: readonly string[] }): string {
  const lines: string[] = [];
  if (change.remove?.length)
    lines.push(`delete element ${TABLE} ${VIPS_SET} { ${change.remove.join(", ")} }`);
  if (change.add?.length) lines.push(`add element ${TABLE} ${VIPS_SET} { ${change.add.join(", ")} }`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

const snatElements = (entries: readonly SnatEntry[]): Element[] =>
  entries.map((e) => ({ map: SNAT_MAP, key: e.backend, value: e.source }));

/** The element diff of @mesh_snat from one list of entries to the next. Empty when nothing changed. */
export function renderSnatChange(before: readonly SnatEntry[], after: readonly SnatEntry[]): string {
  return renderElementDiff(snatElements(before), snatElements(after));
}
