/**
 * The Docker engine's remote network-driver and IPAM-driver protocol (API 1.41, "v1" plugins):
 * request bodies parsed once, at the edge, into typed values. The engine encodes Go structs, so
 * field names are PascalCase and matched case-insensitively, and a missing field is a zero value
 * (an empty body included); anything of the wrong type is refused with a message naming it.
 * See docker-engine-notes.md §1 for what a real engine sends.
 */
import { invalid } from "../common/errors.js";

export const NETWORK_DRIVER = "NetworkDriver";
export const IPAM_DRIVER = "IpamDriver";
/** The content type plugins answer with, by convention (the engine does not check it). */
export const PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1+json";

/** CreateNetwork's option keys (libnetwork's netlabel package). */
export const OPT_GENERIC = "com.docker.network.generic";
export const OPT_INTERNAL = "com.docker.network.internal";
export const OPT_ENABLE_IPV6 = "com.docker.network.enable_ipv6";
/** CreateEndpoint/Join/ProgramExternalConnectivity option keys. */
export const OPT_PORTMAP = "com.docker.network.portmap";
/** RequestAddress's option marking the request for a network's gateway. */
export const OPT_REQUEST_ADDRESS_TYPE = "RequestAddressType";
export const GATEWAY_ADDRESS_TYPE = "com.docker.network.gateway";

type Json = Record<string, unknown>;

/** One element of CreateNetwork's IPv4Data/IPv6Data: what the IPAM driver handed out. */
export interface IpamData {
  addressSpace: string;
  /** CIDR */
  pool: string;
  /** CIDR (the gateway address with the pool's prefix length); "" when none */
  gateway: string;
  auxAddresses: Record<string, string>;
}

export interface CreateNetworkRequest {
  networkId: string;
  /** the user's `-o KEY=VALUE` options */
  generic: Record<string, string>;
  internal: boolean;
  enableIPv6: boolean;
  ipv4: IpamData[];
  ipv6: IpamData[];
}

/** A `-p` mapping as the engine passes it (Proto 6 = tcp, 17 = udp; HostPort 0 = any). */
export interface PortBinding {
  proto: number;
  /** container port */
  port: number;
  /** "" = every host address */
  hostIp: string;
  hostPort: number;
  /** last port of a host port range; 0 = just hostPort */
  hostPortEnd: number;
}

export interface EndpointInterface {
  /** CIDR or "" */
  address: string;
  addressIPv6: string;
  macAddress: string;
}

export interface EndpointRef {
  networkId: string;
  endpointId: string;
}

export interface CreateEndpointRequest extends EndpointRef {
  iface: EndpointInterface;
  portmap: PortBinding[];
}

export interface JoinRequest extends EndpointRef {
  sandboxKey: string;
}

export interface ProgramRequest extends EndpointRef {
  portmap: PortBinding[];
}

export interface RequestPoolRequest {
  addressSpace: string;
  /** CIDR or "" (any) */
  pool: string;
  /** CIDR inside pool for dynamic addresses (`--ip-range`), or "" */
  subPool: string;
  options: Record<string, string>;
  v6: boolean;
}

export interface RequestAddressRequest {
  poolId: string;
  /** bare IP or "" (any) */
  address: string;
  /** true for the network's gateway (Options.RequestAddressType) */
  gateway: boolean;
  options: Record<string, string>;
}

export interface ReleaseAddressRequest {
  poolId: string;
  address: string;
}

// ------------------------------------------------------------------------------------ readers

/** The body as an object; an empty body is an empty object. */
export function objectOf(body: unknown, what = "request body"): Json {
  if (body === undefined || body === null) return {};
  if (typeof body !== "object" || Array.isArray(body)) throw invalid(`${what} must be a JSON object`);
  return body as Json;
}

/** A field by its Go name, matched case-insensitively as Go's decoder does. */
function field(o: Json, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  const key = Object.keys(o).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : o[key];
}

function str(o: Json, name: string): string {
  const v = field(o, name);
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw invalid(`${name} must be a string`);
  return v;
}

function num(o: Json, name: string): number {
  const v = field(o, name);
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v)) throw invalid(`${name} must be an integer`);
  return v;
}

