import { defineCommand } from "../command.js";
import { BadResponseError } from "../errors.js";
import { formatJson, formatTable, naturalCompare } from "../output.js";

const spec = { json: { kind: "bool", help: "Print the daemon's JSON array" } } as const;

interface NodeRow {
  Name: string;
  Addr: string;
  Port: number;
  State: string;
  LastContactMs: number;
  Self: boolean;
}

function isNodeList(v: unknown): v is NodeRow[] {
  return Array.isArray(v) && v.every((n) => typeof (n as NodeRow)?.Name === "string");
}

function age(ms: number): string {
  if (ms < 0) return "never";
  if (ms < 1000) return `${ms}ms`;
  return `${(ms / 1000).toFixed(1)}s`;
}

export default defineCommand({
  usage: "trellis node ls [OPTIONS]",
  description: "List the cluster's members as this node sees them",
  spec,
  args: { min: 0, max: 0 },
  async run(ctx, values) {
    const { body } = await (await ctx.client()).get("/trellis/nodes");
    if (!isNodeList(body)) throw new BadResponseError("GET /trellis/nodes did not return a list of nodes");
    if (values.json) {
      ctx.io.stdout.write(formatJson(body));
      return 0;
    }
    const rows = [...body]
      .sort((a, b) => naturalCompare(a.Name, b.Name))
      .map((n) => [`${n.Name}${n.Self ? " *" : ""}`, `${n.Addr}:${n.Port}`, n.State, age(n.LastContactMs)]);
    ctx.io.stdout.write(formatTable(["NAME", "ADDRESS", "STATE", "LAST CONTACT"], rows));
    return 0;
  },
});
