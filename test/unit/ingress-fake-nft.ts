/**
 * A stand-in for the kernel's copy of the service table, for unit tests: it understands exactly the two
 * script shapes the renderer emits (a whole table, element add/delete) and is as strict as the
 * kernel, so a delete of a missing key or an add of an existing one fails the whole script and
 * changes nothing, like a refused transaction.
 */
import { TABLE } from "../../lib/ingress/layout.js";

/** "map key : value" (or "set key") for every element of a rendered table (elements are one per
 * line there). */
export function tableElements(text: string): Set<string> {
  const out = new Set<string>();
  let map = "";
  for (const line of text.split("\n")) {
    const m = /^ {2}(?:map|set) (\S+) \{$/.exec(line);
    if (m) map = m[1]!;
    else if (/^ {6}\S/.test(line)) out.add(`${map} ${line.trim().replace(/,$/, "")}`);
  }
  return out;
}

const keyOf = (element: string) => element.split(" : ")[0]!;

/** Applies element commands to a copy of `state`; throws like the kernel on a missing/duplicate key. */
export function applyElementScript(state: ReadonlySet<string>, script: string): Set<string> {
  const byKey = new Map([...state].map((e) => [keyOf(e), e]));
  const escaped = TABLE.replace(" ", "\\s");
  const re = new RegExp(`^(add|delete) element ${escaped} (\\S+) \\{ (.+) \\}$`);
  for (const line of script.split("\n").filter(Boolean)) {
    const m = re.exec(line);
    if (!m) throw new Error(`unparsed: ${line}`);
    for (const item of m[3]!.split(", ")) {
      const element = `${m[2]} ${item}`;
      const key = keyOf(element);
      if (m[1] === "delete") {
        if (!byKey.delete(key))
          throw new Error(`Error: Could not process rule: No such file or directory (${key})`);
      } else {
        if (byKey.has(key)) throw new Error(`Error: Could not process rule: File exists (${key})`);
        byKey.set(key, element);
      }
    }
  }
  return new Set(byKey.values());
}

export class FakeNft {
  elements = new Set<string>();
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
      return;
    }
    if (!this.exists) throw new Error(`Error: No such file or directory; table ${TABLE}`);
    this.elements = applyElementScript(this.elements, script);
  };
}
