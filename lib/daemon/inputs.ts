/** Validated, typed inputs of the daemon's operations (the API and the Docker plugin produce them). */
import type { EndpointRecord, NetworkRecord, PoolRecord, PortMapping } from "../store/records.js";

export interface IpamConfigInput {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
}

export interface CreateNetworkInput {
  name: string;
  /** "bridge" when empty */
  driver: string;
  internal: boolean;
  enableIPv6: boolean;
  ipamDriver: string;
  ipamConfigs: IpamConfigInput[];
  options: Record<string, string>;
  labels: Record<string, string>;
}

export interface ConnectInput {
  /** a netns name, a path to a netns file, or pid:PID */
  container: string;
  ipv4?: string;
  ipv6?: string;
  aliases: string[];
  /** endpoint name; defaults to the netns name */
  name?: string;
  publish: PortMapping[];
}

export interface DisconnectInput {
  container: string;
  force: boolean;
}

/** A network with what inspect needs to show it. */
export interface NetworkView {
  network: NetworkRecord;
  pools: PoolRecord[];
  endpoints: EndpointRecord[];
  /** overlay networks: this host's node name, and the endpoints other hosts announced */
  node?: string;
  remote?: RemoteEndpointView[];
}

export interface RemoteEndpointView {
  id: string;
  containerId: string;
  name: string;
  aliases: string[];
  /** CIDR */
  ipv4?: string;
  mac: string;
  node: string;
}

/** What the API layer needs from the daemon. */
export interface NetworkOperations {
  createNetwork(input: CreateNetworkInput): Promise<NetworkView>;
  listNetworks(): NetworkView[];
  /** by full id, exact name, or unique id prefix */
  getNetwork(ref: string): NetworkView;
  removeNetwork(ref: string): Promise<void>;
  /** removes every network with no endpoints; returns their names */
  pruneNetworks(): Promise<string[]>;
  connect(networkRef: string, input: ConnectInput): Promise<EndpointRecord>;
  disconnect(networkRef: string, input: DisconnectInput): Promise<void>;
}
