/**
 * The JSON the CLI exchanges with trellisd: the network subset of the Docker Engine API plus the
 * `Trellis` extension on connect. Declared here rather than imported from lib/api so the CLI
 * stays a client of the wire format, not of the daemon's code.
 */
import type { IpamConfigEntry } from "./ipam.js";
import type { Proto } from "./publish.js";

export interface NetworkCreateRequest {
  Name: string;
  Driver: string;
  CheckDuplicate: true;
  Internal: boolean;
  EnableIPv6: boolean;
  IPAM: { Driver: "default"; Config: IpamConfigEntry[]; Options: Record<string, string> };
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

export interface NetworkCreateResponse {
  Id: string;
  Warning?: string;
}

export interface EndpointResource {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
}

/** As returned by GET /networks and GET /networks/{id}; only Id and Name are relied upon. */
export interface NetworkResource {
  Name: string;
  Id: string;
  Created?: string;
  Scope?: string;
  Driver?: string;
  EnableIPv6?: boolean;
  IPAM?: { Driver: string; Options: Record<string, string>; Config: IpamConfigEntry[] };
  Internal?: boolean;
  Attachable?: boolean;
  Containers?: Record<string, EndpointResource>;
  Options?: Record<string, string>;
  Labels?: Record<string, string>;
  [extra: string]: unknown;
}

export interface PublishWire {
  Proto: Proto;
  HostIp?: string;
  HostPort: number;
  ContainerPort: number;
}

export interface NetworkConnectRequest {
  /** a named netns, an absolute path to a netns file, or `pid:PID`; resolved by the daemon */
  Container: string;
  EndpointConfig: {
    IPAMConfig: { IPv4Address?: string; IPv6Address?: string };
    Aliases: string[];
  };
  Trellis: { Name?: string; Publish: PublishWire[] };
}

export interface NetworkDisconnectRequest {
  Container: string;
  Force: boolean;
}

export interface NetworkPruneResponse {
  NetworksDeleted: string[] | null;
}

/** Minimal shape check: enough that output code cannot crash on a daemon bug. */
export function isNetworkResource(value: unknown): value is NetworkResource {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v["Id"] === "string" && typeof v["Name"] === "string";
}

/** One port of POST /trellis/services/create; PublishMode only with PublishedPort. */
export interface ServicePortWire {
  Protocol: Proto;
  TargetPort: number;
  PublishedPort?: number;
  PublishMode?: "ingress" | "host";
}

export interface ServiceCreateRequest {
  Name: string;
  /** names, ids or id prefixes */
  Networks: string[];
  EndpointMode: "vip" | "dnsrr";
  Ports: ServicePortWire[];
  Affinity: "none" | "client-ip";
  HealthTcp?: number;
  Labels: Record<string, string>;
}

/** POST /trellis/services/{ref}/backends and .../backends/remove */
export interface ServiceBackendRequest {
  /** as for network connect: resolved by the daemon */
  Container: string;
}

/** As returned by GET /trellis/services[/{ref}]: the fields ls and create rely on (inspect prints all). */
export interface ServiceResource {
  ID: string;
  Name: string;
  EndpointMode: string;
  /** Addr is CIDR; absent in dnsrr mode */
  VirtualIPs: Array<{ NetworkID: string; Network: string; Addr?: string }>;
  Ports: Array<{ Protocol: string; TargetPort: number; PublishedPort?: number; PublishMode: string }>;
  Backends: Array<{ Name: string; Addr: string; Health: string }>;
}

export function isServiceResource(value: unknown): value is ServiceResource {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v["ID"] === "string" &&
    typeof v["Name"] === "string" &&
    Array.isArray(v["VirtualIPs"]) &&
    Array.isArray(v["Ports"]) &&
    Array.isArray(v["Backends"])
  );
}

/** `/trellis/services/{nameOrId}` with the segment escaped, so names cannot smuggle `/` or `?`. */
export function servicePath(nameOrId: string, suffix = ""): string {
  return `/trellis/services/${encodeURIComponent(nameOrId)}${suffix}`;
}
