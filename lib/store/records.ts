/**
 * What trellisd persists. These records are the desired state: on start the daemon rebuilds every
 * kernel object from them, so anything not recorded here does not exist as far as trellis knows.
 */
import type { NetnsRef } from "../kernel/types.js";

export type Family = 4 | 6;

/** One subnet handed to a network by IPAM. */
export interface PoolRecord {
  /** opaque, unique; e.g. "<network id>/v4/0" */
  id: string;
  family: Family;
  /** canonical CIDR, e.g. "172.18.0.0/16" */
  subnet: string;
  /** canonical CIDR inside subnet from which dynamic addresses come; undefined = whole subnet */
  ipRange?: string;
  /** bare IP, reserved in the pool; undefined for pools without a gateway */
  gateway?: string;
  /** round-robin position: offset (as decimal string, fits IPv6) of the last address handed out */
  cursor: string;
  /** who holds the pool, e.g. a network id */
  owner: string;
}

/** An address taken from a pool. */
export interface AllocationRecord {
  poolId: string;
  /** bare IP */
  address: string;
  /** "gateway", an endpoint id, or another holder */
  owner: string;
}

export interface BridgeOptions {
  /** Linux bridge device name, at most 15 characters */
  bridgeName: string;
  mtu: number;
  /** inter-container communication on the same network */
  icc: boolean;
  /** masquerade traffic leaving the host from this network's subnets */
  masquerade: boolean;
  /** host address that ports are published on when a mapping names none; undefined = every address */
  defaultHostIp?: string;
}

export interface NetworkRecord {
  /** 64 lower-case hex characters */
  id: string;
  name: string;
  driver: "bridge" | "overlay";
  /** RFC 3339 */
  created: string;
  internal: boolean;
  enableIPv6: boolean;
  /** user-supplied -o options, as given */
  options: Record<string, string>;
  labels: Record<string, string>;
  /** ids of this network's pools, IPv4 first */
  poolIds: string[];
  bridge: BridgeOptions;
  /** overlay networks only: the cluster-wide identity of the network's VXLAN segment */
  overlay?: OverlayOptions;
  /** networks created by a Docker engine through the plugin (lib/plugin): removed only by it */
  docker?: DockerNetworkInfo;
}

/** What a network created through the Docker plugin remembers of the engine's side. */
export interface DockerNetworkInfo {
  /** who assigns addresses: trellis's IPAM driver (`--ipam-driver trellis`) or the engine's own */
  ipam: "trellis" | "engine";
}

export interface OverlayOptions {
  /** VXLAN network identifier, the same on every host */
  vni: number;
  /** host bits per address block (a host hands out addresses only from blocks it owns) */
  blockBits: number;
}

export type Protocol = "tcp" | "udp";

export interface PortMapping {
  proto: Protocol;
  /** bare IPv4 the port is published on; undefined = every local address */
  hostIp?: string;
  hostPort: number;
  containerPort: number;
}

export type EndpointState =
  /** recorded before the kernel work; rolled back if the daemon restarts while in this state */
  | "creating"
  /** fully programmed */
  | "active";

export interface EndpointRecord {
  /** 64 lower-case hex characters */
  id: string;
  networkId: string;
  /** DNS/endpoint name; defaults to the netns name */
  name: string;
  /** 64 hex, derived from the namespace identity, shown as the "container" id */
  containerId: string;
  netns: NetnsRef;
  /** interface name inside the container, e.g. eth0 */
  ifName: string;
  /** host-side veth name, derived from the endpoint id */
  hostIfName: string;
  mac: string;
  /** CIDR, e.g. "172.18.0.2/16" */
  ipv4?: string;
  ipv6?: string;
  aliases: string[];
  publish: PortMapping[];
  /** true when this endpoint gave the container its default route */
  gatewayEndpoint: boolean;
  state: EndpointState;
  created: string;
  /**
   * Endpoints of a Docker engine (lib/plugin): the veth's far end (`ifName`) is created in the
   * daemon's own namespace and the engine moves it into the container, so trellis never enters
   * the container's namespace (`netns` is a placeholder) and keeps no DNS listeners there.
   */
  docker?: DockerEndpointInfo;
}

export interface DockerEndpointInfo {
  /** between Join and Leave: the engine has (or is about to have) the far end in the container */
  joined: boolean;
  /** the container's namespace path as the engine names it (Join's SandboxKey), once joined */
  sandboxKey?: string;
  /** the engine's network id (differs from networkId for an overlay or adopted network) */
  dockerNetworkId: string;
  /** the addresses came from trellis's IPAM driver: the engine releases them after DeleteEndpoint */
  fromDriver?: boolean;
}

/** A kernel object whose deletion was promised but may not have happened yet (redone after a crash). */
export interface PendingDeletion {
  id: number;
  kind: "link";
  /** namespace the object lives in; undefined = the daemon's own namespace */
  netnsPath?: string;
  name: string;
}

export type { ServiceSpec as ServiceRecord } from "../ingress/spec.js";

/** One endpoint of this host serving as a backend (task) of a service. */
export interface BackendRecord {
  serviceId: string;
  endpointId: string;
  networkId: string;
  containerId: string;
  /** the endpoint's name */
  name: string;
  /** bare IPv4 */
  ip: string;
}
