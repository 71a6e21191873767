/**
 * What the protocol handlers (routes.ts) need from trellis: one interface per subsystem, so the
 * handlers can be tested against fakes and the implementation (driver.ts, ipam.ts) against the
 * daemon's managers. Results use the protocol's own field names, ready to be sent.
 */
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  EndpointRef,
  JoinRequest,
  ProgramRequest,
  ReleaseAddressRequest,
  RequestAddressRequest,
  RequestPoolRequest,
} from "./protocol.js";

export interface Capabilities {
  /** "local": each engine holds its own networks ("global" needs a swarm manager) */
  Scope: "local" | "global";
  /** "global": containers on different hosts reach each other (overlay networks) */
  ConnectivityScope?: "local" | "global";
}

export interface CreateEndpointResult {
  /** only the fields the request left empty, as the engine allows */
  Interface?: { Address?: string; AddressIPv6?: string; MacAddress?: string };
}

export interface JoinResult {
  InterfaceName: { SrcName: string; DstPrefix: string };
  /** bare IPv4, only for networks that give containers a default route */
  Gateway?: string;
  GatewayIPv6?: string;
  /** true: the engine must not add docker_gwbridge for external connectivity */
  DisableGatewayService: boolean;
}

export interface NetworkDriverBackend {
  capabilities(): Capabilities;
  createNetwork(req: CreateNetworkRequest): Promise<void>;
  deleteNetwork(networkId: string): Promise<void>;
  createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult>;
  /** free-form facts about an endpoint (the engine shows them nowhere important) */
  endpointOperInfo(ref: EndpointRef): Record<string, unknown>;
  deleteEndpoint(ref: EndpointRef): Promise<void>;
  join(req: JoinRequest): Promise<JoinResult>;
  leave(ref: EndpointRef): Promise<void>;
  programExternalConnectivity(req: ProgramRequest): Promise<void>;
  revokeExternalConnectivity(ref: EndpointRef): Promise<void>;
}

export interface IpamCapabilities {
  RequiresMACAddress: boolean;
  RequiresRequestReplay: boolean;
}

export interface AddressSpaces {
  LocalDefaultAddressSpace: string;
  GlobalDefaultAddressSpace: string;
}

export interface PoolResult {
  PoolID: string;
  /** CIDR */
  Pool: string;
  Data: Record<string, string>;
}

export interface AddressResult {
  /** CIDR: the address with its pool's prefix length */
  Address: string;
  Data: Record<string, string>;
}

export interface IpamBackend {
  capabilities(): IpamCapabilities;
  addressSpaces(): AddressSpaces;
  requestPool(req: RequestPoolRequest): Promise<PoolResult>;
  releasePool(poolId: string): Promise<void>;
  requestAddress(req: RequestAddressRequest): Promise<AddressResult>;
  releaseAddress(req: ReleaseAddressRequest): Promise<void>;
}
