import { flagValue, parseKeyValues } from "../args.js";
import { defineCommand, printLine } from "../command.js";
import { BadResponseError, UsageError } from "../errors.js";
import { parsePort } from "../publish.js";
import { parseServicePortFlags, SERVICE_PUBLISH_SYNTAX, VIP_PORT_SYNTAX } from "../service-publish.js";
import { isServiceResource, type ServiceCreateRequest } from "../wire.js";

const spec = {
  name: { kind: "string", metavar: "NAME", help: "Service name (required)" },
  network: { kind: "list", metavar: "NETWORK", help: "Network the service gets a VIP on (at least one)" },
  endpointMode: {
    kind: "string",
    long: "endpoint-mode",
    metavar: "vip|dnsrr",
    help: "How clients reach the backends: one virtual IP, or DNS round robin",
    default: "vip",
  },
  publish: {
    kind: "list",
    short: "p",
    metavar: SERVICE_PUBLISH_SYNTAX,
    help: "Publish a port on the hosts (also published=P,target=T[,protocol=P][,mode=M])",
  },
  port: { kind: "list", metavar: VIP_PORT_SYNTAX, help: "A port served at the VIP only, not published" },
  affinity: {
    kind: "string",
    metavar: "none|client-ip",
    help: "client-ip: one client address always reaches the same backend",
    default: "none",
  },
  healthTcp: {
    kind: "string",
    long: "health-tcp",
    metavar: "PORT",
    help: "Take a backend out while a TCP connect to PORT fails",
  },
  label: { kind: "list", metavar: "KEY=VALUE", help: "Service labels" },
} as const;

function oneOf<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new UsageError(`invalid ${flag} "${text}": must be ${allowed.join(" or ")}`);
}

function networks(values: readonly string[]): string[] {
  if (values.length === 0) throw new UsageError("--network is required (at least one)");
  for (const n of values)
    if (n.trim() === "") throw new UsageError('invalid --network "": must not be empty');
  return [...values];
}

export default defineCommand({
  usage: "trellis service create [OPTIONS] --name NAME --network NETWORK",
  description: "Create a service: a VIP on each network, load-balanced over its backends",
  spec,
  args: { min: 0, max: 0 },
  async run(ctx, values) {
    // Everything is checked locally first; the daemon checks again (the name, dnsrr with ingress).
    if (values.name === undefined || values.name === "") throw new UsageError("--name is required");
    const body: ServiceCreateRequest = {
      Name: values.name,
      Networks: networks(values.network),
      EndpointMode: oneOf("--endpoint-mode", values.endpointMode, ["vip", "dnsrr"]),
      Ports: parseServicePortFlags(values.publish, values.port),
      Affinity: oneOf("--affinity", values.affinity, ["none", "client-ip"]),
      Labels: parseKeyValues("--label", values.label),
    };
    if (values.healthTcp !== undefined) {
      body.HealthTcp = flagValue("--health-tcp", values.healthTcp, (text) => parsePort("health", text));
    }
    const { body: reply } = await (await ctx.client()).post("/trellis/services/create", body);
    if (!isServiceResource(reply)) throw new BadResponseError("create reply is not a service");
    printLine(ctx.io.stdout, reply.ID);
    return 0;
  },
});
