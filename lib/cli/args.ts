/**
 * A small, strict getopt-style parser. Flags are declared once per command as a spec; the parsed
 * values come back typed from that spec, so commands never look up flags by string.
 *
 * Accepted syntax (the subset of pflag/getopt that Docker users type):
 *   --name value, --name=value, -n value, -nvalue, clustered booleans (-fq),
 *   --bool, --bool=true|false, repeated list flags, `--` to end options, a lone `-` as a positional.
 * Flags and positionals may be interleaved unless `stopAtPositional` is set (used for the global
 * flags that precede the command name).
 */
import { UsageError } from "./errors.js";

export type FlagKind = "bool" | "string" | "list";

export interface FlagDef {
  kind: FlagKind;
  /** long name without dashes; defaults to the spec key */
  long?: string;
  /** single character, without the dash */
  short?: string;
  /** placeholder shown in help, e.g. "CIDR" */
  metavar?: string;
  help: string;
  /** value when the flag is absent (string flags only); also shown in help */
  default?: string;
}

export type Spec = Record<string, FlagDef>;

// Distributes over K so that an erased FlagDef (kind: FlagKind) yields the union of all values.
type KindValue<K extends FlagKind, D extends FlagDef> = K extends "bool"
  ? boolean
  : K extends "list"
    ? string[]
    : D extends { default: string }
      ? string
      : string | undefined;

type ValueOf<D extends FlagDef> = KindValue<D["kind"], D>;

export type Values<S extends Spec> = { -readonly [K in keyof S]: ValueOf<S[K]> };

export interface Parsed<S extends Spec> {
  values: Values<S>;
  positionals: string[];
}

export interface ParseOptions {
  /** stop at the first positional and return it and everything after it untouched */
  stopAtPositional?: boolean;
}

interface Lookup {
  long: Map<string, string>;
  short: Map<string, string>;
}

function buildLookup(spec: Spec): Lookup {
  const lookup: Lookup = { long: new Map(), short: new Map() };
  for (const [key, def] of Object.entries(spec)) {
    lookup.long.set(def.long ?? key, key);
    if (def.short !== undefined) lookup.short.set(def.short, key);
  }
  return lookup;
}

function initialValues(spec: Spec): Record<string, string | boolean | string[] | undefined> {
  const values: Record<string, string | boolean | string[] | undefined> = {};
  for (const [key, def] of Object.entries(spec)) {
    values[key] = def.kind === "bool" ? false : def.kind === "list" ? [] : def.default;
  }
  return values;
}

function parseBool(flag: string, text: string): boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  throw new UsageError(`invalid value "${text}" for ${flag}: must be true or false`);
}

/** Parser state for one argv; kept in a class so each step stays a short method. */
class Scanner {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[] = [];
  #index = 0;

  constructor(
    private readonly spec: Spec,
    private readonly lookup: Lookup,
    private readonly argv: readonly string[],
  ) {
    this.values = initialValues(spec);
  }

  run(options: ParseOptions): void {
    while (this.#index < this.argv.length) {
      const arg = this.argv[this.#index++]!;
      if (arg === "--") {
        this.positionals.push(...this.argv.slice(this.#index));
        return;
      }
      if (arg.startsWith("--")) this.#long(arg);
      else if (arg.startsWith("-") && arg !== "-") this.#shortCluster(arg);
      else if (options.stopAtPositional) {
        this.positionals.push(...this.argv.slice(this.#index - 1));
        return;
      } else this.positionals.push(arg);
    }
  }

  #long(arg: string): void {
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const key = this.lookup.long.get(name);
    if (key === undefined) throw new UsageError(`unknown flag: --${name}`);
    const flag = `--${name}`;
    if (this.spec[key]!.kind === "bool") {
      this.values[key] = eq === -1 ? true : parseBool(flag, arg.slice(eq + 1));
      return;
    }
    this.#store(key, eq === -1 ? this.#next(flag) : arg.slice(eq + 1));
  }

  /** `-abc`: booleans up to the first flag that takes a value, which eats the rest (or the next arg). */
  #shortCluster(arg: string): void {
    for (let i = 1; i < arg.length; i++) {
      const ch = arg[i]!;
      const key = this.lookup.short.get(ch);
      if (key === undefined) {
        throw new UsageError(
          arg.length > 2 ? `unknown shorthand flag: '${ch}' in ${arg}` : `unknown flag: -${ch}`,
        );
      }
      if (this.spec[key]!.kind === "bool") {
        this.values[key] = true;
        continue;
      }
      const rest = arg.slice(i + 1);
      this.#store(key, rest !== "" ? rest : this.#next(`-${ch}`));
      return;
    }
  }

  #next(flag: string): string {
    if (this.#index >= this.argv.length) throw new UsageError(`flag needs an argument: ${flag}`);
    return this.argv[this.#index++]!;
  }

  #store(key: string, value: string): void {
    const current = this.values[key];
    // String flags given twice: the last one wins, as with pflag, so wrappers can override.
    if (Array.isArray(current)) current.push(value);
    else this.values[key] = value;
  }
}

export function parseArgs<S extends Spec>(
  spec: S,
  argv: readonly string[],
  options: ParseOptions = {},
): Parsed<S> {
  const scanner = new Scanner(spec, buildLookup(spec), argv);
  scanner.run(options);
  return { values: scanner.values as Values<S>, positionals: scanner.positionals };
}

/**
 * `KEY=VALUE` pairs from a repeated flag. A bare `KEY` means an empty value, as in Docker;
 * a later duplicate key overrides an earlier one.
 */
export function parseKeyValues(flag: string, items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    const key = eq === -1 ? item : item.slice(0, eq);
    if (key === "")
      throw new UsageError(`invalid ${flag} "${item}": expected KEY=VALUE with a non-empty KEY`);
    out[key] = eq === -1 ? "" : item.slice(eq + 1);
  }
  return out;
}

/** Parse one flag value, turning the parser's reason into a one-line message naming flag and value. */
export function flagValue<T>(flag: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(`invalid ${flag} "${text}": ${err instanceof Error ? err.message : String(err)}`);
  }
}
