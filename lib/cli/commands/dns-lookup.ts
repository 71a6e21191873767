import { defineCommand, printLine } from "../command.js";
import { BadResponseError, UsageError } from "../errors.js";
import { formatJson, formatTable } from "../output.js";

const spec = {
  from: {
    kind: "string",
    metavar: "CONTAINER",
    help: "Ask as this container (netns name, path, pid:PID or endpoint name); default: every network",
  },
  type: { kind: "string", short: "t", metavar: "TYPE", help: "Record type: A, AAAA, PTR, ...", default: "A" },
  json: { kind: "bool", help: "Print the daemon's JSON" },
} as const;

interface LookupReply {
  Rcode: string;
  Source: string;
  Answers: Array<{ Name: string; Type: string; TTL: number; Data: string }>;
}

function isLookupReply(v: unknown): v is LookupReply {
  const r = v as LookupReply | undefined;
  return typeof r?.Rcode === "string" && Array.isArray(r.Answers);
}

export default defineCommand({
  usage: "trellis dns lookup [OPTIONS] NAME",
  description: "Show what the embedded DNS (127.0.0.11) answers a container for NAME",
  spec,
  args: { min: 1, max: 1 },
  async run(ctx, values, [name]) {
    if (name!.trim() === "") throw new UsageError('invalid NAME "": must not be empty');
    const params = new URLSearchParams({ name: name!, type: values.type.toUpperCase() });
    if (values.from !== undefined) params.set("from", values.from);
    const { body } = await (await ctx.client()).get(`/trellis/dns/lookup?${params}`);
    if (!isLookupReply(body)) throw new BadResponseError("GET /trellis/dns/lookup did not return a lookup");
    if (values.json) {
      ctx.io.stdout.write(formatJson(body));
    } else if (body.Answers.length > 0) {
      const rows = body.Answers.map((a) => [a.Name, String(a.TTL), a.Type, a.Data]);
      ctx.io.stdout.write(formatTable(["NAME", "TTL", "TYPE", "DATA"], rows));
    }
    if (body.Rcode !== "NOERROR" || body.Answers.length === 0) {
      printLine(ctx.io.stderr, `${name}: ${body.Rcode}${body.Rcode === "NOERROR" ? " (no records)" : ""}`);
      return 1;
    }
    return 0;
  },
});
