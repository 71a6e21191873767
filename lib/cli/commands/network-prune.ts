import { defineCommand, type Io } from "../command.js";
import { BadResponseError } from "../errors.js";
import type { NetworkPruneResponse } from "../wire.js";

const spec = {
  force: { kind: "bool", short: "f", help: "Do not prompt for confirmation" },
} as const;

const WARNING = "WARNING! This will remove all custom networks not used by at least one container.";

/** Reads one line of the answer; end of input (or no stdin at all) counts as "no". */
function readLine(stdin: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stdin) return Promise.resolve("");
  return new Promise((resolve) => {
    let text = "";
    const done = () => {
      stdin.off("data", onData);
      stdin.off("end", done);
      stdin.off("error", done);
      // Paused, the terminal handle no longer keeps the process alive.
      stdin.pause();
      resolve(text.split("\n")[0] ?? "");
    };
    const onData = (chunk: Buffer | string) => {
      text += chunk.toString();
      if (text.includes("\n")) done();
    };
    stdin.on("data", onData);
    stdin.on("end", done);
    stdin.on("error", done);
  });
}

async function confirm(io: Io): Promise<boolean> {
  // The prompt goes to stderr so stdout carries only the list of deleted networks.
  io.stderr.write(`${WARNING}\nAre you sure you want to continue? [y/N] `);
  const answer = (await readLine(io.stdin)).trim().toLowerCase();
  return answer === "y" || answer === "yes";
}

export default defineCommand({
  usage: "trellis network prune [OPTIONS]",
  description: "Remove all unused networks",
  spec,
  args: { min: 0, max: 0 },
  async run(ctx, values) {
    if (!values.force && !(await confirm(ctx.io))) return 0;
    const { body } = await (await ctx.client()).post("/networks/prune");
    // Go daemons send null for an empty list.
    const deleted: unknown = (body as Partial<NetworkPruneResponse> | undefined)?.NetworksDeleted ?? [];
    if (!Array.isArray(deleted) || !deleted.every((n) => typeof n === "string")) {
      throw new BadResponseError("prune reply has no NetworksDeleted list");
    }
    if (deleted.length > 0) {
      ctx.io.stdout.write(`Deleted Networks:\n${deleted.map((n) => `${n}\n`).join("")}`);
    }
    return 0;
  },
});
