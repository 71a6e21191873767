/**
 * Pure rendering of the service data plane (layout in layout.ts): the whole table, created or
 * replaced atomically, and the element-level diffs (one service, the VIP address set, the SNAT map),
 * the fast path for every change. All expect input that passed validateServices()/validateSnat().
 */
import {
  AFFINITY_SEED,
  affinityChain,
  type Element,
  elementId,
  elementsOf,
  groupCapacity,
  groupMap,
  groupOfMap,
  MESH_MAP,
  MESH_MARK,
  REFUSE_CHAIN,
  randomChain,
  SERVICES_MAP,
  type SelectionGroup,
  SNAT_MAP,
  selectionGroup,
  slotTargets,
  TABLE,
  VIPS_SET,
  verdictChain,
} from "./layout.js";
import { type Affinity, type Service, type SnatEntry, slotOrder } from "./model.js";

const VIP_KEY_EXPR = "ip daddr . meta l4proto . th dport";
const MESH_KEY_EXPR = "meta l4proto . th dport";
const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
const MARK = hex(MESH_MARK);
/** Elements per line of a full render: nft's scanner pays per line too (8: most of the gain of one
 * line per map, and an error still quotes a readable line). */
const PER_LINE = 8;
const INDENT = "\n      ";

/**
 * The element text of one map, PER_LINE elements to a line. Joining each line as it fills lets the
 * pieces die young: with 60 000 elements held until one final join, the garbage collector's copying
 * of them was half of the render's time.
 */
class ElementLines {
  count = 0;
  private readonly lines: string[] = [];
  private readonly line: string[] = [];
  add(item: string): void {
    this.count++;
    this.line.push(item);
    if (this.line.length === PER_LINE) this.flush();
  }
  /** The `elements = { }` block, or nothing for an empty map. */
  block(): string[] {
    this.flush();
    return this.lines.length > 0 ? [`    elements = {${INDENT}${this.lines.join(`,${INDENT}`)}\n    }`] : [];
  }
  private flush(): void {
    if (this.line.length === 0) return;
    this.lines.push(this.line.join(", "));
    this.line.length = 0;
  }
}

const mapLines = (
  kind: "map" | "set",
  name: string,
  header: string,
  elements: string[],
  size?: number,
): string[] => [
  `  ${kind} ${name} {`,
  `    ${header}`,
  ...(size === undefined ? [] : [`    size ${size}`]),
  ...elements,
  "  }",
];

/** The backend map's declaration: the key leaves out the protocol, which the group fixes; the value
 * leaves out the port when the backends listen on the one asked for (dnat then keeps it). */
function groupMapHeader(g: SelectionGroup): string {
  // typeof needs an expression for the slot; the modulus shown is only documentation.
  const key = g.mesh ? "th dport" : "ip daddr . th dport";
  const value = g.samePort ? "ip daddr" : "ip daddr . th dport";
  return `typeof ${key} . numgen random mod ${g.count} : ${value}`;
}

/** The group's two selection chains, as [name, rule] pairs; each chain ends in `goto refuse`. */
function groupChains(g: SelectionGroup): Array<[string, string]> {
  const key = g.mesh ? "th dport" : "ip daddr . th dport";
  // The mark goes with the dnat in one rule: set whatever the lookup finds (a miss is refused anyway).
  const mark = g.mesh ? `ct mark set ct mark | ${MARK} ` : "";
  const pick = (expr: string) =>
    `meta l4proto ${g.proto} ${mark}dnat to ${key} . ${expr} map @${groupMap(g)}`;
  return [
    [randomChain(g), pick(`numgen random mod ${g.count}`)],
    [affinityChain(g), pick(`jhash ip saddr mod ${g.count} seed ${hex(AFFINITY_SEED)}`)],
  ];
}

// Falling through the dnat (a slot missing from the map) must not send the packet on to the VIP,
// where it would time out: refuse it like a service without backends.
const chainLines = ([name, rule]: [string, string]): string[] => [
  `  chain ${name} {`,
  `    ${rule}`,
  `    goto ${REFUSE_CHAIN}`,
  "  }",
];

/** Creates a group in an existing table; `create` fails on one that exists (the programmer's
 * memory of the table is then wrong, and the failed diff turns into a full resync). */
