import test from "ava";
import type { BackendEntry } from "../../lib/ingress/catalog.js";
import { desiredServices, type LocalNetwork, meshNetworks } from "../../lib/ingress/desired.js";
import type { ServiceSpec } from "../../lib/ingress/spec.js";

const NET_A = "a".repeat(64);
const NET_B = "b".repeat(64);
const networks = new Map<string, LocalNetwork>([
  [NET_A, { id: NET_A, bridgeName: "ov-aaaa", overlay: true }],
  [NET_B, { id: NET_B, bridgeName: "br-bbbb", overlay: false }],
]);

const spec = (over: Partial<ServiceSpec> = {}): ServiceSpec => ({
  id: "1".repeat(64),
  name: "web",
  networks: [{ networkId: NET_A, vip: "10.0.0.2" }],
  endpointMode: "vip",
  ports: [{ proto: "tcp", target: 80, published: 8080, mode: "ingress" }],
  affinity: "none",
  labels: {},
  created: "2026-11-25T00:00:00.000Z",
  ...over,
});

const backend = (ip: string, node: string, over: Partial<BackendEntry> = {}): BackendEntry => ({
  serviceId: "1".repeat(64),
  endpointId: `ep-${ip}`,
  networkId: NET_A,
  containerId: `c-${ip}`,
  name: `task-${ip}`,
  ip,
  node,
  health: "unchecked",
  ...over,
});

function run(
  services: ServiceSpec[],
  backends: BackendEntry[],
  meshSources = new Map([[NET_A, "10.0.0.250"]]),
) {
  const ids = new Map<string, number>();
  return desiredServices({
    services,
    backends,
    self: "h1",
    networks,
    meshSources,
    unitId: (key) => {
      if (!ids.has(key)) ids.set(key, ids.size);
      return ids.get(key)!;
    },
  });
}

test("a VIP unit per network and port, over the healthy backends on that network", (t) => {
  const d = run(
    [
      spec({
        ports: [
          { proto: "tcp", target: 80, mode: "ingress" },
          { proto: "udp", target: 53, mode: "ingress" },
        ],
      }),
    ],
    [
      backend("10.0.0.5", "h1"),
      backend("10.0.0.6", "h2"),
      backend("10.0.0.7", "h3", { health: "unhealthy" }),
    ],
  );
  t.is(d.units.length, 2);
  const tcp = d.units.find((u) => u.vips[0]?.proto === "tcp")!;
  t.deepEqual(tcp.vips, [{ ip: "10.0.0.2", port: 80, proto: "tcp" }]);
  t.deepEqual(
    tcp.backends.map((b) => `${b.ip}:${b.port}`),
    ["10.0.0.5:80", "10.0.0.6:80"],
  );
  const udp = d.units.find((u) => u.vips[0]?.proto === "udp")!;
  t.deepEqual(
    udp.backends.map((b) => b.port),
    [53, 53],
  );
  t.deepEqual(d.vips, ["10.0.0.2"]);
  t.deepEqual(d.bridgeVips.get("ov-aaaa"), ["10.0.0.2"]);
  // the network keeps conntrack (no notrack inside it)
  t.deepEqual(d.serviceNetworks, [NET_A]);
  // remote backends get this host's mesh source for host-originated and mesh connections
  t.deepEqual(d.snat, [{ backend: "10.0.0.6", source: "10.0.0.250" }]);
});

test("ingress ports publish everywhere, host ports only where a local backend runs", (t) => {
  const s = spec({
    ports: [
      { proto: "tcp", target: 80, published: 8080, mode: "ingress" },
      { proto: "tcp", target: 80, published: 9090, mode: "host" },
    ],
  });
  const remoteOnly = run([s], [backend("10.0.0.6", "h2")]);
  const mesh = remoteOnly.units.flatMap((u) => u.mesh);
  t.deepEqual(
    mesh.map((m) => m.port),
    [8080],
  );
  t.deepEqual(mesh[0]!.backends, [{ ip: "10.0.0.6", port: 80 }]);
  const withLocal = run([s], [backend("10.0.0.5", "h1"), backend("10.0.0.6", "h2")]);
  const host = withLocal.units.flatMap((u) => u.mesh).find((m) => m.port === 9090)!;
  t.deepEqual(host.backends, [{ ip: "10.0.0.5", port: 80 }]);
});

test("an ingress port with no healthy backend stays, to refuse at once", (t) => {
  const d = run([spec()], [backend("10.0.0.6", "h2", { health: "unhealthy" })]);
  const mesh = d.units.flatMap((u) => u.mesh);
  t.is(mesh.length, 1);
  t.deepEqual(mesh[0]!.backends, []);
  // and the VIP still exists with zero backends
  t.deepEqual(d.units.find((u) => u.vips.length > 0)!.backends, []);
});

test("remote backends are left out of the mesh without a mesh source on their network", (t) => {
  const d = run([spec()], [backend("10.0.0.6", "h2")], new Map());
  t.deepEqual(d.units.flatMap((u) => u.mesh)[0]!.backends, []);
  t.deepEqual(d.snat, []);
});

test("dnsrr services have no VIP unit but DNS tasks; networks unknown here are skipped", (t) => {
  const d = run(
    [
      spec({
        endpointMode: "dnsrr",
        networks: [{ networkId: NET_A }, { networkId: "c".repeat(64) }],
        ports: [{ proto: "tcp", target: 80, published: 8080, mode: "host" }],
      }),
    ],
    [backend("10.0.0.5", "h1"), backend("10.0.0.6", "h2", { health: "unhealthy" })],
  );
  t.is(d.units.filter((u) => u.vips.length > 0).length, 0);
  t.deepEqual(d.vips, []);
  t.deepEqual(d.dns, [
    {
      id: "1".repeat(64),
      name: "web",
      mode: "dnsrr",
      networks: [NET_A, "c".repeat(64)],
      vips: [],
      tasks: [{ networkId: NET_A, ip: "10.0.0.5" }],
    },
  ]);
});

test("after a partition, the older service keeps a contested published port and VIP", (t) => {
  const older = spec({ created: "2026-01-01T00:00:00.000Z" });
  const newer = spec({ id: "2".repeat(64), name: "web2", created: "2026-02-01T00:00:00.000Z" });
  const d = run([newer, older], []);
  t.is(d.conflicts.length, 2);
  t.true(d.conflicts.every((c) => c.startsWith("service web2")));
  t.true(d.units.every((u) => u.name === "web"));
});

test("a container on two networks of a service is one mesh target, on the first network", (t) => {
  const s = spec({
    networks: [
      { networkId: NET_B, vip: "172.30.0.2" },
      { networkId: NET_A, vip: "10.0.0.2" },
    ],
  });
  const d = run(
    [s],
    [
      backend("10.0.0.5", "h1", { endpointId: "e1", containerId: "same" }),
      backend("172.30.0.5", "h1", { endpointId: "e2", containerId: "same", networkId: NET_B }),
    ],
  );
  t.deepEqual(d.units.flatMap((u) => u.mesh)[0]!.backends, [{ ip: "172.30.0.5", port: 80 }]);
  t.deepEqual(meshNetworks([s], networks), [NET_A]);
});

test("backends beyond the kernel layout's limit are cut to the first by address, and reported", (t) => {
  const many = Array.from({ length: 130 }, (_, i) => backend(`10.0.${1 + (i >> 8)}.${i & 255}`, "h1"));
  const d = run([spec({ ports: [{ proto: "tcp", target: 80, mode: "ingress" }] })], many);
  t.is(d.units[0]!.backends.length, 128);
  t.true(d.conflicts.some((c) => c.includes("130 healthy backends")));
});
