/**
 * The shape every `inspect` verb shares (network, service): fetch each name, print a JSON array of
 * what was found on stdout, one error line per name that failed on stderr, exit 1 if any failed.
 */
import type { ApiClient } from "./client.js";
import { type Command, defineCommand, printLine } from "./command.js";
import { ApiError, BadResponseError } from "./errors.js";
import { formatJson } from "./output.js";

export interface InspectKind<T> {
  /** "network", "service": used in usage, description and "No such ..." */
  noun: string;
  path(nameOrId: string): string;
  is(value: unknown): value is T;
}

const spec = {
  json: { kind: "bool", help: "Print JSON (the default; accepted for symmetry with other reads)" },
} as const;

/** One resource, or the line to report for it; transport failures still throw (exit 2). */
async function fetchOne<T>(client: ApiClient, kind: InspectKind<T>, nameOrId: string): Promise<T | string> {
  try {
    const path = kind.path(nameOrId);
    const { body } = await client.get(path);
    if (!kind.is(body)) throw new BadResponseError(`GET ${path} did not return a ${kind.noun}`);
    return body;
  } catch (err) {
    if (err instanceof ApiError) {
      return err.status === 404 ? `Error: No such ${kind.noun}: ${nameOrId}` : err.display();
    }
    throw err;
  }
}

export function inspectCommand<T>(kind: InspectKind<T>): Command {
  const upper = kind.noun.toUpperCase();
  return defineCommand({
    usage: `trellis ${kind.noun} inspect [OPTIONS] ${upper} [${upper}...]`,
    description: `Display detailed information on one or more ${kind.noun}s`,
    spec,
    args: { min: 1 },
    async run(ctx, _values, names) {
      const client = await ctx.client();
      const found: T[] = [];
      const failures: string[] = [];
      for (const name of names) {
        const result = await fetchOne(client, kind, name);
        if (typeof result === "string") failures.push(result);
        else found.push(result);
      }
      // Like docker: the array of what was found goes to stdout even when some names failed.
      ctx.io.stdout.write(formatJson(found));
      for (const line of failures) printLine(ctx.io.stderr, line);
      return failures.length === 0 ? 0 : 1;
    },
  });
}
