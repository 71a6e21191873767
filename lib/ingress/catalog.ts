/**
 * What services put in the cluster's replicated table, and how it is read back:
 *   svc              key = service name → ServiceSpec (every host programs the same VIPs)
 *   be:<service id>  key = endpoint id  → BackendEntry (written by the backend's host, with its health)
 * A host's entries vanish from every other host's view when gossip declares it dead, which is how a
 * dead host's backends leave the VIP maps and DNS everywhere.
 */
import type { TableEntry, TableValue } from "../overlay/gossip/index.js";
import type { BackendRecord } from "../store/records.js";
import type { BackendHealth, ServiceSpec } from "./spec.js";

export const SVC_KEYSPACE = "svc";
export const beKeyspace = (serviceId: string) => `be:${serviceId}`;
export const BE_PREFIX = "be:";

/** A backend as the cluster sees it: the record its host keeps, plus that host and its health. */
export interface BackendEntry extends BackendRecord {
  node: string;
  health: BackendHealth;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const HEX64 = /^[0-9a-f]{64}$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const isPort = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;

/** Table values come from other hosts: check the shape before trusting them. */
export function readServiceSpec(e: TableEntry): ServiceSpec | undefined {
  const v = e.value;
  if (e.deleted || !isObject(v)) return undefined;
  const networks = v["networks"];
  const ports = v["ports"];
  const ok =
    typeof v["id"] === "string" &&
    HEX64.test(v["id"]) &&
    v["name"] === e.key &&
    Array.isArray(networks) &&
    networks.every(
      (n) =>
        isObject(n) &&
        typeof n["networkId"] === "string" &&
        (n["vip"] === undefined || (typeof n["vip"] === "string" && IPV4.test(n["vip"]))),
    ) &&
    (v["endpointMode"] === "vip" || v["endpointMode"] === "dnsrr") &&
    Array.isArray(ports) &&
    ports.every(
      (p) =>
        isObject(p) &&
        (p["proto"] === "tcp" || p["proto"] === "udp") &&
        isPort(p["target"]) &&
        (p["published"] === undefined || isPort(p["published"])) &&
        (p["mode"] === "ingress" || p["mode"] === "host"),
    ) &&
    (v["affinity"] === "none" || v["affinity"] === "client-ip") &&
    (v["healthTcp"] === undefined || isPort(v["healthTcp"])) &&
    isObject(v["labels"]) &&
    typeof v["created"] === "string";
  return ok ? (v as unknown as ServiceSpec) : undefined;
}

export function readBackend(e: TableEntry): BackendEntry | undefined {
  const v = e.value;
  if (e.deleted || !isObject(v)) return undefined;
  const ok =
    typeof v["serviceId"] === "string" &&
    e.keyspace === beKeyspace(v["serviceId"]) &&
    v["endpointId"] === e.key &&
    typeof v["networkId"] === "string" &&
    typeof v["containerId"] === "string" &&
    typeof v["name"] === "string" &&
    typeof v["ip"] === "string" &&
    IPV4.test(v["ip"]) &&
    v["node"] === e.owner &&
    (v["health"] === "healthy" || v["health"] === "unhealthy" || v["health"] === "unchecked");
  return ok ? (v as unknown as BackendEntry) : undefined;
}

/** A definition as a table value: plain JSON, optional fields that are unset left out. */
export const specValue = (spec: ServiceSpec): TableValue => JSON.parse(JSON.stringify(spec)) as TableValue;
