import { parseKeyValues } from "../args.js";
import { defineCommand, printLine } from "../command.js";
import { BadResponseError } from "../errors.js";
import { pairIpamConfig } from "../ipam.js";
import type { NetworkCreateRequest } from "../wire.js";

const spec = {
  driver: {
    kind: "string",
    short: "d",
    metavar: "DRIVER",
    help: "Driver to manage the network",
    default: "bridge",
  },
  subnet: { kind: "list", metavar: "CIDR", help: "Subnet in CIDR format" },
  gateway: { kind: "list", metavar: "IP", help: "Gateway for the subnet that contains it" },
  ipRange: {
    kind: "list",
    long: "ip-range",
    metavar: "CIDR",
    help: "Allocate container IPs from this range of the subnet that contains it",
  },
  ipv6: { kind: "bool", help: "Enable IPv6 networking" },
  internal: { kind: "bool", help: "Restrict external access to the network" },
  opt: { kind: "list", short: "o", metavar: "KEY=VALUE", help: "Driver specific option" },
  label: { kind: "list", metavar: "KEY=VALUE", help: "Metadata for the network" },
} as const;

export default defineCommand({
  usage: "trellis network create [OPTIONS] NETWORK",
  description: "Create a network",
  spec,
  args: { min: 1, max: 1 },
  async run(ctx, values, [name]) {
    // Validate everything locally first: a bad flag must not cost a round trip or a partial create.
    const body: NetworkCreateRequest = {
      Name: name!,
      Driver: values.driver,
      CheckDuplicate: true,
      Internal: values.internal,
      EnableIPv6: values.ipv6,
      IPAM: {
        Driver: "default",
        Config: pairIpamConfig({
          subnets: values.subnet,
          gateways: values.gateway,
          ipRanges: values.ipRange,
        }),
        Options: {},
      },
      Options: parseKeyValues("--opt", values.opt),
      Labels: parseKeyValues("--label", values.label),
    };
    const { body: reply } = await (await ctx.client()).post("/networks/create", body);
    const { Id: id, Warning: warning } = (reply ?? {}) as { Id?: unknown; Warning?: unknown };
    if (typeof id !== "string") throw new BadResponseError("create reply has no Id");
    if (typeof warning === "string" && warning !== "") printLine(ctx.io.stderr, `WARNING: ${warning}`);
    printLine(ctx.io.stdout, id);
    return 0;
  },
});
