/**
 * What the Docker plugin persists beyond the daemon's own records, in the store's meta table (so it
 * commits in the same transactions as the networks, pools and endpoints it refers to):
 *
 * - `docker:net:<engine network id>` → the trellis overlay network's name. A bridge network needs
 *   no entry: its trellis id IS the engine's network id. An overlay network has one cluster-wide id
 *   while every engine has its own network id, so the engine's id maps to the name.
 * - `docker:pool:<PoolID>` → the overlay network's name, for a PoolID the engine holds whose
 *   addresses come from an overlay network's pool (the overlay decides them, from this host's
 *   address blocks) rather than from a pool of the plugin's own.
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

interface OverlayRef {
  overlay: string;
}

export class PluginState {
  constructor(private readonly store: SqliteStore) {}

  overlayOfNetwork(dockerNetworkId: string): string | undefined {
    return this.read(NET_PREFIX + dockerNetworkId);
  }

  setOverlayOfNetwork(dockerNetworkId: string, overlay: string): void {
    this.store.setMeta(NET_PREFIX + dockerNetworkId, JSON.stringify({ overlay } satisfies OverlayRef));
  }

  forgetNetwork(dockerNetworkId: string): void {
    this.store.deleteMeta(NET_PREFIX + dockerNetworkId);
  }

  overlayOfPool(poolId: string): string | undefined {
    return this.read(POOL_PREFIX + poolId);
  }

  setOverlayOfPool(poolId: string, overlay: string): void {
    this.store.setMeta(POOL_PREFIX + poolId, JSON.stringify({ overlay } satisfies OverlayRef));
  }

  /** False when there was no such alias. */
  forgetPool(poolId: string): boolean {
    return this.store.deleteMeta(POOL_PREFIX + poolId);
  }

  private read(key: string): string | undefined {
    const raw = this.store.getMeta(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as OverlayRef).overlay;
  }
}
