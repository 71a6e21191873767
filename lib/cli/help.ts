/** Help text in Docker's layout, generated from the registry and the flag specs. */
import type { FlagDef, Spec } from "./args.js";
import type { Command } from "./command.js";
import type { GroupEntry } from "./registry.js";

export const DEFAULT_SOCKET = "/run/trellis/trellis.sock";

/** Flags every command accepts besides its own (globals may also follow the verb). */
export const COMMON_FLAGS = {
  socket: {
    kind: "string",
    metavar: "PATH",
    help: `trellisd API socket (env TRELLIS_SOCKET, default "${DEFAULT_SOCKET}")`,
  },
  help: { kind: "bool", short: "h", help: "Print usage" },
} satisfies Spec;

export const GLOBAL_FLAGS = {
  ...COMMON_FLAGS,
  version: { kind: "bool", help: "Print version information and quit" },
} satisfies Spec;

function flagLabel(key: string, def: FlagDef): string {
  const short = def.short === undefined ? "    " : `-${def.short}, `;
  const value = def.kind === "bool" ? "" : ` ${def.metavar ?? "string"}`;
  return `${short}--${def.long ?? key}${value}`;
}

function flagHelp(def: FlagDef): string {
  const repeat = def.kind === "list" ? " (repeatable)" : "";
  const dflt = def.default === undefined ? "" : ` (default "${def.default}")`;
  return def.help + repeat + dflt;
}

function optionLines(spec: Spec): string[] {
  const rows = Object.entries(spec).map(([key, def]) => [flagLabel(key, def), flagHelp(def)] as const);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, help]) => `  ${label.padEnd(width)}   ${help}`);
}

function listLines(entries: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.max(11, ...entries.map(([name]) => name.length + 2));
  return entries.map(([name, summary]) => `  ${name.padEnd(width)}${summary}`);
}

export function topHelp(groups: Readonly<Record<string, GroupEntry>>): string {
  return [
    "Usage:  trellis [OPTIONS] COMMAND",
    "",
    "Command-line client for trellisd, the trellis container networking daemon",
    "",
    "Options:",
    ...optionLines(GLOBAL_FLAGS),
    "",
    "Management Commands:",
    ...listLines(Object.entries(groups).map(([name, g]) => [name, g.summary] as const)),
    "",
    "Run 'trellis COMMAND --help' for more information on a command.",
    "",
  ].join("\n");
}

export function groupHelp(name: string, group: GroupEntry): string {
  const verbs = Object.entries(group.verbs).map(([verb, v]) => [verb, v.summary] as const);
  return [
    `Usage:  trellis ${name} COMMAND`,
    "",
    group.summary,
    "",
    "Commands:",
    ...listLines(verbs),
    "",
    `Run 'trellis ${name} COMMAND --help' for more information on a command.`,
    "",
  ].join("\n");
}

export function commandHelp(command: Command, aliases: readonly string[] = []): string {
  const lines = [`Usage:  ${command.usage}`, "", command.description, ""];
  if (aliases.length > 0) lines.push("Aliases:", `  ${aliases.join(", ")}`, "");
  lines.push("Options:", ...optionLines({ ...command.spec, ...COMMON_FLAGS }), "");
  return lines.join("\n");
}
