/**
 * A stand-in for the kernel's copy of the service table, for unit tests: it understands exactly the
 * script shapes the renderer emits (a whole table; element add/delete; a selection group's `create
 * map`, `create chain` and `add rule`) and is as strict as the kernel, so a delete of a missing key,
 * an add of an existing one, an element of a map that does not exist, a jump to a chain that does not
 * exist, a create of an existing object, or more elements than a map's declared size fails the whole
 * script and changes nothing, like a refused transaction.
 */
import { TABLE } from "../../lib/ingress/layout.js";

const OBJECT = /^ {2}(map|set|chain) (\S+) \{$/;

/** "map key : value" (or "set key") for every element of a rendered table (several to a line). */
export function tableElements(text: string): Set<string> {
  const out = new Set<string>();
  let map = "";
  for (const line of text.split("\n")) {
    const m = OBJECT.exec(line);
    if (m) map = m[2]!;
    else if (/^ {6}\S/.test(line)) {
      for (const item of line.trim().replace(/,$/, "").split(", ")) out.add(`${map} ${item}`);
    }
  }
  return out;
}

/** "map NAME", "set NAME", "chain NAME" for every object a rendered table declares. */
export function tableObjects(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const m = OBJECT.exec(line);
    if (m) out.add(`${m[1]} ${m[2]}`);
  }
  return out;
}

/** The declared `size` of every map of a rendered table that has one. */
export function tableSizes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let map = "";
  for (const line of text.split("\n")) {
    const m = OBJECT.exec(line);
    if (m) map = m[2]!;
    const size = /^ {4}size (\d+)$/.exec(line);
    if (size) out.set(map, Number(size[1]));
  }
  return out;
}

const keyOf = (element: string) => element.split(" : ")[0]!;
const escaped = TABLE.replace(" ", "\\s");
const ELEMENTS = new RegExp(`^(add|delete) element ${escaped} (\\S+) \\{ (.+) \\}$`);
const CREATE = new RegExp(`^create (map|chain) ${escaped} (\\S+)(?: \\{ .+; \\})?$`);
const RULE = new RegExp(`^add rule ${escaped} (\\S+) (.+)$`);

const missing = (what: string) =>
  new Error(`Error: Could not process rule: No such file or directory (${what})`);

/**
 * Applies a diff script to a copy of `state`; throws like the kernel on a missing/duplicate key. With
 * `objects` (tableObjects() of the table, updated in place only when the whole script applies), the
 * maps and chains are checked and created too.
 */
export function applyElementScript(
  state: ReadonlySet<string>,
  script: string,
  objects?: Set<string>,
): Set<string> {
  const byKey = new Map([...state].map((e) => [keyOf(e), e]));
  const have = objects ? new Set(objects) : undefined;
  for (const line of script.split("\n").filter(Boolean)) {
    const create = CREATE.exec(line);
    if (create && have) {
      const name = `${create[1]} ${create[2]}`;
      if (have.has(name)) throw new Error(`Error: Could not process rule: File exists (${name})`);
      have.add(name);
      continue;
    }
    const rule = RULE.exec(line);
    if (rule && have) {
      if (!have.has(`chain ${rule[1]}`)) throw missing(`chain ${rule[1]}`);
      for (const [, target] of rule[2]!.matchAll(/(?:goto|jump|map @)\s*(\S+)/g)) {
        if (!have.has(`chain ${target}`) && !have.has(`map ${target}`)) throw missing(target!);
      }
      continue;
    }
    const m = ELEMENTS.exec(line);
    if (!m) throw new Error(`unparsed: ${line}`);
    if (have && !have.has(`map ${m[2]}`) && !have.has(`set ${m[2]}`)) throw missing(`map ${m[2]}`);
    for (const item of m[3]!.split(", ")) {
      const element = `${m[2]} ${item}`;
      const key = keyOf(element);
      if (m[1] === "delete") {
        if (!byKey.delete(key)) throw missing(key);
      } else {
        if (byKey.has(key)) throw new Error(`Error: Could not process rule: File exists (${key})`);
        const jump = / : jump (\S+)$/.exec(item);
        if (have && jump && !have.has(`chain ${jump[1]}`)) throw missing(`chain ${jump[1]}`);
        byKey.set(key, element);
      }
    }
  }
  if (objects && have) for (const name of have) objects.add(name);
  return new Set(byKey.values());
}

export class FakeNft {
  elements = new Set<string>();
  /** Maps, sets and chains of the table (see tableObjects). */
  objects = new Set<string>();
  /** Declared map sizes (see tableSizes). */
  sizes = new Map<string, number>();
  exists = false;
  readonly scripts: string[] = [];
  /** Fail this many of the next calls (before looking at the script). */
  failNext = 0;

  readonly apply = async (script: string): Promise<void> => {
    this.scripts.push(script);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("Error: injected failure");
    }
    if (script.startsWith(`table ${TABLE} {}\ndelete table ${TABLE}\n`)) {
      this.exists = script.includes(`\ntable ${TABLE} {\n`);
      this.elements = tableElements(script);
      this.objects = tableObjects(script);
      this.sizes = tableSizes(script);
      return;
    }
    if (!this.exists) throw new Error(`Error: No such file or directory; table ${TABLE}`);
    const objects = new Set(this.objects);
    const elements = applyElementScript(this.elements, script, objects);
    for (const [map, size] of this.sizes) {
      const count = [...elements].filter((e) => e.startsWith(`${map} `)).length;
      if (count > size) throw new Error("Error: Could not process rule: Too many open files in system");
    }
    this.elements = elements;
    this.objects = objects;
  };
}
