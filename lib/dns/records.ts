/**
 * The in-memory record index the resolver answers from: endpoints by (network, name), by address,
 * and each container's networks (its DNS scope), plus the services (services.ts). Updated
 * synchronously by the daemon's endpoint events and the service manager, so an answer changes the
 * moment an endpoint connects or disconnects or a service changes. No I/O.
 */
import { type Cidr, contains, formatIp, type IpAddress, parseCidr, tryParseAddress } from "../ipam/cidr.js";
import type { EndpointRecord } from "../store/records.js";
import { normalizeName } from "./names.js";
import { ServiceRecords } from "./services.js";

/** What DNS needs of an endpoint. */
export interface DnsEndpoint {
  id: string;
  networkId: string;
  containerId: string;
  /** the endpoint name, as given */
  name: string;
  aliases: readonly string[];
  /** bare canonical addresses */
  ipv4?: string;
  ipv6?: string;
}

/** The networks whose names a query may see: the asker's networks, in a stable order. */
export type Scope = readonly string[];

const bare = (cidr: string | undefined): string | undefined => {
  if (cidr === undefined) return undefined;
  const slash = cidr.indexOf("/");
  const ip = tryParseAddress(slash < 0 ? cidr : cidr.slice(0, slash));
  return ip && formatIp(ip);
};

export function dnsEndpointOf(rec: EndpointRecord): DnsEndpoint {
  const ipv4 = bare(rec.ipv4);
  const ipv6 = bare(rec.ipv6);
  return {
    id: rec.id,
    networkId: rec.networkId,
    containerId: rec.containerId,
    name: rec.name,
    aliases: [...rec.aliases],
    ...(ipv4 ? { ipv4 } : {}),
    ...(ipv6 ? { ipv6 } : {}),
  };
}

/** The names an endpoint answers to: its name, then its aliases (the order `network inspect` shows). */
export function dnsNamesOf(ep: { name: string; aliases: readonly string[] }): string[] {
  return [...new Set([ep.name, ...ep.aliases])];
}

export class DnsRecords {
  private readonly endpoints = new Map<string, DnsEndpoint>();
  /** networkId → lower-case name → endpoints answering to it */
  private readonly names = new Map<string, Map<string, DnsEndpoint[]>>();
  /** canonical address → endpoints holding it (one per network at most) */
  private readonly addresses = new Map<string, DnsEndpoint[]>();
  /** containerId → networkId → how many endpoints (always 1 today; counted to stay correct) */
  private readonly containers = new Map<string, Map<string, number>>();
  private readonly subnets = new Map<string, Cidr[]>();
  /** Fed by the service manager, not by the store: clear() leaves them (see DnsService.rebuild). */
  readonly services = new ServiceRecords();
  private changes = 0;

  /** Grows on every change, of endpoints or services: lets callers drop what they derived from the
   * old records (the resolver's memo). */
  get generation(): number {
    return this.changes + this.services.generation;
  }

  add(ep: DnsEndpoint): void {
    if (this.endpoints.has(ep.id)) this.remove(ep.id);
    this.endpoints.set(ep.id, ep);
    const byName = this.names.get(ep.networkId) ?? new Map<string, DnsEndpoint[]>();
    this.names.set(ep.networkId, byName);
    for (const name of new Set(dnsNamesOf(ep).map(normalizeName))) push(byName, name, ep);
    for (const ip of [ep.ipv4, ep.ipv6]) if (ip) push(this.addresses, ip, ep);
    const nets = this.containers.get(ep.containerId) ?? new Map<string, number>();
    this.containers.set(ep.containerId, nets);
    nets.set(ep.networkId, (nets.get(ep.networkId) ?? 0) + 1);
    this.changes++;
  }

