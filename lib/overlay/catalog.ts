/**
 * What overlay networks put in the replicated table, and how it is read back. Two keyspaces:
 *   net            key = network name → OverlayNetworkSpec (the same network on every host)
 *   ep:<net id>    key = endpoint id  → OverlayEndpointEntry (written by the endpoint's host)
 */
import type { TableEntry } from "./gossip/index.js";

export const NET_KEYSPACE = "net";
export const epKeyspace = (networkId: string) => `ep:${networkId}`;

export interface OverlayNetworkSpec {
  id: string;
  name: string;
  subnet: string;
  gateway: string;
  vni: number;
  blockBits: number;
  internal: boolean;
  options: Record<string, string>;
  labels: Record<string, string>;
  created: string;
}

export interface OverlayEndpointEntry {
  networkId: string;
  containerId: string;
  name: string;
  aliases: string[];
  /** CIDR */
  ipv4?: string;
  mac: string;
  /** the host's VTEP (advertise address) */
  vtep: string;
  node: string;
  /** a host's own mesh address (lib/ingress/mesh-ports.ts), not a container: no DNS name, no inspect */
  mesh?: true;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Table values come from other hosts: check the shape before trusting them. */
export function readNetworkSpec(e: TableEntry): OverlayNetworkSpec | undefined {
  const v = e.value;
  if (e.deleted || !isObject(v)) return undefined;
  const ok =
    typeof v["id"] === "string" &&
    /^[0-9a-f]{64}$/.test(v["id"]) &&
    v["name"] === e.key &&
    typeof v["subnet"] === "string" &&
    typeof v["gateway"] === "string" &&
    typeof v["vni"] === "number" &&
    typeof v["blockBits"] === "number" &&
    typeof v["internal"] === "boolean" &&
    isObject(v["options"]) &&
    isObject(v["labels"]) &&
    typeof v["created"] === "string";
  return ok ? (v as unknown as OverlayNetworkSpec) : undefined;
}

export function readEndpoint(e: TableEntry): OverlayEndpointEntry | undefined {
  const v = e.value;
  if (e.deleted || !isObject(v)) return undefined;
  const ok =
    typeof v["networkId"] === "string" &&
    typeof v["name"] === "string" &&
    Array.isArray(v["aliases"]) &&
    typeof v["mac"] === "string" &&
    /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(v["mac"]) &&
    typeof v["vtep"] === "string" &&
    typeof v["node"] === "string" &&
    v["node"] === e.owner &&
    (v["ipv4"] === undefined || typeof v["ipv4"] === "string");
  return ok ? (v as unknown as OverlayEndpointEntry) : undefined;
}
