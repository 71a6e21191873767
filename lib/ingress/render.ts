/**
 * Pure rendering of the VIP load balancer (layout in layout.ts): the whole table, created or
 * replaced atomically, and the element-level diff for one service, the fast path for every change.
 * Both expect services that passed validateServices().
 */
import {
  AFFINITY_SEED,
  affinityChain,
  backendMap,
  type Element,
  elementId,
  elementsOf,
  REFUSE_CHAIN,
  randomChain,
  SERVICES_MAP,
  TABLE,
  visitElements,
} from "./layout.js";
import { MAX_BACKENDS, type Service } from "./model.js";

const VIP_KEY_EXPR = "ip daddr . meta l4proto . th dport";
const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

function renderMap(name: string, header: string, items: readonly string[]): string[] {
  const lines = [`  map ${name} {`, `    ${header}`];
  if (items.length > 0) lines.push(`    elements = {\n      ${items.join(",\n      ")}\n    }`);
  lines.push("  }");
  return lines;
}

function renderSelectionChains(n: number): string[] {
  // Falling through the dnat (a slot missing from @be_N) must not send the packet on to the VIP,
  // where it would time out: refuse it like a service without backends.
  const pick = (expr: string) => `    dnat to ${VIP_KEY_EXPR} . ${expr} map @${backendMap(n)}`;
  return [
    `  chain ${randomChain(n)} {`,
    pick(`numgen random mod ${n}`),
    `    goto ${REFUSE_CHAIN}`,
    "  }",
    `  chain ${affinityChain(n)} {`,
    pick(`jhash ip saddr mod ${n} seed ${hex(AFFINITY_SEED)}`),
    `    goto ${REFUSE_CHAIN}`,
    "  }",
  ];
}

function renderBaseChains(): string[] {
  return [
    // A fast, explicit refusal: TCP gets a reset, UDP an ICMP port unreachable.
    `  chain ${REFUSE_CHAIN} {`,
    "    meta l4proto tcp reject with tcp reset",
    "    reject",
    "  }",
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    `    ${VIP_KEY_EXPR} vmap @${SERVICES_MAP}`,
    "  }",
    // Connections the host itself opens to a VIP (nft 1.0.6 knows `dstnat` only for prerouting).
    "  chain output {",
    "    type nat hook output priority -100; policy accept;",
    `    ${VIP_KEY_EXPR} vmap @${SERVICES_MAP}`,
    "  }",
  ];
}

/** The whole table, replacing whatever was there in one transaction (never a moment without it). */
export function renderTable(services: readonly Service[]): string {
  const byMap = new Map<string, string[]>();
  // By id, so the text depends only on the set of services (golden tests, comparing renders).
  for (const s of [...services].sort((a, b) => a.id - b.id)) {
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
  ];
  for (let n = 1; n <= MAX_BACKENDS; n++) {
    // typeof needs an expression for the slot; the modulus shown is only documentation.
    const header = `typeof ${VIP_KEY_EXPR} . numgen random mod ${n} : ip daddr . th dport`;
    lines.push(...renderMap(backendMap(n), header, byMap.get(backendMap(n)) ?? []));
  }
  lines.push(...renderBaseChains());
  for (let n = 1; n <= MAX_BACKENDS; n++) lines.push(...renderSelectionChains(n));
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

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
