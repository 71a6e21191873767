/**
 * The bridge driver's desired state: pure functions from records to the kernel objects that must
 * exist. The link reconciler makes the kernel match; nothing here performs I/O.
 */
import { createHash } from "node:crypto";
import { contains } from "../ipam/cidr.js";
import type { RouteSpec } from "../kernel/types.js";
import type { EndpointRecord, NetworkRecord, PoolRecord } from "../store/records.js";

export const NETWORK_ALIAS_PREFIX = "trellis:net:";
export const ENDPOINT_ALIAS_PREFIX = "trellis:ep:";

export interface DesiredAddress {
  address: string;
  prefixLen: number;
}

export interface DesiredBridge {
  networkId: string;
  name: string;
  mtu: number;
  mac: string;
  alias: string;
  addresses: DesiredAddress[];
}

export interface DesiredEndpoint {
  endpointId: string;
  bridgeName: string;
  hostIfName: string;
  mtu: number;
  alias: string;
  /** isolated bridge port: no traffic to other isolated ports (ICC off), only to the gateway */
  isolated: boolean;
  /** the port may send frames back out where they came in (needed for a published port's own container) */
  hairpin: boolean;
  container: {
    ifName: string;
    mac: string;
    addresses: DesiredAddress[];
    routes: RouteSpec[];
  };
}

function splitCidr(cidr: string): DesiredAddress {
  const slash = cidr.lastIndexOf("/");
  return { address: cidr.slice(0, slash), prefixLen: Number(cidr.slice(slash + 1)) };
}

function hexBytes(seed: string, count: number): string[] {
  const digest = createHash("sha256").update(seed).digest();
  return [...digest.subarray(0, count)].map((b) => b.toString(16).padStart(2, "0"));
}

/** Locally administered, stable per network, distinct from endpoint MACs (which start 02:42). */
export function bridgeMac(networkId: string): string {
  return ["02", "b7", ...hexBytes(`bridge:${networkId}`, 4)].join(":");
}

/**
 * Docker's scheme: 02:42 followed by the IPv4 address, so a recycled address comes back with the
 * same MAC and neighbours' ARP caches stay right. Without IPv4, a hash of the endpoint id.
 */
export function endpointMac(endpointId: string, ipv4Cidr?: string): string {
  if (ipv4Cidr) {
    const octets = splitCidr(ipv4Cidr)
      .address.split(".")
      .map((o) => Number(o).toString(16).padStart(2, "0"));
    return ["02", "42", ...octets].join(":");
  }
  return ["02", "43", ...hexBytes(`endpoint:${endpointId}`, 4)].join(":");
}

/** 15 characters: the most Linux allows, so collisions among thousands of endpoints stay negligible. */
export function hostIfNameOf(endpointId: string): string {
  return `veth${endpointId.slice(0, 11)}`;
}

export function desiredBridge(net: NetworkRecord, pools: PoolRecord[]): DesiredBridge {
  const addresses: DesiredAddress[] = [];
  for (const pool of pools) {
    if (pool.gateway === undefined) continue;
    addresses.push({ address: pool.gateway, prefixLen: splitCidr(pool.subnet).prefixLen });
  }
  return {
    networkId: net.id,
    name: net.bridge.bridgeName,
    mtu: net.bridge.mtu,
    mac: bridgeMac(net.id),
    alias: NETWORK_ALIAS_PREFIX + net.id,
    addresses,
  };
}

export function desiredEndpoint(
  net: NetworkRecord,
  pools: PoolRecord[],
  ep: EndpointRecord,
): DesiredEndpoint {
  const addresses: DesiredAddress[] = [];
  if (ep.ipv4) addresses.push(splitCidr(ep.ipv4));
  if (ep.ipv6) addresses.push(splitCidr(ep.ipv6));
  const routes: RouteSpec[] = [];
  if (ep.gatewayEndpoint && !net.internal) {
    // Through the gateway of the pool the endpoint's own address comes from: another subnet's
    // gateway is not on-link and the kernel would refuse the route.
    for (const [family, cidr] of [
      [4, ep.ipv4],
      [6, ep.ipv6],
    ] as const) {
      if (cidr === undefined) continue;
      const own = pools.find(
        (p) => p.family === family && p.gateway !== undefined && contains(p.subnet, splitCidr(cidr).address),
      );
      if (own?.gateway !== undefined) routes.push({ family, gateway: own.gateway });
    }
  }
  return {
    endpointId: ep.id,
    bridgeName: net.bridge.bridgeName,
    hostIfName: ep.hostIfName,
    mtu: net.bridge.mtu,
    alias: ENDPOINT_ALIAS_PREFIX + ep.id,
    isolated: !net.bridge.icc,
    hairpin: ep.publish.length > 0 && !net.internal,
    container: { ifName: ep.ifName, mac: ep.mac, addresses, routes },
  };
}
