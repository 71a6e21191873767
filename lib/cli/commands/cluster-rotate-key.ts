import { readFileSync } from "node:fs";
import { defineCommand, printLine } from "../command.js";
import { UsageError } from "../errors.js";

const spec = {
  keyFile: {
    kind: "string",
    long: "key-file",
    metavar: "FILE",
    help: "Use the base64 32-byte key in FILE (default: a new random key)",
  },
} as const;

export default defineCommand({
  usage: "trellis cluster rotate-key [--key-file FILE]",
  description: "Replace the gossip encryption key on every cluster member, without a restart",
  spec,
  args: { min: 0, max: 0 },
  async run(ctx, values) {
    let key: string | undefined;
    if (values.keyFile !== undefined) {
      try {
        key = readFileSync(values.keyFile, "utf8").trim();
      } catch (err) {
        throw new UsageError(`cannot read --key-file ${values.keyFile}: ${(err as Error).message}`);
      }
    }
    const { body } = await (await ctx.client()).post("/trellis/cluster/rotate-key", key ? { Key: key } : {});
    printLine(ctx.io.stdout, `gossip key rotated on ${(body as { Members?: number })?.Members ?? 0} members`);
    return 0;
  },
});
