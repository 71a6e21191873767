/** Records → the JSON shapes of the Docker Engine API, so docker's CLI, SDKs and users' jq keep working. */
import type { NetworkView } from "../daemon/inputs.js";
import { dnsNamesOf } from "../dns/records.js";
import type { EndpointRecord } from "../store/records.js";

export interface DockerEndpoint {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
  /** trellis additions, ignored by Docker clients */
  Aliases: string[];
  /** names this endpoint answers to in the embedded DNS: its name, then its aliases */
  DNSNames: string[];
  Interface: string;
  Netns: string;
  Ports: string[];
  /** overlay networks: the cluster node the endpoint lives on */
  Node?: string;
}

function portsOf(ep: EndpointRecord): string[] {
  return ep.publish.map((p) => `${p.hostIp ?? "0.0.0.0"}:${p.hostPort}->${p.containerPort}/${p.proto}`);
}

export function networkJson(view: NetworkView): Record<string, unknown> {
  const { network: net, pools, endpoints } = view;
  const containers: Record<string, DockerEndpoint> = {};
  for (const ep of endpoints) {
    if (ep.state !== "active") continue;
    containers[ep.containerId] = {
      Name: ep.name,
      EndpointID: ep.id,
      MacAddress: ep.mac,
      IPv4Address: ep.ipv4 ?? "",
      IPv6Address: ep.ipv6 ?? "",
      Aliases: ep.aliases,
      DNSNames: dnsNamesOf(ep),
      Interface: ep.ifName,
      Netns: ep.netns.path,
      Ports: portsOf(ep),
      ...(view.node !== undefined ? { Node: view.node } : {}),
    };
  }
  for (const r of view.remote ?? []) {
    containers[r.containerId] = {
      Name: r.name,
      EndpointID: r.id,
      MacAddress: r.mac,
      IPv4Address: r.ipv4 ?? "",
      IPv6Address: "",
      Aliases: r.aliases,
      DNSNames: [r.name, ...r.aliases],
      Interface: "",
      Netns: "",
      Ports: [],
      Node: r.node,
    };
  }
  return {
    Name: net.name,
    Id: net.id,
    Created: net.created,
    Scope: net.driver === "overlay" ? "global" : "local",
    Driver: net.driver,
    EnableIPv6: net.enableIPv6,
    IPAM: {
      Driver: "default",
      Options: {},
      Config: pools.map((p) => ({
        Subnet: p.subnet,
        ...(p.gateway !== undefined ? { Gateway: p.gateway } : {}),
        ...(p.ipRange !== undefined ? { IPRange: p.ipRange } : {}),
      })),
    },
    Internal: net.internal,
    Attachable: true,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: containers,
    Options: net.options,
    Labels: net.labels,
  };
}
