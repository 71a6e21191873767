/**
 * What a service is, as the user defines it and as the cluster stores it: a name and a VIP on each
 * of its networks, its ports, and how backends are picked. Backends (tasks) are not part of the
 * definition: each host announces its own (see catalog.ts). Plain data and validation only.
 */
import type { Protocol } from "../store/records.js";
import type { Affinity } from "./model.js";

export type { Affinity };

export type EndpointMode = "vip" | "dnsrr";
export type PublishMode = "ingress" | "host";

export interface ServicePort {
  proto: Protocol;
  /** the backends' port, and the VIP's */
  target: number;
  /** the port published on the hosts; undefined: reachable at the VIP only */
  published?: number;
  /** meaningful with `published`: every node (ingress) or nodes running a backend (host) */
  mode: PublishMode;
}

export interface ServiceNetwork {
  networkId: string;
  /** bare IPv4, the service's address on this network; absent in dnsrr mode */
  vip?: string;
}

export interface ServiceSpec {
  /** 64 hex digits */
  id: string;
  name: string;
  networks: ServiceNetwork[];
  endpointMode: EndpointMode;
  ports: ServicePort[];
  affinity: Affinity;
  /** TCP port each backend's host probes; undefined: no active check (liveness from gossip only) */
  healthTcp?: number;
  labels: Record<string, string>;
  created: string;
}

/** What `service create` asks for; network references are names, ids or id prefixes. */
export interface CreateServiceInput {
  name: string;
  networks: string[];
  endpointMode: EndpointMode;
  ports: ServicePort[];
  affinity: Affinity;
  healthTcp?: number;
  labels: Record<string, string>;
}

export type BackendHealth = "healthy" | "unhealthy" | "unchecked";

/** One backend as `service inspect` shows it. */
export interface BackendView {
  EndpointID: string;
  ContainerID: string;
  Name: string;
  Node: string;
  NetworkID: string;
  /** bare IPv4 */
  Addr: string;
  Health: BackendHealth;
}

/** `service inspect --json`: Docker's service shape where one exists, flattened. */
export interface ServiceView {
  ID: string;
  Name: string;
  CreatedAt: string;
  EndpointMode: EndpointMode;
  Affinity: Affinity;
  HealthTcp?: number;
  Labels: Record<string, string>;
  /** one per network; Addr is CIDR like Docker's (`10.0.1.2/24`); absent in dnsrr mode */
  VirtualIPs: Array<{ NetworkID: string; Network: string; Addr?: string }>;
  Ports: Array<{ Protocol: Protocol; TargetPort: number; PublishedPort?: number; PublishMode: PublishMode }>;
  Backends: BackendView[];
}

/** What the API routes and the CLI need of the daemon's services. */
export interface ServiceOperations {
  createService(input: CreateServiceInput): Promise<ServiceView>;
  listServices(): ServiceView[];
  /** by name, id or unique id prefix; NOT_FOUND otherwise */
  getService(ref: string): ServiceView;
  removeService(ref: string): Promise<void>;
  /** makes the container's endpoints on the service's networks backends; the container is local */
  addBackend(ref: string, container: string): Promise<ServiceView>;
  removeBackend(ref: string, container: string): Promise<ServiceView>;
}

export const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
