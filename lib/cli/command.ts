/**
 * What a command module provides and what it is given. Commands write only through `io` and
 * reach the daemon only through `ctx.client()`, so tests can run them in-process.
 */
import type { Spec, Values } from "./args.js";
import type { ApiClient } from "./client.js";

export interface Writer {
  write(chunk: string): unknown;
}

export interface Io {
  stdout: Writer;
  stderr: Writer;
  env: Readonly<Record<string, string | undefined>>;
  /** for confirmation prompts; absent = non-interactive, every prompt is answered "no" */
  stdin?: NodeJS.ReadableStream;
}

export interface Context {
  io: Io;
  socketPath: string;
  /** created on first use, closed by main when the command ends */
  client(): Promise<ApiClient>;
}

export interface Command<S extends Spec = Spec> {
  /** e.g. "trellis network create [OPTIONS] NETWORK" */
  usage: string;
  /** one line, shown under the usage */
  description: string;
  spec: S;
  /** allowed number of positionals; max undefined = unbounded */
  args: { min: number; max?: number };
  /** the exit code: 0, or 1 after reporting partial failures itself */
  run(ctx: Context, values: Values<S>, positionals: string[]): Promise<number>;
}

/** Identity function that lets TypeScript infer S from the spec literal. */
export function defineCommand<S extends Spec>(command: Command<S>): Command<S> {
  return command;
}

export function printLine(writer: Writer, line: string): void {
  writer.write(`${line}\n`);
}
