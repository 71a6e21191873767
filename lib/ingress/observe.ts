/**
 * Reads the service table back from `nft -j list table ip trellis_svc` into the renderer's own terms
 * (chains, rule counts, map elements as "key : value" text, set members), so a check can compare the
 * kernel with the last applied state element by element instead of grepping rule text.
 */
import type { Element } from "./layout.js";

export interface ObservedTable {
  chains: string[];
  /** Rules per chain. */
  rules: Map<string, number>;
  maps: string[];
  /** The declared size of every map that has one. */
  sizes: Map<string, number>;
  /** Elements of every map. */
  elements: Element[];
  /** Members of every set, by set name. */
  sets: Map<string, string[]>;
}

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** One side of an element as the renderer writes it: concatenations joined by " . ", verdicts as text. */
function elementText(v: Json): string {
  if (typeof v === "string" || typeof v === "number") return String(v);
  if (isObject(v)) {
    const concat = v["concat"];
    if (Array.isArray(concat)) return concat.map(elementText).join(" . ");
    for (const verdict of ["jump", "goto"]) {
      const target = v[verdict];
      if (isObject(target) && typeof target["target"] === "string") return `${verdict} ${target["target"]}`;
    }
  }
  return JSON.stringify(v);
}

/** Undefined for `undefined` (no such table); throws on output that is not nft's JSON schema. */
export function observeTable(listing: Json): ObservedTable | undefined {
  if (listing === undefined) return undefined;
  const items = isObject(listing) ? listing["nftables"] : undefined;
  if (!Array.isArray(items)) throw new Error("not an nft -j listing");
  const out: ObservedTable = {
    chains: [],
    rules: new Map(),
    maps: [],
    sizes: new Map(),
    elements: [],
    sets: new Map(),
  };
  for (const item of items) {
    if (!isObject(item)) continue;
    const { chain, rule, map, set } = item;
    if (isObject(chain) && typeof chain["name"] === "string") {
      out.chains.push(chain["name"]);
      out.rules.set(chain["name"], out.rules.get(chain["name"]) ?? 0);
    } else if (isObject(rule) && typeof rule["chain"] === "string") {
      out.rules.set(rule["chain"], (out.rules.get(rule["chain"]) ?? 0) + 1);
    } else if (isObject(map) && typeof map["name"] === "string") {
      out.maps.push(map["name"]);
      if (typeof map["size"] === "number") out.sizes.set(map["name"], map["size"]);
      const elem = Array.isArray(map["elem"]) ? map["elem"] : [];
      for (const pair of elem) {
        if (!Array.isArray(pair) || pair.length !== 2) continue;
        out.elements.push({ map: map["name"], key: elementText(pair[0]), value: elementText(pair[1]) });
      }
    } else if (isObject(set) && typeof set["name"] === "string") {
      const elem = Array.isArray(set["elem"]) ? set["elem"] : [];
      out.sets.set(set["name"], elem.map(elementText));
    }
  }
  return out;
}

/** Total rules of an observed table. */
export const ruleCount = (t: ObservedTable): number => [...t.rules.values()].reduce((a, b) => a + b, 0);
