/**
 * What the Docker plugin persists beyond the daemon's own records, in the store's meta table (so it
 * commits in the same transactions as the networks, pools and endpoints it refers to):
 *
 * - `docker:net:<engine network id>` → the name of the trellis network the engine's network uses,
 *   when that network is not the engine's own: an overlay network (one cluster-wide id, while every
 *   engine has its own network id), or a trellis network adopted with `-o trellis.name`. A network
 *   the engine created needs no entry: its trellis id IS the engine's network id.
 * - `docker:pool:<PoolID>` → the name of the trellis network whose pool a PoolID stands for: the
 *   engine requested exactly that network's subnet, or its network took over the PoolID's subnet.
 *   Its addresses come from that network's pool (an overlay picks them from this host's blocks).
 *
 * The engine never replays anything after a restart of either side, so these must outlive both.
 */
import type { SqliteStore } from "../store/sqlite-store.js";

const NET_PREFIX = "docker:net:";
const POOL_PREFIX = "docker:pool:";

/** The owner of pools the IPAM driver handed out that no network has taken over yet. */
export const PENDING_POOL_OWNER = "docker-ipam";
/** The owner of addresses the IPAM driver handed out that no endpoint has taken over yet. */
export const RESERVED_ADDRESS_OWNER = "docker-ipam";

interface NetworkRef {
  network: string;
  /** pool aliases: which of the network's pools (its subnet) */
  subnet?: string;
}

export class PluginState {
  constructor(private readonly store: SqliteStore) {}

  /** The trellis network (by name) an engine's network uses, when it is not the engine's own. */
  networkOf(dockerNetworkId: string): string | undefined {
    return this.read(NET_PREFIX + dockerNetworkId);
  }

  setNetworkOf(dockerNetworkId: string, network: string): void {
    this.store.setMeta(NET_PREFIX + dockerNetworkId, JSON.stringify({ network } satisfies NetworkRef));
  }

  forgetNetwork(dockerNetworkId: string): void {
    this.store.deleteMeta(NET_PREFIX + dockerNetworkId);
  }

  /** The trellis network (by name) and subnet whose pool a PoolID stands for. */
  poolAlias(poolId: string): { network: string; subnet: string } | undefined {
    const raw = this.store.getMeta(POOL_PREFIX + poolId);
    if (raw === undefined) return undefined;
    const ref = JSON.parse(raw) as NetworkRef;
    return { network: ref.network, subnet: ref.subnet ?? "" };
  }

  setPoolAlias(poolId: string, network: string, subnet: string): void {
    this.store.setMeta(POOL_PREFIX + poolId, JSON.stringify({ network, subnet } satisfies NetworkRef));
  }

  /** False when there was no such alias. */
  forgetPool(poolId: string): boolean {
    return this.store.deleteMeta(POOL_PREFIX + poolId);
  }

  private read(key: string): string | undefined {
    const raw = this.store.getMeta(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as NetworkRef).network;
  }
}
