import { defineCommand, printLine } from "../command.js";
import { ApiError } from "../errors.js";
import { servicePath } from "../wire.js";

export default defineCommand({
  usage: "trellis service rm SERVICE [SERVICE...]",
  description: "Remove one or more services",
  spec: {},
  args: { min: 1 },
  async run(ctx, _values, names) {
    const client = await ctx.client();
    let status = 0;
    // Keep going past failures so one bad name does not leave the rest in place.
    for (const name of names) {
      try {
        await client.delete(servicePath(name));
        printLine(ctx.io.stdout, name);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        printLine(ctx.io.stderr, err.display());
        status = 1;
      }
    }
    return status;
  },
});
