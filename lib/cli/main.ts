/**
 * Entry point of the `trellis` CLI: global flags, group/verb dispatch through the registry, lazy
 * loading of the one command module needed, and the mapping of failures to exit codes
 * (0 ok, 1 user or daemon-reported error, 2 daemon unreachable).
 */
import { parseArgs, type Spec } from "./args.js";
import type { ApiClient } from "./client.js";
import type { Command, Context, Io } from "./command.js";
import { describeFailure, UsageError } from "./errors.js";
import { COMMON_FLAGS, commandHelp, DEFAULT_SOCKET, GLOBAL_FLAGS, groupHelp, topHelp } from "./help.js";
import { findGroup, findVerb, GROUPS } from "./registry.js";

export type { Io } from "./command.js";

function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    // A getter: touching process.stdin opens the terminal handle, which only prune needs.
    get stdin() {
      return process.stdin;
    },
  };
}

async function version(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  try {
    const pkg = JSON.parse(await readFile(new URL("../../../package.json", import.meta.url), "utf8"));
    return String(pkg.version);
  } catch {
    return "unknown";
  }
}

function checkArgCount(name: string, command: Command, count: number): void {
  const { min, max } = command.args;
  if (count >= min && (max === undefined || count <= max)) return;
  const plural = (n: number) => `${n} argument${n === 1 ? "" : "s"}`;
  const expected =
    max === 0
      ? "accepts no arguments"
      : min === max
        ? `requires exactly ${plural(min)}`
        : max === undefined
          ? `requires at least ${plural(min)}`
          : `requires between ${min} and ${max} arguments`;
  throw new UsageError(`"trellis ${name}" ${expected}, got ${count} (see 'trellis ${name} --help')`);
}

/** Precedence: --socket after the verb, then before the group, then TRELLIS_SOCKET, then default. */
function socketPath(io: Io, ...flags: Array<string | undefined>): string {
  for (const value of flags) {
    if (value === "") throw new UsageError('invalid --socket "": must be a path');
    if (value !== undefined) return value;
  }
  return io.env["TRELLIS_SOCKET"] || DEFAULT_SOCKET;
}

interface Session {
  client?: ApiClient;
}

async function runVerb(io: Io, session: Session, words: string[], globalSocket?: string): Promise<number> {
  const [groupName, verbName, ...rest] = words as [string, string | undefined, ...string[]];
  const group = findGroup(groupName);
  if (!group) throw new UsageError(`unknown command "${groupName}" (see 'trellis --help')`);
  if (verbName === undefined || verbName === "-h" || verbName === "--help") {
    io.stdout.write(groupHelp(groupName, group));
    return 0;
  }
  const verb = findVerb(group, verbName);
  if (!verb) {
    throw new UsageError(
      `unknown command "trellis ${groupName} ${verbName}" (see 'trellis ${groupName} --help')`,
    );
  }
  const command = await verb.load();
  const fullName = `${groupName} ${verbName}`;
  const spec: Spec = { ...command.spec, ...COMMON_FLAGS };
  const { values, positionals } = parseArgs(spec, rest);
  if (values["help"] === true) {
    const aliases = [verbName, ...(verb.aliases ?? [])].map((v) => `trellis ${groupName} ${v}`);
    io.stdout.write(commandHelp(command, aliases.length > 1 ? aliases : []));
    return 0;
  }
  checkArgCount(fullName, command, positionals.length);
  const path = socketPath(io, values["socket"] as string | undefined, globalSocket);
  const ctx: Context = {
    io,
    socketPath: path,
    client: async () => {
      if (!session.client) {
        const { ApiClient } = await import("./client.js");
        session.client = new ApiClient(path);
      }
      return session.client;
    },
  };
  return command.run(ctx, values, positionals);
}

async function dispatch(argv: readonly string[], io: Io, session: Session): Promise<number> {
  const globals = parseArgs(GLOBAL_FLAGS, argv, { stopAtPositional: true });
  if (globals.values.version) {
    io.stdout.write(`trellis version ${await version()}\n`);
    return 0;
  }
  if (globals.positionals.length === 0 || globals.values.help) {
    io.stdout.write(topHelp(GROUPS));
    return 0;
  }
  return runVerb(io, session, globals.positionals, globals.values.socket);
}

/** Runs one CLI invocation and returns its exit code; never throws. */
export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  const session: Session = {};
  try {
    return await dispatch(argv, io, session);
  } catch (err) {
    const { exitCode, line } = describeFailure(err);
    io.stderr.write(`${line}\n`);
    return exitCode;
  } finally {
    session.client?.close();
  }
}
