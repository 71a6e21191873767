/**
 * trellisd's crash-safe store: one SQLite database (better-sqlite3, synchronous) in the state dir.
 *
 * Durability: WAL mode with synchronous=NORMAL. A committed transaction is in the WAL file (in
 * the OS page cache at least) before commit returns, so it survives the daemon being killed at
 * any instant, kill -9 included, which is our requirement. It may be lost on a power cut or
 * kernel crash (the WAL is fsync'd only at checkpoints); the database stays consistent even then,
 * just possibly a few transactions older. synchronous=FULL would close that gap at the cost of an
 * fsync per commit on the attach path.
 *
 * Atomicity: a transaction() is all or nothing, and nested calls join the outermost one, so a
 * caller can combine its records with IPAM's writes in one commit.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { conflict, TrellisError } from "../common/errors.js";
import { addressKey, parseAddress } from "../ipam/cidr.js";
import type { IpamStore } from "../ipam/ipam.js";
import type {
  AllocationRecord,
  BackendRecord,
  EndpointRecord,
  NetworkRecord,
  PendingDeletion,
  PoolRecord,
  ServiceRecord,
} from "./records.js";
import { migrate } from "./schema.js";

/** How long a write waits for another connection's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

export const DB_FILE = "trellis.db";

const SQL = {
  listNetworks: "SELECT data FROM networks ORDER BY rowid",
  getNetwork: "SELECT data FROM networks WHERE id = ?",
  findNetworkByName: "SELECT data FROM networks WHERE name = ?",
  putNetwork:
    "INSERT INTO networks (id, name, data) VALUES (?, ?, ?) " +
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, data = excluded.data",
  deleteNetwork: "DELETE FROM networks WHERE id = ?",
  listEndpoints: "SELECT data FROM endpoints ORDER BY rowid",
  listEndpointsOf: "SELECT data FROM endpoints WHERE network_id = ? ORDER BY rowid",
  getEndpoint: "SELECT data FROM endpoints WHERE id = ?",
  putEndpoint:
    "INSERT INTO endpoints (id, network_id, container_id, name, publishes, data) VALUES (?, ?, ?, ?, ?, ?) " +
    "ON CONFLICT (id) DO UPDATE SET network_id = excluded.network_id, container_id = excluded.container_id, " +
    "name = excluded.name, publishes = excluded.publishes, data = excluded.data",
  endpointByContainer: "SELECT data FROM endpoints WHERE network_id = ? AND container_id = ?",
  endpointByName: "SELECT data FROM endpoints WHERE network_id = ? AND name = ?",
  publishingEndpoints: "SELECT data FROM endpoints WHERE publishes = 1 ORDER BY rowid",
  endpointsOfContainer: "SELECT data FROM endpoints WHERE container_id = ? ORDER BY rowid",
  countEndpointsOf: "SELECT count(*) AS n FROM endpoints WHERE network_id = ?",
  deleteEndpoint: "DELETE FROM endpoints WHERE id = ?",
  listPools: "SELECT data FROM pools ORDER BY rowid",
  listPoolsOf: "SELECT data FROM pools WHERE owner = ? ORDER BY rowid",
  getPool: "SELECT data FROM pools WHERE id = ?",
  putPool:
    "INSERT INTO pools (id, owner, data) VALUES (?, ?, ?) " +
    "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, data = excluded.data",
  deletePool: "DELETE FROM pools WHERE id = ?",
  deletePoolAllocations: "DELETE FROM allocations WHERE pool_id = ?",
  listAllocations: "SELECT data FROM allocations WHERE pool_id = ? ORDER BY ord",
  getAllocation: "SELECT data FROM allocations WHERE pool_id = ? AND address = ?",
  takenFrom: "SELECT address FROM allocations WHERE pool_id = ? AND ord >= ? ORDER BY ord LIMIT ?",
  addAllocation: "INSERT INTO allocations (pool_id, address, ord, data) VALUES (?, ?, ?, ?)",
  removeAllocation: "DELETE FROM allocations WHERE pool_id = ? AND address = ?",
  addPendingDeletion: "INSERT INTO pending_deletions (data) VALUES (?)",
  listPendingDeletions: "SELECT id, data FROM pending_deletions ORDER BY id",
  removePendingDeletion: "DELETE FROM pending_deletions WHERE id = ?",
  listServices: "SELECT data FROM services ORDER BY rowid",
  getService: "SELECT data FROM services WHERE id = ?",
  findServiceByName: "SELECT data FROM services WHERE name = ?",
  putService:
    "INSERT INTO services (id, name, data) VALUES (?, ?, ?) " +
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, data = excluded.data",
  deleteService: "DELETE FROM services WHERE id = ?",
  deleteServiceBackends: "DELETE FROM service_backends WHERE service_id = ?",
  listBackends: "SELECT data FROM service_backends ORDER BY service_id, endpoint_id",
  listBackendsOf: "SELECT data FROM service_backends WHERE service_id = ? ORDER BY endpoint_id",
  backendsOfEndpoint: "SELECT data FROM service_backends WHERE endpoint_id = ?",
  putBackend:
    "INSERT INTO service_backends (service_id, endpoint_id, data) VALUES (?, ?, ?) " +
    "ON CONFLICT (service_id, endpoint_id) DO UPDATE SET data = excluded.data",
  deleteBackend: "DELETE FROM service_backends WHERE service_id = ? AND endpoint_id = ?",
  getMeta: "SELECT value FROM meta WHERE key = ?",
  setMeta:
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  deleteMeta: "DELETE FROM meta WHERE key = ?",
} as const;

type Statements = { [K in keyof typeof SQL]: Database.Statement };

interface DataRow {
  data: string;
}

export class SqliteStore implements IpamStore {
  readonly #db: Database.Database;
  readonly #st: Statements;
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#st = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Statements;
    // These two return a single column; plucking it saves an object per row.
    this.#st.takenFrom.pluck();
    this.#st.getMeta.pluck();
    this.#tx = db.transaction((fn: () => unknown) => fn());
  }

  /** Opens (creating if needed) `<stateDir>/trellis.db`; the dir is created with mode 0700. */
  static open(stateDir: string): SqliteStore {
    const file = path.join(stateDir, DB_FILE);
    let db: Database.Database;
    try {
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      db = new Database(file);
    } catch (err) {
      throw new TrellisError("INTERNAL", `cannot open state database ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return SqliteStore.#init(db, file);
  }

  /** A private in-memory database with the same schema and behaviour (except durability); for tests. */
  static openInMemory(): SqliteStore {
    return SqliteStore.#init(new Database(":memory:"), ":memory:");
  }

  static #init(db: Database.Database, file: string): SqliteStore {
    try {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      migrate(db, file);
      return new SqliteStore(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    this.#db.close();
  }

  /**
   * Runs fn in one write transaction (BEGIN IMMEDIATE, so it never fails half-way on a lock
   * upgrade). Inside another transaction it simply joins it: a throw aborts the outermost one.
   * fn must be synchronous.
   */
  transaction<T>(fn: () => T): T {
    if (this.#db.inTransaction) return fn();
    return this.#tx.immediate(fn) as T;
  }

  // --- networks ------------------------------------------------------------------------------

  listNetworks(): NetworkRecord[] {
    return this.#all<NetworkRecord>(this.#st.listNetworks);
  }

  getNetwork(id: string): NetworkRecord | undefined {
    return this.#one<NetworkRecord>(this.#st.getNetwork, id);
  }

  findNetworkByName(name: string): NetworkRecord | undefined {
    return this.#one<NetworkRecord>(this.#st.findNetworkByName, name);
  }

  /** Inserts or replaces by id; a name held by another network is a CONFLICT. */
  putNetwork(rec: NetworkRecord): void {
    try {
      this.#st.putNetwork.run(rec.id, rec.name, JSON.stringify(rec));
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`network name "${rec.name}" is already in use`);
      throw err;
    }
  }

  deleteNetwork(id: string): boolean {
    return this.#st.deleteNetwork.run(id).changes > 0;
  }

  // --- endpoints -----------------------------------------------------------------------------

  listEndpoints(networkId?: string): EndpointRecord[] {
    return networkId === undefined
      ? this.#all<EndpointRecord>(this.#st.listEndpoints)
      : this.#all<EndpointRecord>(this.#st.listEndpointsOf, networkId);
  }

  getEndpoint(id: string): EndpointRecord | undefined {
    return this.#one<EndpointRecord>(this.#st.getEndpoint, id);
  }

  putEndpoint(rec: EndpointRecord): void {
    const publishes = (rec.publish?.length ?? 0) > 0 ? 1 : 0;
    this.#st.putEndpoint.run(
      rec.id,
      rec.networkId,
      rec.containerId ?? "",
      rec.name ?? "",
      publishes,
      JSON.stringify(rec),
    );
  }

  /** The endpoint of a container on a network (indexed; connect's duplicate check). */
  findEndpointByContainer(networkId: string, containerId: string): EndpointRecord | undefined {
    return this.#one<EndpointRecord>(this.#st.endpointByContainer, networkId, containerId);
  }

  findEndpointByName(networkId: string, name: string): EndpointRecord | undefined {
    return this.#one<EndpointRecord>(this.#st.endpointByName, networkId, name);
  }

  /** Endpoints that publish ports, on every network (port conflict checks). */
  listPublishingEndpoints(): EndpointRecord[] {
    return this.#all<EndpointRecord>(this.#st.publishingEndpoints);
  }

  /** Every endpoint of one container, on any network. */
  listEndpointsOfContainer(containerId: string): EndpointRecord[] {
    return this.#all<EndpointRecord>(this.#st.endpointsOfContainer, containerId);
  }

  countEndpoints(networkId: string): number {
    return (this.#st.countEndpointsOf.get(networkId) as { n: number }).n;
  }

  deleteEndpoint(id: string): boolean {
    return this.#st.deleteEndpoint.run(id).changes > 0;
  }

  // --- pools and allocations (IpamStore) -----------------------------------------------------

  getPool(id: string): PoolRecord | undefined {
    return this.#one<PoolRecord>(this.#st.getPool, id);
  }

  putPool(rec: PoolRecord): void {
    this.#st.putPool.run(rec.id, rec.owner, JSON.stringify(rec));
  }

  /** Deletes the pool together with its allocations. */
  deletePool(id: string): void {
    this.transaction(() => {
      this.#st.deletePoolAllocations.run(id);
      this.#st.deletePool.run(id);
    });
  }

  listPools(owner?: string): PoolRecord[] {
    return owner === undefined
      ? this.#all<PoolRecord>(this.#st.listPools)
      : this.#all<PoolRecord>(this.#st.listPoolsOf, owner);
  }

  listAllocations(poolId: string): AllocationRecord[] {
    return this.#all<AllocationRecord>(this.#st.listAllocations, poolId);
  }

  getAllocation(poolId: string, address: string): AllocationRecord | undefined {
    return this.#one<AllocationRecord>(this.#st.getAllocation, poolId, address);
  }

  takenFrom(poolId: string, from: string, limit: number): string[] {
    const key = addressKey(parseAddress(from));
    return this.#st.takenFrom.all(poolId, key, limit) as string[];
  }

  /** The address must be canonical (IPAM formats it); a taken address is a CONFLICT. */
  addAllocation(rec: AllocationRecord): void {
    try {
      this.#st.addAllocation.run(
        rec.poolId,
        rec.address,
        addressKey(parseAddress(rec.address)),
        JSON.stringify(rec),
      );
    } catch (err) {
      if (isUniqueViolation(err))
        throw conflict(`address ${rec.address} is already allocated in pool "${rec.poolId}"`);
      throw err;
    }
  }

  removeAllocation(poolId: string, address: string): boolean {
    return this.#st.removeAllocation.run(poolId, address).changes > 0;
  }

  // --- services and the backends this host runs ------------------------------------------------

  listServices(): ServiceRecord[] {
    return this.#all<ServiceRecord>(this.#st.listServices);
  }

  getService(id: string): ServiceRecord | undefined {
    return this.#one<ServiceRecord>(this.#st.getService, id);
  }

  findServiceByName(name: string): ServiceRecord | undefined {
    return this.#one<ServiceRecord>(this.#st.findServiceByName, name);
  }

  /** Inserts or replaces by id; a name held by another service is a CONFLICT. */
  putService(rec: ServiceRecord): void {
    try {
      this.#st.putService.run(rec.id, rec.name, JSON.stringify(rec));
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`service name "${rec.name}" is already in use`);
      throw err;
    }
  }

  /** Deletes the service together with its backend records. */
  deleteService(id: string): boolean {
    return this.transaction(() => {
      this.#st.deleteServiceBackends.run(id);
      return this.#st.deleteService.run(id).changes > 0;
    });
  }

  listBackends(serviceId?: string): BackendRecord[] {
    return serviceId === undefined
      ? this.#all<BackendRecord>(this.#st.listBackends)
      : this.#all<BackendRecord>(this.#st.listBackendsOf, serviceId);
  }

  /** The services an endpoint serves (indexed: runs on every disconnect). */
  backendsOfEndpoint(endpointId: string): BackendRecord[] {
    return this.#all<BackendRecord>(this.#st.backendsOfEndpoint, endpointId);
  }

  putBackend(rec: BackendRecord): void {
    this.#st.putBackend.run(rec.serviceId, rec.endpointId, JSON.stringify(rec));
  }

  deleteBackend(serviceId: string, endpointId: string): boolean {
    return this.#st.deleteBackend.run(serviceId, endpointId).changes > 0;
  }

  // --- pending deletions ---------------------------------------------------------------------

  addPendingDeletion(d: Omit<PendingDeletion, "id">): number {
    return Number(this.#st.addPendingDeletion.run(JSON.stringify(d)).lastInsertRowid);
  }

  listPendingDeletions(): PendingDeletion[] {
    const rows = this.#st.listPendingDeletions.all() as Array<{ id: number; data: string }>;
    return rows.map((r) => ({ ...(JSON.parse(r.data) as Omit<PendingDeletion, "id">), id: r.id }));
  }

  removePendingDeletion(id: number): boolean {
    return this.#st.removePendingDeletion.run(id).changes > 0;
  }

  // --- meta ----------------------------------------------------------------------------------

  getMeta(key: string): string | undefined {
    return this.#st.getMeta.get(key) as string | undefined;
  }

  setMeta(key: string, value: string): void {
    this.#st.setMeta.run(key, value);
  }

  deleteMeta(key: string): boolean {
    return this.#st.deleteMeta.run(key).changes > 0;
  }

  // --- helpers -------------------------------------------------------------------------------

  #all<T>(stmt: Database.Statement, ...params: unknown[]): T[] {
    return (stmt.all(...params) as DataRow[]).map((r) => JSON.parse(r.data) as T);
  }

  #one<T>(stmt: Database.Statement, ...params: unknown[]): T | undefined {
    const row = stmt.get(...params) as DataRow | undefined;
    return row === undefined ? undefined : (JSON.parse(row.data) as T);
  }
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
