import { type ApiClient, networkPath } from "../client.js";
import { defineCommand, printLine } from "../command.js";
import { ApiError, BadResponseError } from "../errors.js";
import { formatJson } from "../output.js";
import { isNetworkResource, type NetworkResource } from "../wire.js";

const spec = {
  json: { kind: "bool", help: "Print JSON (the default; accepted for symmetry with other reads)" },
} as const;

/** One network, or the line to report for it; transport failures still throw (exit 2). */
async function fetchOne(client: ApiClient, nameOrId: string): Promise<NetworkResource | string> {
  try {
    const { body } = await client.get(networkPath(nameOrId));
    if (!isNetworkResource(body))
      throw new BadResponseError(`GET /networks/${nameOrId} did not return a network`);
    return body;
  } catch (err) {
    if (err instanceof ApiError) {
      return err.status === 404 ? `Error: No such network: ${nameOrId}` : err.display();
    }
    throw err;
  }
}

export default defineCommand({
  usage: "trellis network inspect [OPTIONS] NETWORK [NETWORK...]",
  description: "Display detailed information on one or more networks",
  spec,
  args: { min: 1 },
  async run(ctx, _values, names) {
    const client = await ctx.client();
    const found: NetworkResource[] = [];
    const failures: string[] = [];
    for (const name of names) {
      const result = await fetchOne(client, name);
      if (typeof result === "string") failures.push(result);
      else found.push(result);
    }
    // Like docker: the array of what was found goes to stdout even when some names failed.
    ctx.io.stdout.write(formatJson(found));
    for (const line of failures) printLine(ctx.io.stderr, line);
    return failures.length === 0 ? 0 : 1;
  },
});
