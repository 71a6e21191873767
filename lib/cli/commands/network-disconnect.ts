import { networkPath } from "../client.js";
import { defineCommand } from "../command.js";
import type { NetworkDisconnectRequest } from "../wire.js";

const spec = {
  force: { kind: "bool", short: "f", help: "Force the container to disconnect from a network" },
} as const;

export default defineCommand({
  usage: "trellis network disconnect [OPTIONS] NETWORK CONTAINER",
  description: "Disconnect a container from a network",
  spec,
  args: { min: 2, max: 2 },
  async run(ctx, values, [network, container]) {
    const body: NetworkDisconnectRequest = { Container: container!, Force: values.force };
    await (await ctx.client()).post(networkPath(network!, "/disconnect"), body);
    return 0;
  },
});
