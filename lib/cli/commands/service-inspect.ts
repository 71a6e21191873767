import type { ApiClient } from "../client.js";
import { defineCommand, printLine } from "../command.js";
import { ApiError, BadResponseError } from "../errors.js";
import { formatJson } from "../output.js";
import { isServiceResource, type ServiceResource, servicePath } from "../wire.js";

const spec = {
  json: { kind: "bool", help: "Print JSON (the default; accepted for symmetry with other reads)" },
} as const;

/** One service, or the line to report for it; transport failures still throw (exit 2). */
async function fetchOne(client: ApiClient, nameOrId: string): Promise<ServiceResource | string> {
  try {
    const { body } = await client.get(servicePath(nameOrId));
    if (!isServiceResource(body)) {
      throw new BadResponseError(`GET /trellis/services/${nameOrId} did not return a service`);
    }
    return body;
  } catch (err) {
    if (err instanceof ApiError) {
      return err.status === 404 ? `Error: No such service: ${nameOrId}` : err.display();
    }
    throw err;
  }
}

export default defineCommand({
  usage: "trellis service inspect [OPTIONS] SERVICE [SERVICE...]",
  description: "Display detailed information on one or more services",
  spec,
  args: { min: 1 },
  async run(ctx, _values, names) {
    const client = await ctx.client();
    const found: ServiceResource[] = [];
    const failures: string[] = [];
    for (const name of names) {
      const result = await fetchOne(client, name);
      if (typeof result === "string") failures.push(result);
      else found.push(result);
    }
    // Like network inspect: what was found goes to stdout even when some names failed.
    ctx.io.stdout.write(formatJson(found));
    for (const line of failures) printLine(ctx.io.stderr, line);
    return failures.length === 0 ? 0 : 1;
  },
});
