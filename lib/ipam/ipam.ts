/**
 * IP address management: pools (one subnet each) and the addresses taken from them.
 *
 * Everything is synchronous and goes through an IpamStore, so a caller can wrap IPAM calls and
 * its own record writes in one store transaction: either the endpoint and its address are both
 * recorded or neither is. Each mutating method also opens a transaction of its own, which joins
 * the caller's when there is one.
 */
import { conflict, exhausted, invalid, notFound } from "../common/errors.js";
import type { AllocationRecord, Family, PoolRecord } from "../store/records.js";
import {
  cursorAddress,
  cursorOffset,
  describeGeometry,
  dynamicCount,
  geometryOf,
  initialCursor,
  nextFree,
  type PoolGeometry,
  type TakenFrom,
} from "./allocator.js";
import {
  type Cidr,
  canonicalAddress,
  containsCidr,
  formatAddress,
  formatCidr,
  maxAddress,
  parseAddress,
  parseCidr,
} from "./cidr.js";
import { blockingRoutes, conflictOf, parseUsed, pickFreeSubnet, type UsedSubnet } from "./default-pools.js";
import { checkStaticAddress, validateGateway } from "./validate.js";

/** Persistence IPAM needs. Implemented by SqliteStore; all methods synchronous. */
export interface IpamStore {
  /** Runs fn atomically; a call inside another transaction joins it. */
  transaction<T>(fn: () => T): T;
  getPool(id: string): PoolRecord | undefined;
  putPool(rec: PoolRecord): void;
  /** Deletes the pool and every allocation in it. */
  deletePool(id: string): void;
  /** All pools, or those held by one owner. */
  listPools(owner?: string): PoolRecord[];
  /** The pool's allocations in ascending address order. */
  listAllocations(poolId: string): AllocationRecord[];
  getAllocation(poolId: string, address: string): AllocationRecord | undefined;
  /** Canonical addresses of the pool >= from (canonical too), ascending, at most limit of them. */
  takenFrom(poolId: string, from: string, limit: number): string[];
  addAllocation(rec: AllocationRecord): void;
  /** False when there was no such allocation. */
  removeAllocation(poolId: string, address: string): boolean;
}

export interface RequestPoolOptions {
  /** unique pool id, e.g. "<network id>/v4/0" */
  id: string;
  /** who holds the pool, e.g. a network id */
  owner: string;
  family: Family;
  /** CIDR; host bits are zeroed. Omitted = pick a free one (see default-pools.ts) */
  subnet?: string;
  /** CIDR inside the subnet for dynamic addresses; needs an explicit subnet */
  ipRange?: string;
  /** bare IP inside the subnet; omitted = first usable address; false = no gateway */
  gateway?: string | false;
  /** subnets to avoid besides trellis's own pools (which are always avoided) */
  used?: readonly UsedSubnet[];
  /** CIDRs of the host's routes; new subnets must not overlap them (default routes excepted) */
  hostRoutes?: readonly string[];
  /** seed for an automatic IPv6 subnet; defaults to id */
  seed?: string;
}

export interface IpamOptions {
  store: IpamStore;
  /**
   * Names an owner in error messages: `network "foo"` for a network id, `endpoint web` for an
   * endpoint id. Called only when an error is built. Default: "the gateway" or the raw owner.
   */
  describeOwner?: (owner: string) => string;
}

/** The owner recorded for gateway allocations. */
export const GATEWAY_OWNER = "gateway";

/** How many taken addresses to read from the store per page while searching for a free one. */
const TAKEN_PAGE = 256;

export class Ipam {
  readonly #store: IpamStore;
  readonly #describe: (owner: string) => string;

  constructor(opts: IpamOptions) {
    this.#store = opts.store;
    this.#describe = opts.describeOwner ?? ((o) => (o === GATEWAY_OWNER ? "the gateway" : o));
  }