/** Go's bool options arrive as JSON booleans; strings "true"/"false" are taken too. */
function bool(v: unknown, name: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "false") return v === "true";
  throw invalid(`${name} must be a boolean`);
}

function stringMap(v: unknown, name: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = objectOf(v, name);
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(o)) {
    if (typeof value !== "string") throw invalid(`${name}.${k} must be a string`);
    out[k] = value;
  }
  return out;
}

function array(v: unknown, name: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(`${name} must be an array`);
  return v;
}

function endpointRef(o: Json): EndpointRef {
  return { networkId: str(o, "NetworkID"), endpointId: str(o, "EndpointID") };
}

function ipamData(v: unknown, name: string): IpamData {
  const o = objectOf(v, name);
  return {
    addressSpace: str(o, "AddressSpace"),
    pool: str(o, "Pool"),
    gateway: str(o, "Gateway"),
    auxAddresses: stringMap(field(o, "AuxAddresses"), `${name}.AuxAddresses`),
  };
}

function portBinding(v: unknown): PortBinding {
  const o = objectOf(v, OPT_PORTMAP);
  return {
    proto: num(o, "Proto"),
    port: num(o, "Port"),
    hostIp: str(o, "HostIP"),
    hostPort: num(o, "HostPort"),
    hostPortEnd: num(o, "HostPortEnd"),
  };
}

function portmapOf(o: Json): PortBinding[] {
  const options = objectOf(field(o, "Options"), "Options");
  return array(options[OPT_PORTMAP], OPT_PORTMAP).map(portBinding);
}

// ------------------------------------------------------------------------------------ parsers

export function parseEndpointRef(body: unknown): EndpointRef {
  return endpointRef(objectOf(body));
}

export function parseNetworkId(body: unknown): string {
  return str(objectOf(body), "NetworkID");
}

export function parseCreateNetwork(body: unknown): CreateNetworkRequest {
  const o = objectOf(body);
  const options = objectOf(field(o, "Options"), "Options");
  return {
    networkId: str(o, "NetworkID"),
    generic: stringMap(options[OPT_GENERIC], OPT_GENERIC),
    internal: bool(options[OPT_INTERNAL], OPT_INTERNAL),
    enableIPv6: bool(options[OPT_ENABLE_IPV6], OPT_ENABLE_IPV6),
    ipv4: array(field(o, "IPv4Data"), "IPv4Data").map((d) => ipamData(d, "IPv4Data")),
    ipv6: array(field(o, "IPv6Data"), "IPv6Data").map((d) => ipamData(d, "IPv6Data")),
  };
}

export function parseCreateEndpoint(body: unknown): CreateEndpointRequest {
  const o = objectOf(body);
  const iface = objectOf(field(o, "Interface"), "Interface");
  return {
    ...endpointRef(o),
    iface: {
      address: str(iface, "Address"),
      addressIPv6: str(iface, "AddressIPv6"),
      macAddress: str(iface, "MacAddress"),
    },
    portmap: portmapOf(o),
  };
}

export function parseJoin(body: unknown): JoinRequest {
  const o = objectOf(body);
  return { ...endpointRef(o), sandboxKey: str(o, "SandboxKey") };
}

export function parseProgram(body: unknown): ProgramRequest {
  const o = objectOf(body);
  return { ...endpointRef(o), portmap: portmapOf(o) };
}

export function parseRequestPool(body: unknown): RequestPoolRequest {
  const o = objectOf(body);
  const v6 = field(o, "V6");
  return {
    addressSpace: str(o, "AddressSpace"),
    pool: str(o, "Pool"),
    subPool: str(o, "SubPool"),
    options: stringMap(field(o, "Options"), "Options"),
    v6: bool(v6, "V6"),
  };
}

export function parsePoolId(body: unknown): string {
  return str(objectOf(body), "PoolID");
}

export function parseRequestAddress(body: unknown): RequestAddressRequest {
  const o = objectOf(body);
  const options = stringMap(field(o, "Options"), "Options");
  return {
    poolId: str(o, "PoolID"),
    address: str(o, "Address"),
    gateway: options[OPT_REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS_TYPE,
    options,
  };
}

export function parseReleaseAddress(body: unknown): ReleaseAddressRequest {
  const o = objectOf(body);
  return { poolId: str(o, "PoolID"), address: str(o, "Address") };
}
