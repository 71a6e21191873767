import { defineCommand, printLine } from "../command.js";

export default defineCommand({
  usage: "trellis cluster leave",
  description: "Leave the cluster gracefully: the other nodes drop this node's endpoints at once",
  spec: {},
  args: { min: 0, max: 0 },
  async run(ctx) {
    await (await ctx.client()).post("/trellis/cluster/leave");
    printLine(ctx.io.stdout, "left the cluster");
    return 0;
  },
});
