/**
 * Checks on addresses a user names explicitly (--ip, --gateway). Both must be assignable
 * addresses of the subnet; a static address may lie outside the ip range, as in Docker, because
 * the range only limits what IPAM picks on its own.
 */
import { invalid } from "../common/errors.js";
import type { PoolGeometry } from "./allocator.js";
import { contains, formatAddress, formatCidr, lastAddress, parseAddress } from "./cidr.js";

function reservedRole(value: bigint, g: PoolGeometry): string {
  if (value === g.subnet.network)
    return g.subnet.family === 4 ? "network address" : "subnet-router anycast address";
  return value === lastAddress(g.subnet) ? "broadcast address" : "reserved address";
}

/** Canonical text of `text` if it is an assignable address of the pool's subnet; else throws. */
function checkAssignable(text: string, g: PoolGeometry, what: string): string {
  const ip = parseAddress(text, what);
  const address = formatAddress(ip.family, ip.value);
  const subnet = formatCidr(g.subnet);
  if (!contains(g.subnet, ip)) throw invalid(`${what} ${address} is outside subnet ${subnet}`);
  if (ip.value >= g.firstUsable && ip.value <= g.lastUsable) return address;
  const role = reservedRole(ip.value, g);
  throw invalid(`${what} ${address} is the ${role} of subnet ${subnet} and cannot be assigned`);
}

export const checkStaticAddress = (text: string, g: PoolGeometry): string =>
  checkAssignable(text, g, "address");

export const validateGateway = (text: string, g: PoolGeometry): string => checkAssignable(text, g, "gateway");
