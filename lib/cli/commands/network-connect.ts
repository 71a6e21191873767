import { flagValue } from "../args.js";
import { type ApiClient, networkPath } from "../client.js";
import { defineCommand, printLine, type Writer } from "../command.js";
import { UsageError } from "../errors.js";
import { parseIPv4, parseIPv6 } from "../ip.js";
import { parsePublishFlags } from "../publish.js";
import type { NetworkConnectRequest, NetworkDisconnectRequest } from "../wire.js";
import { postBackend } from "./service-backends.js";

const spec = {
  ip: { kind: "string", metavar: "IP", help: "IPv4 address (e.g. 172.30.100.104)" },
  ip6: { kind: "string", metavar: "IP", help: "IPv6 address (e.g. 2001:db8::33)" },
  alias: { kind: "list", metavar: "NAME", help: "Add network-scoped alias for the container" },
  name: { kind: "string", metavar: "NAME", help: "Endpoint name, resolvable in DNS on this network" },
  publish: {
    kind: "list",
    short: "p",
    metavar: "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]",
    help: "Publish a container port on the host",
  },
  service: {
    kind: "string",
    metavar: "SERVICE",
    help: "Then make the container a backend of SERVICE (the connect is undone if that fails)",
  },
} as const;

function nonEmpty(flag: string, value: string): string {
  if (value.trim() === "") throw new UsageError(`invalid ${flag} "${value}": must not be empty`);
  return value;
}

/** Checks the text and returns it as typed: the daemon canonicalises addresses. */
function checked(parse: (text: string) => unknown): (text: string) => string {
  return (text) => {
    parse(text);
    return text;
  };
}

/** Adds the new endpoint to the service; if that fails, disconnects again so nothing is half-done. */
async function joinService(
  client: ApiClient,
  stderr: Writer,
  where: { network: string; container: string; service: string },
): Promise<void> {
  try {
    await postBackend(client, where.service, where.container, "add");
  } catch (err) {
    const undo: NetworkDisconnectRequest = { Container: where.container, Force: false };
    try {
      await client.post(networkPath(where.network, "/disconnect"), undo);
    } catch (undoErr) {
      const reason = undoErr instanceof Error ? undoErr.message : String(undoErr);
      printLine(stderr, `trellis: ${where.container} stays connected to ${where.network}: ${reason}`);
    }
    throw err;
  }
}

export default defineCommand({
  usage: "trellis network connect [OPTIONS] NETWORK CONTAINER",
  description:
    "Connect a container to a network (CONTAINER: a named netns, an absolute netns path, or pid:PID)",
  spec,
  args: { min: 2, max: 2 },
  async run(ctx, values, [network, container]) {
    const ipam: NetworkConnectRequest["EndpointConfig"]["IPAMConfig"] = {};
    if (values.ip !== undefined) ipam.IPv4Address = flagValue("--ip", values.ip, checked(parseIPv4));
    if (values.ip6 !== undefined) ipam.IPv6Address = flagValue("--ip6", values.ip6, checked(parseIPv6));
    const trellis: NetworkConnectRequest["Trellis"] = {
      ...(values.name === undefined ? {} : { Name: nonEmpty("--name", values.name) }),
      Publish: parsePublishFlags(values.publish),
    };
    const body: NetworkConnectRequest = {
      Container: nonEmpty("CONTAINER", container!),
      EndpointConfig: { IPAMConfig: ipam, Aliases: values.alias.map((a) => nonEmpty("--alias", a)) },
      Trellis: trellis,
    };
    const service = values.service === undefined ? undefined : nonEmpty("--service", values.service);
    const client = await ctx.client();
    await client.post(networkPath(network!, "/connect"), body);
    if (service !== undefined)
      await joinService(client, ctx.io.stderr, { network: network!, container: body.Container, service });
    return 0;
  },
});
