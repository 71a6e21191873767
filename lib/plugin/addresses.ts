/**
 * An engine endpoint's addresses in trellis's IPAM. Whoever assigned an address (trellis's IPAM
 * driver, the engine's own IPAM, or trellis itself when the engine sent none), the endpoint holds it
 * in the network's trellis pool, so `trellis network connect` never hands it out twice.
 */
import type { DaemonContext } from "../daemon/context.js";
import type { OverlayAddressing } from "../daemon/endpoints.js";
import { canonicalAddress, contains } from "../ipam/cidr.js";
import type { EndpointRecord, NetworkRecord, PoolRecord } from "../store/records.js";
import { RESERVED_ADDRESS_OWNER } from "./state.js";

const prefixOf = (subnet: string) => subnet.slice(subnet.indexOf("/"));
const bareOf = (cidr: string) => canonicalAddress(cidr.split("/")[0]!);

/** An address an endpoint took: with its pool's prefix length; `fromDriver`: handed out by
 * trellis's IPAM driver, so the engine releases it itself after DeleteEndpoint. */
export interface Claimed {
  cidr: string;
  fromDriver: boolean;
}

/**
 * Takes `cidr` (from the engine) for the endpoint, or a free address when it is "". Runs inside the
 * caller's store transaction.
 */
export function claimAddress(
  ctx: DaemonContext,
  pool: PoolRecord,
  cidr: string,
  endpointId: string,
  pick?: () => string,
): Claimed {
  const { store, ipam } = ctx;
  if (cidr === "") {
    const address = pick
      ? ipam.requestAddress(pool.id, { owner: endpointId, address: pick() })
      : ipam.requestAddress(pool.id, { owner: endpointId });
    return { cidr: `${address}${prefixOf(pool.subnet)}`, fromDriver: false };
  }
  const address = bareOf(cidr);
  const held = store.getAllocation(pool.id, address);
  const fromDriver = held?.owner === RESERVED_ADDRESS_OWNER;
  if (held && fromDriver) {
    store.removeAllocation(pool.id, address);
    store.addAllocation({ ...held, owner: endpointId });
  } else if (held?.owner !== endpointId) {
    // free: take it (checked against the subnet); held by another: IPAM names the holder
    ipam.requestAddress(pool.id, { owner: endpointId, address });
  }
  return { cidr: `${address}${prefixOf(pool.subnet)}`, fromDriver };
}

/**
 * Gives the endpoint's addresses back. Addresses from trellis's IPAM driver go back to it
 * (RESERVED): the engine releases them itself right after DeleteEndpoint.
 */
export function releaseAddresses(ctx: DaemonContext, pools: PoolRecord[], ep: EndpointRecord) {
  const { store, ipam } = ctx;
  const engineHoldsThem = ep.docker?.fromDriver === true;
  for (const cidr of [ep.ipv4, ep.ipv6]) {
    if (cidr === undefined) continue;
    const address = bareOf(cidr);
    const pool = pools.find((p) => contains(p.subnet, address));
    if (!pool) continue;
    const held = store.getAllocation(pool.id, address);
    if (held?.owner !== ep.id) continue;
    ipam.releaseAddress(pool.id, address);
    if (engineHoldsThem) store.addAllocation({ ...held, owner: RESERVED_ADDRESS_OWNER });
  }
}

/** The pool of a family, and a picker for overlay networks (addresses from this host's blocks). */
export function poolFor(
  pools: PoolRecord[],
  family: 4 | 6,
  net: NetworkRecord,
  overlay: OverlayAddressing | undefined,
): { pool: PoolRecord; pick?: () => string } | undefined {
  const pool = pools.find((p) => p.family === family);
  if (!pool) return undefined;
  if (net.driver !== "overlay" || !overlay) return { pool };
  return { pool, pick: () => overlay.pickAddress(net, pool, undefined) };
}
