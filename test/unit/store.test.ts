import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import fc from "fast-check";
import { Ipam } from "../../lib/ipam/ipam.js";
import type { EndpointRecord, NetworkRecord } from "../../lib/store/records.js";
import { MIGRATIONS } from "../../lib/store/schema.js";
import { DB_FILE, SqliteStore } from "../../lib/store/sqlite-store.js";

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "trellis-"));

function network(id: string, name: string): NetworkRecord {
  return {
    id,
    name,
    driver: "bridge",
    created: "2026-01-01T00:00:00Z",
    internal: false,
    enableIPv6: false,
    options: {},
    labels: { k: "v" },
    poolIds: [`${id}/v4/0`],
    bridge: { bridgeName: `br-${id.slice(0, 12)}`, mtu: 1500, icc: true, masquerade: true },
  };
}

function endpoint(id: string, networkId: string): EndpointRecord {
  return {
    id,
    networkId,
    name: `c-${id}`,
    containerId: id.padEnd(64, "0"),
    netns: { path: `/run/netns/${id}`, dev: 4, ino: 4026532000 },
    ifName: "eth0",
    hostIfName: `veth${id.slice(0, 7)}`,
    mac: "02:42:ac:11:00:02",
    ipv4: "172.17.0.2/16",
    aliases: [],
    publish: [{ proto: "tcp", hostPort: 8080, containerPort: 80 }],
    gatewayEndpoint: true,
    state: "active",
    created: "2026-01-01T00:00:00Z",
  };
}

test("open creates a private state dir with a WAL database at the latest schema", (t) => {
  const dir = path.join(tempDir(), "state", "nested");
  const store = SqliteStore.open(dir);
  store.close();
  t.is(fs.statSync(dir).mode & 0o777, 0o700);
  const db = new Database(path.join(dir, DB_FILE), { readonly: true });
  t.is(db.pragma("journal_mode", { simple: true }), "wal");
  t.is(db.pragma("user_version", { simple: true }), MIGRATIONS.length);
  db.close();
  SqliteStore.open(dir).close(); // reopening an up-to-date database is fine
});

test("a database from a newer trellis is refused", (t) => {
  const dir = tempDir();
  SqliteStore.open(dir).close();
  const db = new Database(path.join(dir, DB_FILE));
  db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  db.close();
  t.throws(() => SqliteStore.open(dir), {
    code: "INTERNAL",
    message: new RegExp(`schema version ${MIGRATIONS.length + 1}, newer than this trellis supports`),
  });
});

test("networks: put, get, find by name, unique names, delete", (t) => {
  const store = SqliteStore.openInMemory();
  store.putNetwork(network("a1", "foo"));
  store.putNetwork(network("b2", "bar"));
  t.deepEqual(store.getNetwork("a1"), network("a1", "foo"));
  t.is(store.findNetworkByName("bar")?.id, "b2");
  t.deepEqual(
    store.listNetworks().map((n) => n.name),
    ["foo", "bar"],
  );
  t.throws(() => store.putNetwork(network("c3", "foo")), {
    code: "CONFLICT",
    message: 'network name "foo" is already in use',
  });
  store.putNetwork({ ...network("a1", "renamed"), internal: true });
  t.is(store.findNetworkByName("foo"), undefined);
  t.true(store.getNetwork("a1")?.internal);
  t.true(store.deleteNetwork("a1"));
  t.false(store.deleteNetwork("a1"));
  t.is(store.getNetwork("a1"), undefined);
});

test("endpoints, pending deletions and meta", (t) => {
  const store = SqliteStore.openInMemory();
  store.putEndpoint(endpoint("e1", "n1"));
  store.putEndpoint(endpoint("e2", "n2"));
  store.putEndpoint(endpoint("e3", "n1"));
  t.deepEqual(
    store.listEndpoints("n1").map((e) => e.id),
    ["e1", "e3"],
  );
  t.is(store.listEndpoints().length, 3);
  t.deepEqual(store.getEndpoint("e2"), endpoint("e2", "n2"));
  t.true(store.deleteEndpoint("e2"));
  t.is(store.getEndpoint("e2"), undefined);

  const a = store.addPendingDeletion({ kind: "link", name: "veth1" });
  const b = store.addPendingDeletion({ kind: "link", name: "eth0", netnsPath: "/run/netns/x" });
  t.deepEqual(store.listPendingDeletions(), [
    { id: a, kind: "link", name: "veth1" },
    { id: b, kind: "link", name: "eth0", netnsPath: "/run/netns/x" },
  ]);
  t.true(store.removePendingDeletion(a));
  t.true(store.addPendingDeletion({ kind: "link", name: "veth2" }) > b, "ids are never reused");

  t.is(store.getMeta("nodeId"), undefined);
  store.setMeta("nodeId", "abc");
  store.setMeta("nodeId", "def");
  t.is(store.getMeta("nodeId"), "def");
});

test("transactions are all or nothing, and nested ones join the outer one", (t) => {
  const store = SqliteStore.openInMemory();
  t.throws(() =>
    store.transaction(() => {
      store.putNetwork(network("a1", "foo"));
      throw new Error("boom");
    }),
  );
  t.is(store.getNetwork("a1"), undefined);

  t.throws(() =>
    store.transaction(() => {
      store.transaction(() => store.putNetwork(network("a1", "foo")));
      store.setMeta("x", "1");
      throw new Error("outer fails after the inner one returned");
    }),
  );
  t.is(store.getNetwork("a1"), undefined);
  t.is(store.getMeta("x"), undefined);

  t.is(
    store.transaction(() => store.transaction(() => 42)),
    42,
  );
});