  /** Removes an endpoint; unknown ids are ignored (events may repeat or precede a rebuild). */
  remove(endpointId: string): DnsEndpoint | undefined {
    const ep = this.endpoints.get(endpointId);
    if (!ep) return undefined;
    this.endpoints.delete(endpointId);
    const byName = this.names.get(ep.networkId);
    for (const name of new Set(dnsNamesOf(ep).map(normalizeName))) if (byName) pull(byName, name, ep);
    if (byName?.size === 0) this.names.delete(ep.networkId);
    for (const ip of [ep.ipv4, ep.ipv6]) if (ip) pull(this.addresses, ip, ep);
    const nets = this.containers.get(ep.containerId);
    const left = (nets?.get(ep.networkId) ?? 1) - 1;
    if (left > 0) nets?.set(ep.networkId, left);
    else nets?.delete(ep.networkId);
    if (nets?.size === 0) this.containers.delete(ep.containerId);
    this.changes++;
    return ep;
  }

  setSubnets(networkId: string, subnets: readonly string[]): void {
    this.subnets.set(
      networkId,
      subnets.map((s) => parseCidr(s)),
    );
    this.changes++;
  }

  removeNetwork(networkId: string): void {
    this.subnets.delete(networkId);
    this.changes++;
  }

  /** Forgets endpoints and subnets (what a rebuild reads again from the store); keeps services. */
  clear(): void {
    this.endpoints.clear();
    this.names.clear();
    this.addresses.clear();
    this.containers.clear();
    this.subnets.clear();
    this.changes++;
  }

  /** The asker's scope; empty for a container trellis does not know. */
  scopeOf(containerId: string): Scope {
    const nets = this.containers.get(containerId);
    return nets ? [...nets.keys()] : [];
  }

  /** Every network with a subnet, an endpoint or a service: the scope of an administrator's lookup. */
  allNetworks(): Scope {
    return [...new Set([...this.subnets.keys(), ...this.names.keys(), ...this.services.networks()])];
  }

  hasContainer(containerId: string): boolean {
    return this.containers.has(containerId);
  }

  /** Endpoints answering to the (normalised) name on the scope's networks. */
  byName(scope: Scope, lname: string): DnsEndpoint[] {
    const out: DnsEndpoint[] = [];
    for (const net of scope) {
      const found = this.names.get(net)?.get(lname);
      if (found) out.push(...found);
    }
    return out;
  }

  /** Endpoints answering to the (normalised) name on one network; undefined when none does. */
  endpointsOn(networkId: string, lname: string): readonly DnsEndpoint[] | undefined {
    return this.names.get(networkId)?.get(lname);
  }

  /** Endpoints holding the address on the scope's networks. */
  byAddress(scope: Scope, ip: IpAddress): DnsEndpoint[] {
    const found = this.addresses.get(formatIp(ip)) ?? [];
    return found.filter((ep) => scope.includes(ep.networkId));
  }

  /** True when the address lies in a subnet of one of the scope's networks. */
  inSubnets(scope: Scope, ip: IpAddress): boolean {
    return scope.some((net) => this.subnets.get(net)?.some((c) => contains(c, ip)) ?? false);
  }

  endpointsOf(containerId: string): DnsEndpoint[] {
    return [...this.endpoints.values()].filter((e) => e.containerId === containerId);
  }

  /** Finds the container of an endpoint by its id, name or alias (the API's `from`). */
  containerByEndpointName(ref: string): string | undefined {
    const lname = normalizeName(ref);
    for (const ep of this.endpoints.values()) {
      if (ep.id === ref || ep.containerId === ref) return ep.containerId;
      if (dnsNamesOf(ep).some((n) => normalizeName(n) === lname)) return ep.containerId;
    }
    return undefined;
  }
}

function push<K>(map: Map<K, DnsEndpoint[]>, key: K, ep: DnsEndpoint): void {
  const list = map.get(key);
  if (list) list.push(ep);
  else map.set(key, [ep]);
}

function pull<K>(map: Map<K, DnsEndpoint[]>, key: K, ep: DnsEndpoint): void {
  const list = map.get(key)?.filter((e) => e.id !== ep.id);
  if (list && list.length > 0) map.set(key, list);
  else map.delete(key);
}
