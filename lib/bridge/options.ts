/**
 * Parses the bridge driver's `-o KEY=VALUE` options once, at the edge, into typed values.
 * Unknown keys are refused: a typo must not silently create a differently configured network.
 */
import { invalid } from "../common/errors.js";
import { tryParseAddress } from "../ipam/cidr.js";
import type { BridgeOptions } from "../store/records.js";

export const OPT_BRIDGE_NAME = "com.docker.network.bridge.name";
export const OPT_MTU = "com.docker.network.driver.mtu";
export const OPT_ICC = "com.docker.network.bridge.enable_icc";
export const OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade";
/** Docker's default host address for published ports; accepted and stored for inspect. */
export const OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4";

const KNOWN = [OPT_BRIDGE_NAME, OPT_MTU, OPT_ICC, OPT_MASQUERADE, OPT_HOST_BINDING];

/** Linux IFNAMSIZ is 16 including the NUL; names may not contain '/', ':' or whitespace. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function isValidIfName(name: string): boolean {
  return IFNAME.test(name) && name !== "." && name !== "..";
}

function parseBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw invalid(`invalid value "${value}" for option ${key}: expected true or false`);
}

function parseMtu(value: string): number {
  const mtu = Number(value);
  if (!/^\d+$/.test(value) || mtu < 68 || mtu > 65535) {
    throw invalid(`invalid value "${value}" for option ${OPT_MTU}: expected an integer from 68 to 65535`);
  }
  return mtu;
}

export interface BridgeOptionDefaults {
  networkId: string;
  /** MTU of the host's default-route interface, or 1500 */
  hostMtu: number;
}

export function defaultBridgeName(networkId: string): string {
  return `br-${networkId.slice(0, 12)}`;
}

export function parseBridgeOptions(options: Record<string, string>, d: BridgeOptionDefaults): BridgeOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN.includes(key)) {
      throw invalid(`unknown option "${key}" for the bridge driver (supported: ${KNOWN.join(", ")})`);
    }
  }
  const name = options[OPT_BRIDGE_NAME] ?? defaultBridgeName(d.networkId);
  if (!isValidIfName(name)) {
    throw invalid(
      `invalid value "${name}" for option ${OPT_BRIDGE_NAME}: an interface name is 1-15 letters, digits, '_', '.' or '-'`,
    );
  }
  const hostBinding = options[OPT_HOST_BINDING];
  if (hostBinding !== undefined && tryParseAddress(hostBinding)?.family !== 4) {
    throw invalid(`invalid value "${hostBinding}" for option ${OPT_HOST_BINDING}: expected an IPv4 address`);
  }
  return {
    bridgeName: name,
    mtu: options[OPT_MTU] !== undefined ? parseMtu(options[OPT_MTU]) : d.hostMtu,
    icc: options[OPT_ICC] !== undefined ? parseBool(OPT_ICC, options[OPT_ICC]) : true,
    masquerade:
      options[OPT_MASQUERADE] !== undefined ? parseBool(OPT_MASQUERADE, options[OPT_MASQUERADE]) : true,
    ...(hostBinding !== undefined && hostBinding !== "0.0.0.0" ? { defaultHostIp: hostBinding } : {}),
  };
}
