import { defineCommand } from "../command.js";
import { BadResponseError, UsageError } from "../errors.js";
import { formatJson, formatTable, naturalCompare, shortId } from "../output.js";
import { isNetworkResource, type NetworkResource } from "../wire.js";

const spec = {
  json: { kind: "bool", help: "Print the daemon's JSON array" },
  quiet: { kind: "bool", short: "q", help: "Only display network IDs" },
  noTrunc: { kind: "bool", long: "no-trunc", help: "Do not truncate the output" },
} as const;

export function asNetworkList(body: unknown): NetworkResource[] {
  if (!Array.isArray(body) || !body.every(isNetworkResource)) {
    throw new BadResponseError("GET /networks did not return an array of networks");
  }
  return body;
}

export default defineCommand({
  usage: "trellis network ls [OPTIONS]",
  description: "List networks",
  spec,
  args: { min: 0, max: 0 },
  async run(ctx, values) {
    if (values.json && values.quiet) throw new UsageError("--json and --quiet cannot be used together");
    const networks = asNetworkList((await (await ctx.client()).get("/networks")).body);
    if (values.json) {
      ctx.io.stdout.write(formatJson(networks));
      return 0;
    }
    // Docker lists by name; the daemon's order is whatever its store yields.
    const sorted = [...networks].sort((a, b) => naturalCompare(a.Name, b.Name));
    const id = (n: NetworkResource) => (values.noTrunc ? n.Id : shortId(n.Id));
    if (values.quiet) {
      ctx.io.stdout.write(sorted.map((n) => `${id(n)}\n`).join(""));
      return 0;
    }
    const rows = sorted.map((n) => [id(n), n.Name, String(n.Driver ?? ""), String(n.Scope ?? "")]);
    ctx.io.stdout.write(formatTable(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows));
    return 0;
  },
});