test("IPAM and caller records commit together", (t) => {
  const store = SqliteStore.openInMemory();
  const ipam = new Ipam({ store });
  ipam.requestPool({ id: "p", owner: "n", family: 4, subnet: "10.0.0.0/24" });
  t.throws(() =>
    store.transaction(() => {
      ipam.requestAddress("p", { owner: "e1" });
      store.putEndpoint(endpoint("e1", "n"));
      throw new Error("kernel said no");
    }),
  );
  t.is(store.getEndpoint("e1"), undefined);
  t.deepEqual(
    store.listAllocations("p").map((a) => a.address),
    ["10.0.0.1"],
  );
  t.is(ipam.requestAddress("p", { owner: "e1" }), "10.0.0.2", "the rolled back cursor did not move");
});

// --- persistence ------------------------------------------------------------------------------

type Op = { kind: "dyn" } | { kind: "release"; pick: number } | { kind: "static"; offset: number };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant({ kind: "dyn" as const }),
  fc.nat().map((pick) => ({ kind: "release" as const, pick })),
  fc.integer({ min: 0, max: 40 }).map((offset) => ({ kind: "static" as const, offset })),
);

/** Applies one op; returns what it produced so two stores can be compared step by step. */
function apply(ipam: Ipam, store: SqliteStore, op: Op): string {
  try {
    if (op.kind === "dyn") return ipam.requestAddress("p", { owner: "d" });
    if (op.kind === "static") return ipam.requestAddress("p", { owner: "s", address: `10.3.0.${op.offset}` });
    const held = store.listAllocations("p").filter((a) => a.owner !== "gateway");
    const victim = held[op.pick % Math.max(held.length, 1)];
    return victim === undefined ? "none" : String(ipam.releaseAddress("p", victim.address));
  } catch (err) {
    return `error ${(err as { code?: string }).code}`;
  }
}

test("property: close and reopen keeps state, and allocation continues where it left off", (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(opArb, { maxLength: 20 }), (before, after) => {
      const dir = tempDir();
      const twin = SqliteStore.openInMemory();
      const twinIpam = new Ipam({ store: twin });
      let disk = SqliteStore.open(dir);
      for (const s of [twin, disk]) {
        new Ipam({ store: s }).requestPool({ id: "p", owner: "n", family: 4, subnet: "10.3.0.0/27" });
      }
      for (const op of before) {
        if (apply(new Ipam({ store: disk }), disk, op) !== apply(twinIpam, twin, op)) return false;
      }
      const snapshot = JSON.stringify([disk.listPools(), disk.listAllocations("p")]);
      disk.close();
      disk = SqliteStore.open(dir);
      if (JSON.stringify([disk.listPools(), disk.listAllocations("p")]) !== snapshot) return false;
      const ipam = new Ipam({ store: disk });
      const same = after.every((op) => apply(ipam, disk, op) === apply(twinIpam, twin, op));
      disk.close();
      fs.rmSync(dir, { recursive: true });
      return same;
    }),
    { numRuns: 60 },
  );
  t.pass();
});

// --- crash safety -----------------------------------------------------------------------------

const STORE_URL = new URL("../../lib/store/sqlite-store.js", import.meta.url).href;

/**
 * The child writes a network, its pool, 5 allocations, an endpoint and a counter in each
 * transaction, printing the counter after every commit, forever, until killed.
 */
const CHILD = `
import { SqliteStore } from ${JSON.stringify(STORE_URL)};
const store = SqliteStore.open(process.argv[1]);
for (let i = Number(store.getMeta("committed") ?? "0") + 1; ; i++) {
  store.transaction(() => {
    const id = "n" + i;
    store.putNetwork({ id, name: "net" + i, poolIds: [id + "/p"], filler: "x".repeat(2000) });
    store.putPool({ id: id + "/p", owner: id, family: 4, subnet: "10.0.0.0/24", cursor: "5" });
    for (let j = 1; j <= 5; j++) store.addAllocation({ poolId: id + "/p", address: "10.0.0." + j, owner: id });
    store.putEndpoint({ id: "e" + i, networkId: id, name: "c" + i });
    store.setMeta("committed", String(i));
  });
  process.stdout.write(i + "\\n");
}
`;

/** Runs the child until it has printed at least `commits` more commits, then SIGKILLs it. */
function runAndKill(dir: string, commits: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, dir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let printed = 0;
    let seen = 0;
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.stdout.on("data", (chunk: Buffer) => {
      const lines = chunk.toString().trim().split("\n");
      printed = Math.max(printed, Number(lines.at(-1)));
      seen += lines.length;
      if (seen >= commits) child.kill("SIGKILL");
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(printed);
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
}

test("a writer killed with SIGKILL leaves only whole transactions", async (t) => {
  const dir = tempDir();
  for (const commits of [50, 137, 400]) {
    const printed = await runAndKill(dir, commits);
    const store = SqliteStore.open(dir);
    const committed = Number(store.getMeta("committed"));
    t.true(committed >= printed, `commit ${printed} was reported but the store holds ${committed}`);
    const networks = store.listNetworks();
    t.is(networks.length, committed, "one network per committed transaction, none half-written");
    t.is(store.listPools().length, committed);
    t.is(store.listEndpoints().length, committed);
    for (const n of networks) {
      t.is(store.listAllocations(`${n.id}/p`).length, 5);
      t.is(store.listEndpoints(n.id).length, 1);
    }
    store.close();
  }
});
