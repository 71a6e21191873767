/**
 * Turns untrusted JSON bodies into typed inputs. Field names follow the Docker Engine API; a wrong
 * type is a 400 naming the field, never a crash deeper in.
 */
import { invalid } from "../common/errors.js";
import type { ConnectInput, CreateNetworkInput, DisconnectInput, IpamConfigInput } from "../daemon/inputs.js";
import { tryParseAddress } from "../ipam/cidr.js";
import type { PortMapping } from "../store/records.js";

type Json = Record<string, unknown>;

function object(value: unknown, field: string): Json {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid(`${field} must be a JSON object`);
  return value as Json;
}

function optString(o: Json, key: string, field = key): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw invalid(`${field} must be a string`);
  return v;
}

function bool(o: Json, key: string, field = key): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw invalid(`${field} must be true or false`);
  return v;
}

function stringMap(value: unknown, field: string): Record<string, string> {
  const o = object(value, field);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (typeof v !== "string") throw invalid(`${field}["${k}"] must be a string`);
    out[k] = v;
  }
  return out;
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw invalid(`${field} must be a list of strings`);
  }
  return value as string[];
}

export function parseCreateNetwork(body: unknown): CreateNetworkInput {
  const o = object(body, "request body");
  const name = optString(o, "Name");
  if (name === undefined) throw invalid("Name is required");
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name) || name.length > 128) {
    throw invalid(
      `invalid network name "${name}": use letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  }
  const ipam = object(o["IPAM"], "IPAM");
  const rawConfigs = ipam["Config"] ?? [];
  if (!Array.isArray(rawConfigs)) throw invalid("IPAM.Config must be a list");
  const ipamConfigs: IpamConfigInput[] = rawConfigs.map((c, i) => {
    const co = object(c, `IPAM.Config[${i}]`);
    const subnet = optString(co, "Subnet", `IPAM.Config[${i}].Subnet`);
    const gateway = optString(co, "Gateway", `IPAM.Config[${i}].Gateway`);
    const ipRange = optString(co, "IPRange", `IPAM.Config[${i}].IPRange`);
    if (subnet === undefined && (gateway !== undefined || ipRange !== undefined)) {
      throw invalid(`IPAM.Config[${i}]: a gateway or ip-range needs a subnet`);
    }
    return {
      ...(subnet !== undefined ? { subnet } : {}),
      ...(gateway !== undefined ? { gateway } : {}),
      ...(ipRange !== undefined ? { ipRange } : {}),
    };
  });
  return {
    name,
    driver: optString(o, "Driver") ?? "bridge",
    internal: bool(o, "Internal"),
    enableIPv6: bool(o, "EnableIPv6"),
    ipamDriver: optString(ipam, "Driver", "IPAM.Driver") ?? "default",
    ipamConfigs,
    options: stringMap(o["Options"], "Options"),
    labels: stringMap(o["Labels"], "Labels"),
  };
}

function port(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw invalid(`${field} must be a port number from 1 to 65535`);
  }
  return value;
}

function parsePublish(value: unknown): PortMapping[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid("Trellis.Publish must be a list");
  return value.map((p, i) => {
    const po = object(p, `Trellis.Publish[${i}]`);
    const proto = optString(po, "Proto", `Trellis.Publish[${i}].Proto`) ?? "tcp";
    if (proto !== "tcp" && proto !== "udp") throw invalid(`Trellis.Publish[${i}].Proto must be tcp or udp`);
    const hostIp = optString(po, "HostIp", `Trellis.Publish[${i}].HostIp`);
    if (hostIp !== undefined && tryParseAddress(hostIp)?.family !== 4) {
      throw invalid(`Trellis.Publish[${i}].HostIp "${hostIp}" is not an IPv4 address`);
    }
    return {
      proto,
      ...(hostIp !== undefined && hostIp !== "0.0.0.0" ? { hostIp } : {}),
      hostPort: port(po["HostPort"], `Trellis.Publish[${i}].HostPort`),
      containerPort: port(po["ContainerPort"], `Trellis.Publish[${i}].ContainerPort`),
    };
  });
}

export function parseConnect(body: unknown): ConnectInput {
  const o = object(body, "request body");
  const container = optString(o, "Container");
  if (container === undefined) throw invalid("Container is required");
  const ec = object(o["EndpointConfig"], "EndpointConfig");
  const ipamConfig = object(ec["IPAMConfig"], "EndpointConfig.IPAMConfig");
  const trellis = object(o["Trellis"], "Trellis");
  const ipv4 = optString(ipamConfig, "IPv4Address", "EndpointConfig.IPAMConfig.IPv4Address");
  const ipv6 = optString(ipamConfig, "IPv6Address", "EndpointConfig.IPAMConfig.IPv6Address");
  const name = optString(trellis, "Name", "Trellis.Name");
  return {
    container,
    ...(ipv4 !== undefined ? { ipv4 } : {}),
    ...(ipv6 !== undefined ? { ipv6 } : {}),
    aliases: stringList(ec["Aliases"], "EndpointConfig.Aliases"),
    ...(name !== undefined ? { name } : {}),
    publish: parsePublish(trellis["Publish"]),
  };
}

export function parseDisconnect(body: unknown): DisconnectInput {
  const o = object(body, "request body");
  const container = optString(o, "Container");
  if (container === undefined) throw invalid("Container is required");
  return { container, force: bool(o, "Force") };
}

/** Docker's `filters` query parameter: {"name": {"x": true}} or {"name": ["x"]}. */
export function parseFilters(raw: string | null): Record<string, string[]> {
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalid(`invalid filters: ${raw}`);
  }
  const out: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(object(parsed, "filters"))) {
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) out[key] = value;
    else if (value && typeof value === "object" && !Array.isArray(value))
      out[key] = Object.keys(value as Json);
    else throw invalid(`invalid filter ${key}`);
  }
  return out;
}
