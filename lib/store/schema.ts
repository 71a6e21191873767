/**
 * The store's schema, as an ordered list of migrations. The database's `PRAGMA user_version` is
 * the number of migrations applied; opening applies the missing ones, each in its own
 * transaction together with the version bump, so a crash mid-upgrade leaves a consistent older
 * version that the next start upgrades again. Never edit a released migration: append a new one.
 *
 * Records live as JSON in a `data` column; the other columns exist only to be indexed or
 * constrained, and are derived from the record on every write.
 */
import type Database from "better-sqlite3";
import { TrellisError } from "../common/errors.js";

export const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
  );
  CREATE TABLE endpoints (
    id         TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    data       TEXT NOT NULL
  );
  CREATE INDEX endpoints_by_network ON endpoints (network_id);
  CREATE TABLE pools (
    id    TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    data  TEXT NOT NULL
  );
  CREATE INDEX pools_by_owner ON pools (owner);
  -- ord: fixed-width hex of the address, so text order is numeric order (see addressKey)
  CREATE TABLE allocations (
    pool_id TEXT NOT NULL,
    address TEXT NOT NULL,
    ord     TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (pool_id, address)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX allocations_by_order ON allocations (pool_id, ord);
  -- AUTOINCREMENT: ids are never reused, so a retried removal cannot hit a newer entry
  CREATE TABLE pending_deletions (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL
  );
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: endpoint lookups by container, by name and by "publishes ports" without decoding every record
  `
  ALTER TABLE endpoints ADD COLUMN container_id TEXT NOT NULL DEFAULT '';
  ALTER TABLE endpoints ADD COLUMN name TEXT NOT NULL DEFAULT '';
  ALTER TABLE endpoints ADD COLUMN publishes INTEGER NOT NULL DEFAULT 0;
  UPDATE endpoints SET
    container_id = json_extract(data, '$.containerId'),
    name = json_extract(data, '$.name'),
    publishes = json_array_length(json_extract(data, '$.publish')) > 0;
  CREATE INDEX endpoints_by_container ON endpoints (network_id, container_id);
  CREATE INDEX endpoints_by_name ON endpoints (network_id, name);
  CREATE INDEX endpoints_publishing ON endpoints (publishes) WHERE publishes = 1;
  `,
  // 3: services this host knows (its own and the cluster's) and the backends it runs
  `
  CREATE TABLE services (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
  );
  CREATE TABLE service_backends (
    service_id  TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (service_id, endpoint_id)
  ) WITHOUT ROWID;
  CREATE INDEX service_backends_by_endpoint ON service_backends (endpoint_id);
  `,
];

/** Brings the database to the latest schema version. */
export function migrate(db: Database.Database, file: string): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new TrellisError(
      "INTERNAL",
      `state database ${file} has schema version ${current}, newer than this trellis supports ` +
        `(${MIGRATIONS.length}); run a newer trellisd or move the state dir aside`,
    );
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version - 1]!);
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
}
