import { networkPath } from "../client.js";
import { defineCommand, printLine } from "../command.js";
import { ApiError } from "../errors.js";

const spec = {
  force: { kind: "bool", short: "f", help: "Do not error if the network does not exist" },
} as const;

export default defineCommand({
  usage: "trellis network rm [OPTIONS] NETWORK [NETWORK...]",
  description: "Remove one or more networks",
  spec,
  args: { min: 1 },
  async run(ctx, values, names) {
    const client = await ctx.client();
    let status = 0;
    // Keep going past failures so one bad name does not leave the rest in place.
    for (const name of names) {
      try {
        await client.delete(networkPath(name));
        printLine(ctx.io.stdout, name);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        if (err.status === 404 && values.force) continue;
        printLine(ctx.io.stderr, err.display());
        status = 1;
      }
    }
    return status;
  },
});