function renderCreateGroup(g: SelectionGroup): string {
  const lines = [`create map ${TABLE} ${groupMap(g)} { ${groupMapHeader(g)}; }`];
  for (const [name, rule] of groupChains(g)) {
    lines.push(
      `create chain ${TABLE} ${name}`,
      `add rule ${TABLE} ${name} ${rule}`,
      `add rule ${TABLE} ${name} goto ${REFUSE_CHAIN}`,
    );
  }
  return `${lines.join("\n")}\n`;
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

/** Groups in a fixed order (VIPs first, then by protocol, count, and address-only last), so the text
 * depends only on the set of services. */
function byGroupOrder(a: SelectionGroup, b: SelectionGroup): number {
  return (
    Number(a.mesh) - Number(b.mesh) ||
    (a.proto < b.proto ? -1 : a.proto > b.proto ? 1 : 0) ||
    a.count - b.count ||
    Number(a.samePort) - Number(b.samePort)
  );
}

/** A group of the full render: its elements, and the verdict text that jumps to it. */
interface GroupText {
  g: SelectionGroup;
  lines: ElementLines;
  /** " : jump lb_..." and " : jump aff_...", built once per group rather than once per VIP. */
  random: string;
  affinity: string;
}
const REFUSE_VERDICT = ` : jump ${REFUSE_CHAIN}`;
const verdictText = (t: GroupText | undefined, affinity: Affinity) =>
  t === undefined ? REFUSE_VERDICT : affinity === "client-ip" ? t.affinity : t.random;

/** Services by id, without copying when they already are (the usual case for a large sync). */
function byId(services: readonly Service[]): readonly Service[] {
  for (let i = 1; i < services.length; i++) {
    if (services[i - 1]!.id > services[i]!.id) return [...services].sort((a, b) => a.id - b.id);
  }
  return services;
}

/**
 * The whole table, replacing whatever was there in one transaction (never a moment without it): the
 * fixed maps and chains, and the selection groups that some service uses. Written for 10 000 services
 * and more: one pass, element text built once, names looked up rather than rebuilt per element.
 */
export function renderTable(services: readonly Service[], snat: readonly SnatEntry[] = []): string {
  const serviceLines = new ElementLines();
  const meshLines = new ElementLines();
  const vipLines = new ElementLines();
  const vips = new Set<string>();
  const groups = new Map<string, GroupText>();
  const groupText = (g: SelectionGroup | undefined): GroupText | undefined => {
    if (!g) return undefined;
    const name = groupMap(g);
    let t = groups.get(name);
    if (!t) {
      const random = ` : jump ${verdictChain(g, "none")}`;
      t = { g, lines: new ElementLines(), random, affinity: ` : jump ${verdictChain(g, "client-ip")}` };
      groups.set(name, t);
    }
    return t;
  };
  for (const s of byId(services)) {
    const ordered = slotOrder(s.backends);
    let targets: string[] = [];
    let targetsSamePort: boolean | undefined;
    for (const v of s.vips) {
      const t = groupText(selectionGroup(false, v.proto, v.port, ordered));
      serviceLines.add(`${v.ip} . ${v.proto} . ${v.port}${verdictText(t, s.affinity)}`);
      if (!vips.has(v.ip)) {
        vips.add(v.ip);
        vipLines.add(v.ip);
      }
      if (!t) continue;
      if (targetsSamePort !== t.g.samePort) {
        targets = slotTargets(ordered, t.g.samePort);
        targetsSamePort = t.g.samePort;
      }
      const prefix = `${v.ip} . ${v.port} . `;
      for (let slot = 0; slot < t.g.count; slot++) t.lines.add(`${prefix}${slot} : ${targets[slot]}`);
    }
    for (const m of s.mesh) {
      const t = groupText(selectionGroup(true, m.proto, m.port, m.backends));
      meshLines.add(`${m.proto} . ${m.port}${verdictText(t, s.affinity)}`);
      if (!t) continue;
      const mine = slotTargets(slotOrder(m.backends), t.g.samePort);
      for (let slot = 0; slot < t.g.count; slot++) t.lines.add(`${m.port} . ${slot} : ${mine[slot]}`);
    }
  }
  const snatLines = new ElementLines();
  for (const e of [...snat].sort(bySnatKey)) snatLines.add(`${e.backend} : ${e.source}`);
  const used = [...groups.values()].sort((a, b) => byGroupOrder(a.g, b.g));
  const lines = [
    renderDeleteTable().trimEnd(),
    `table ${TABLE} {`,
    ...mapLines(
      "map",
      SERVICES_MAP,
      `type ipv4_addr . inet_proto . inet_service : verdict`,
      serviceLines.block(),
    ),
    ...mapLines("map", MESH_MAP, "type inet_proto . inet_service : verdict", meshLines.block()),
    ...mapLines("set", VIPS_SET, "type ipv4_addr", vipLines.block()),
    ...mapLines("map", SNAT_MAP, "type ipv4_addr : ipv4_addr", snatLines.block()),
  ];
  for (const { g, lines: elements } of used) {
    const size = groupCapacity(elements.count);
    lines.push(...mapLines("map", groupMap(g), groupMapHeader(g), elements.block(), size));
  }
  lines.push(...renderBaseChains());
  for (const { g } of used) for (const chain of groupChains(g)) lines.push(...chainLines(chain));
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

const bySnatKey = (a: SnatEntry, b: SnatEntry) =>
  a.backend < b.backend ? -1 : a.backend > b.backend ? 1 : 0;

/** Deletes the table if it exists (creating it empty first makes the delete never fail). */
export function renderDeleteTable(): string {
  return `table ${TABLE} {}\ndelete table ${TABLE}\n`;
}

/**
 * `add`/`delete element` commands, one per map, deletions first (a changed value is both). With
 * `groups` (the selection groups the table holds, by backend map name), the script first creates the
 * groups its new elements need and the table lacks, and adds them to the set.
 */
export function renderElementDiff(
  before: readonly Element[],
  after: readonly Element[],
  groups?: Set<string>,
): string {
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
  for (const map of adds.keys()) {
    const g = groups && !groups.has(map) ? groupOfMap(map) : undefined;
    if (!g) continue;
    lines.push(renderCreateGroup(g).trimEnd());
    groups?.add(map);
  }
  for (const [map, keys] of deletes) lines.push(`delete element ${TABLE} ${map} { ${keys.join(", ")} }`);
  for (const [map, items] of adds) lines.push(`add element ${TABLE} ${map} { ${items.join(", ")} }`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

/**
 * The change from one version of a service to the next (undefined: does not exist), touching only
 * that service's elements. Empty when nothing changed. `groups`: the selection groups the table holds
 * (by backend map name); the script creates those that the new elements need and the table lacks
 * (before the elements, in the same transaction), and adds them to the set.
 */
export function renderChange(
  before: Service | undefined,
  after: Service | undefined,
  groups: Set<string>,
): string {
  return renderElementDiff(before ? elementsOf(before) : [], after ? elementsOf(after) : [], groups);
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