  requestPool(opts: RequestPoolOptions): PoolRecord {
    return this.#store.transaction(() => {
      if (this.#store.getPool(opts.id) !== undefined) throw conflict(`pool "${opts.id}" already exists`);
      const subnet = this.#chooseSubnet(opts);
      const range = opts.ipRange === undefined ? undefined : parseRange(opts.ipRange, subnet);
      const draft = { subnet: formatCidr(subnet), ipRange: range && formatCidr(range) };
      const geometry = geometryOf(draft);
      if (range !== undefined && dynamicCount(geometry) === 0n) {
        throw invalid(`ip range ${draft.ipRange} holds no assignable address of subnet ${draft.subnet}`);
      }
      const gateway = chooseGateway(opts.gateway, geometry);
      const pool: PoolRecord = {
        id: opts.id,
        family: opts.family,
        subnet: draft.subnet,
        ...(draft.ipRange !== undefined && { ipRange: draft.ipRange }),
        ...(gateway !== undefined && { gateway }),
        cursor: initialCursor(geometry),
        owner: opts.owner,
      };
      this.#store.putPool(pool);
      if (gateway !== undefined) {
        this.#store.addAllocation({ poolId: pool.id, address: gateway, owner: GATEWAY_OWNER });
      }
      return pool;
    });
  }

  /** Drops the pool and its allocations; false when it did not exist. */
  releasePool(id: string): boolean {
    return this.#store.transaction(() => {
      if (this.#store.getPool(id) === undefined) return false;
      this.#store.deletePool(id);
      return true;
    });
  }

  /** Takes an address (the given one, or the next free one round robin); returns it bare. */
  requestAddress(poolId: string, req: { owner: string; address?: string }): string {
    return this.#store.transaction(() => {
      const pool = this.#pool(poolId);
      const geometry = geometryOf(pool);
      if (req.address !== undefined) return this.#takeStatic(pool, geometry, req.address, req.owner);
      const found = nextFree(geometry, cursorAddress(pool, geometry), this.#takenFrom(pool));
      if (found === undefined) {
        throw exhausted(
          `no free address in ${describeGeometry(geometry)}: ` +
            `all ${dynamicCount(geometry)} assignable addresses are in use`,
        );
      }
      const address = formatAddress(pool.family, found);
      this.#store.addAllocation({ poolId, address, owner: req.owner });
      this.#store.putPool({ ...pool, cursor: cursorOffset(found, geometry) });
      return address;
    });
  }

  /** Gives an address back; false (and no change) when it was not taken or the pool is unknown. */
  releaseAddress(poolId: string, address: string): boolean {
    const canonical = canonicalAddress(address);
    return this.#store.transaction(() => this.#store.removeAllocation(poolId, canonical));
  }

  poolsOf(owner: string): PoolRecord[] {
    return this.#store.listPools(owner);
  }

  #pool(id: string): PoolRecord {
    const pool = this.#store.getPool(id);
    if (pool === undefined) throw notFound(`address pool "${id}" not found`);
    return pool;
  }

  #chooseSubnet(opts: RequestPoolOptions): Cidr {
    const used = [
      ...this.#store.listPools().map((p) => ({ subnet: p.subnet, owner: this.#describe(p.owner) })),
      ...(opts.used ?? []),
    ];
    const hostRoutes = opts.hostRoutes ?? [];
    if (opts.subnet === undefined) {
      if (opts.ipRange !== undefined) throw invalid("an ip range needs an explicit subnet");
      if (typeof opts.gateway === "string") throw invalid("a gateway needs an explicit subnet");
      return parseCidr(pickFreeSubnet({ family: opts.family, used, hostRoutes, seed: opts.seed ?? opts.id }));
    }
    const subnet = parseCidr(opts.subnet);
    if (subnet.family !== opts.family)
      throw invalid(`subnet ${opts.subnet} is not an IPv${opts.family} subnet`);
    const why = conflictOf(
      subnet,
      parseUsed(used).filter((u) => u.cidr.family === subnet.family),
      blockingRoutes(hostRoutes, subnet.family),
    );
    if (why !== undefined) throw conflict(`subnet ${formatCidr(subnet)} ${why}`);
    return subnet;
  }

  #takeStatic(pool: PoolRecord, geometry: PoolGeometry, text: string, owner: string): string {
    const address = checkStaticAddress(text, geometry);
    const holder = this.#store.getAllocation(pool.id, address);
    if (holder !== undefined) {
      throw conflict(`address ${address} is already in use by ${this.#describe(holder.owner)}`);
    }
    this.#store.addAllocation({ poolId: pool.id, address, owner });
    return address;
  }

  /** Pages through the store's taken addresses so a search never loads the whole pool. */
  #takenFrom(pool: PoolRecord): TakenFrom {
    const store = this.#store;
    const max = maxAddress(pool.family);
    return function* (from: bigint) {
      let next = from;
      while (next <= max) {
        const page = store.takenFrom(pool.id, formatAddress(pool.family, next), TAKEN_PAGE);
        let last = next;
        for (const text of page) {
          last = parseAddress(text).value;
          yield last;
        }
        if (page.length < TAKEN_PAGE) return;
        next = last + 1n;
      }
    };
  }
}

function parseRange(text: string, subnet: Cidr): Cidr {
  const range = parseCidr(text);
  if (!containsCidr(subnet, range)) {
    throw invalid(`ip range ${formatCidr(range)} is outside subnet ${formatCidr(subnet)}`);
  }
  return range;
}

function chooseGateway(gateway: string | false | undefined, g: PoolGeometry): string | undefined {
  if (gateway === false) return undefined;
  if (gateway === undefined) return formatAddress(g.subnet.family, g.firstUsable);
  return validateGateway(gateway, g);
}
