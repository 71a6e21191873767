import { defineCommand } from "../command.js";
import { BadResponseError, UsageError } from "../errors.js";
import { formatJson, formatTable, naturalCompare, shortId } from "../output.js";
import { formatServicePort } from "../service-publish.js";
import { isServiceResource, type ServiceResource } from "../wire.js";

const spec = {
  json: { kind: "bool", help: "Print the daemon's JSON array" },
  quiet: { kind: "bool", short: "q", help: "Only display service IDs" },
  noTrunc: { kind: "bool", long: "no-trunc", help: "Do not truncate the output" },
} as const;

function asServiceList(body: unknown): ServiceResource[] {
  if (!Array.isArray(body) || !body.every(isServiceResource)) {
    throw new BadResponseError("GET /trellis/services did not return an array of services");
  }
  return body;
}

function vips(s: ServiceResource): string {
  const addrs = s.VirtualIPs.flatMap((v) => (v.Addr ? [v.Addr.split("/")[0]!] : []));
  return addrs.length === 0 ? "-" : addrs.join(",");
}

/** Unchecked backends (no --health-tcp) are in the load balancer like healthy ones, so they count. */
function backends(s: ServiceResource): string {
  const serving = s.Backends.filter((b) => b.Health !== "unhealthy").length;
  return `${serving}/${s.Backends.length}`;
}

export default defineCommand({
  usage: "trellis service ls [OPTIONS]",
  description: "List services",
  spec,
  args: { min: 0, max: 0 },
  async run(ctx, values) {
    if (values.json && values.quiet) throw new UsageError("--json and --quiet cannot be used together");
    const services = asServiceList((await (await ctx.client()).get("/trellis/services")).body);
    if (values.json) {
      ctx.io.stdout.write(formatJson(services));
      return 0;
    }
    const sorted = [...services].sort((a, b) => naturalCompare(a.Name, b.Name));
    const id = (s: ServiceResource) => (values.noTrunc ? s.ID : shortId(s.ID));
    if (values.quiet) {
      ctx.io.stdout.write(sorted.map((s) => `${id(s)}\n`).join(""));
      return 0;
    }
    const rows = sorted.map((s) => [
      id(s),
      s.Name,
      String(s.EndpointMode),
      vips(s),
      backends(s),
      s.Ports.map(formatServicePort).join(", "),
    ]);
    ctx.io.stdout.write(formatTable(["ID", "NAME", "MODE", "VIPS", "BACKENDS", "PORTS"], rows));
    return 0;
  },
});
