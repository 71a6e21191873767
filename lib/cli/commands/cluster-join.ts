import { defineCommand, printLine } from "../command.js";

export default defineCommand({
  usage: "trellis cluster join HOST[:PORT]...",
  description: "Join this node to the cluster through one or more members (gossip port default 7946)",
  spec: {},
  args: { min: 1, max: 64 },
  async run(ctx, _values, seeds) {
    const { body } = await (await ctx.client()).post("/trellis/cluster/join", { Seeds: seeds });
    printLine(
      ctx.io.stdout,
      `joined: ${(body as { Reached?: number })?.Reached ?? 0} of ${seeds.length} reached`,
    );
    return 0;
  },
});
