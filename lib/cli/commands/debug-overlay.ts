import { defineCommand } from "../command.js";
import { formatJson } from "../output.js";

export default defineCommand({
  usage: "trellis debug overlay NETWORK",
  description:
    "Print the VXLAN FDB and neighbour entries programmed here and the table entries they came from",
  spec: {},
  args: { min: 1, max: 1 },
  async run(ctx, _values, [network]) {
    const { body } = await (await ctx.client()).get(`/trellis/debug/overlay/${encodeURIComponent(network!)}`);
    ctx.io.stdout.write(formatJson(body));
    return 0;
  },
});
