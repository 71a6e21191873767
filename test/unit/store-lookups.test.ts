import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import type { EndpointRecord } from "../../lib/store/records.js";
import { SqliteStore } from "../../lib/store/sqlite-store.js";

function endpoint(
  id: string,
  networkId: string,
  containerId: string,
  name: string,
  ports = 0,
): EndpointRecord {
  return {
    id,
    networkId,
    name,
    containerId,
    netns: { path: `/run/netns/${name}`, dev: 4, ino: Number.parseInt(containerId, 16) || 1 },
    ifName: "eth0",
    hostIfName: `veth${id}`,
    mac: "02:42:0a:00:00:02",
    aliases: [],
    publish: Array.from({ length: ports }, (_, i) => ({
      proto: "tcp" as const,
      hostPort: 8000 + i,
      containerPort: 80,
    })),
    gatewayEndpoint: true,
    state: "active",
    created: "2026-11-25T00:00:00.000Z",
  };
}

test("indexed endpoint lookups: by container, by name, publishing ones, counts; updates move the index", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = SqliteStore.open(dir);
  store.putEndpoint(endpoint("e1", "n1", "c1", "web", 2));
  store.putEndpoint(endpoint("e2", "n1", "c2", "db"));
  store.putEndpoint(endpoint("e3", "n2", "c1", "web"));
  t.is(store.findEndpointByContainer("n1", "c1")?.id, "e1");
  t.is(store.findEndpointByContainer("n2", "c1")?.id, "e3");
  t.is(store.findEndpointByContainer("n2", "c2"), undefined);
  t.is(store.findEndpointByName("n1", "db")?.id, "e2");
  t.is(store.findEndpointByName("n2", "db"), undefined);
  t.deepEqual(
    store.listPublishingEndpoints().map((e) => e.id),
    ["e1"],
  );
  t.deepEqual(
    store.listEndpointsOfContainer("c1").map((e) => e.id),
    ["e1", "e3"],
  );
  t.is(store.countEndpoints("n1"), 2);
  store.putEndpoint({ ...endpoint("e1", "n1", "c1", "www"), publish: [] });
  t.is(store.findEndpointByName("n1", "web"), undefined, "a rename moves the name index");
  t.is(store.findEndpointByName("n1", "www")?.id, "e1");
  t.deepEqual(store.listPublishingEndpoints(), []);
  store.deleteEndpoint("e2");
  t.is(store.countEndpoints("n1"), 1);
  store.close();
});

test("migration 2 fills the new columns from existing version-1 records", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // a database as version 1 wrote it
  const db = new Database(join(dir, "trellis.db"));
  db.exec(`CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
    CREATE TABLE endpoints (id TEXT PRIMARY KEY, network_id TEXT NOT NULL, data TEXT NOT NULL);
    CREATE INDEX endpoints_by_network ON endpoints (network_id);
    CREATE TABLE pools (id TEXT PRIMARY KEY, owner TEXT NOT NULL, data TEXT NOT NULL);
    CREATE INDEX pools_by_owner ON pools (owner);
    CREATE TABLE allocations (pool_id TEXT NOT NULL, address TEXT NOT NULL, ord TEXT NOT NULL, data TEXT NOT NULL,
      PRIMARY KEY (pool_id, address)) WITHOUT ROWID;
    CREATE UNIQUE INDEX allocations_by_order ON allocations (pool_id, ord);
    CREATE TABLE pending_deletions (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`);
  db.prepare("INSERT INTO endpoints (id, network_id, data) VALUES (?, ?, ?)").run(
    "e1",
    "n1",
    JSON.stringify(endpoint("e1", "n1", "c1", "web", 1)),
  );
  db.pragma("user_version = 1");
  db.close();
  const store = SqliteStore.open(dir);
  t.is(store.findEndpointByContainer("n1", "c1")?.id, "e1");
  t.is(store.findEndpointByName("n1", "web")?.id, "e1");
  t.deepEqual(
    store.listPublishingEndpoints().map((e) => e.id),
    ["e1"],
  );
  store.close();
});
