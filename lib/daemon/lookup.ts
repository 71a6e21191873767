/** Finding networks the way Docker does: full id, then exact name, then a unique id prefix. */
import { conflict, notFound } from "../common/errors.js";
import type { NetworkRecord, PoolRecord } from "../store/records.js";
import type { SqliteStore } from "../store/sqlite-store.js";
import type { NetworkView } from "./inputs.js";

export function findNetwork(store: SqliteStore, ref: string): NetworkRecord {
  const byId = store.getNetwork(ref);
  if (byId) return byId;
  const byName = store.findNetworkByName(ref);
  if (byName) return byName;
  if (/^[0-9a-f]+$/.test(ref)) {
    const matches = store.listNetworks().filter((n) => n.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1)
      throw conflict(`network id prefix ${ref} is ambiguous (${matches.length} networks)`);
  }
  throw notFound(`network ${ref} not found`);
}

export function poolsOf(store: SqliteStore, net: NetworkRecord): PoolRecord[] {
  return net.poolIds.map((id) => store.getPool(id)).filter((p): p is PoolRecord => p !== undefined);
}

export function viewOf(store: SqliteStore, net: NetworkRecord): NetworkView {
  return { network: net, pools: poolsOf(store, net), endpoints: store.listEndpoints(net.id) };
}
