/**
 * Services on three lab hosts joined in a cluster, over one overlay network. Four backends run on
 * node2 and node3 (two each), none on node1; one client container per host, and one "outside" client
 * (a lab host without trellis) on the underlay. Everything goes through the daemons' CLI and API:
 * VIP from every host, even spread, DNS (VIP, tasks., dnsrr, PTR), the routing mesh and host mode
 * with the source addresses they preserve, UDP, health, backend removal, host death and a daemon
 * restart. The tests share one cluster and run in order.
 */
import test from "ava";
import type { ServiceView } from "../../lib/ingress/spec.js";
import { type Lab, type LabDaemon, type LabHost, waitFor } from "../helpers/lab.js";
import { cluster, overlayIp } from "../helpers/overlay.js";
import { chiSquare, connections, HOLDER, spawnScript, startBackend } from "../helpers/svc-traffic.js";

const SUBNET = "10.160.0";
const NET = "svcnet";

interface Bed {
  lab: Lab;
  hosts: LabHost[];
  daemons: LabDaemon[];
  /** client container per host (index = host) */
  clients: string[];
  clientIps: string[];
  /** backend containers: b1, b2 on node2; b3, b4 on node3 */
  backends: Array<{ ns: string; marker: string; ip: string; host: number }>;
  outside: LabHost;
  vip: string;
}
let bed: Bed | undefined;

const dig = async (lab: Lab, ns: string, args: string[]) =>
  (
    await lab.exec(ns, ["dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", ...args], { allowFail: true })
  ).stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .sort();

async function service(d: LabDaemon, name: string): Promise<ServiceView> {
  const r = await d.api("GET", `/trellis/services/${name}`);
  if (r.status !== 200) throw new Error(`inspect ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as ServiceView;
}

/** Waits until every daemon sees exactly `n` healthy-or-unchecked backends of the service. */
async function usableBackendsEverywhere(name: string, n: number, daemons = bed!.daemons) {
  for (const d of daemons) {
    await waitFor(
      async () => (await service(d, name)).Backends.filter((b) => b.Health !== "unhealthy").length === n,
      { timeoutMs: 15_000, what: `${d.host.name} sees ${n} usable backends of ${name}` },
    );
  }
}

test.before(async () => {
  const { lab, hosts, daemons } = await cluster(undefined, 3);
  try {
    const [d1, d2, d3] = daemons as [LabDaemon, LabDaemon, LabDaemon];
    await d1.cli(["network", "create", "-d", "overlay", "--subnet", `${SUBNET}.0/24`, NET]);
    for (const d of [d2, d3]) {
      await waitFor(async () => (await d.api("GET", `/networks/${NET}`)).status === 200, {
        what: `${NET} on ${d.host.name}`,
      });
    }
    const clients: string[] = [];
    for (const [i, d] of daemons.entries()) {
      const c = await lab.addContainer(`cl${i + 1}`);
      await d.cli(["network", "connect", NET, c]);
      clients.push(c);
    }
    const backends: Bed["backends"] = [];
    for (const [i, host] of [1, 1, 2, 2].entries()) {
      const marker = `b${i + 1}`;
      const ns = await lab.addContainer(marker);
      await daemons[host]!.cli(["network", "connect", NET, ns]);
      await startBackend(lab, ns, marker, 80);
      backends.push({ ns, marker, host, ip: await overlayIp(daemons[host]!, NET, ns) });
    }
    const clientIps = await Promise.all(clients.map((c, i) => overlayIp(daemons[i]!, NET, c)));
    const outside = await lab.addHost("out");
    // every host has programmed every other host's endpoints (FDB) before traffic
    for (const d of daemons) {
      await waitFor(
        async () =>
          ((await d.api("GET", `/trellis/debug/overlay/${NET}`)).body as { Fdb: unknown[] }).Fdb.length >= 4,
        { timeoutMs: 15_000, what: `${d.host.name} programmed the remote endpoints` },
      );
    }
    bed = { lab, hosts, daemons, clients, clientIps, backends, outside, vip: "" };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
});

test.after.always(async () => {
  await bed?.lab.destroy();
});

test.serial(
  "a service gets one VIP, replicated to every host; backends join from their own hosts",
  async (t) => {
    const { daemons, backends } = bed!;
    const [d1] = daemons as [LabDaemon];
    const created = await d1.cli([
      "service",
      "create",
      "--name",
      "web",
      "--network",
      NET,
      "-p",
      "8080:80",
      "-p",
      "mode=host,9090:80",
      "--port",
      "80/udp",
    ]);
    const id = created.stdout.trim();
    t.regex(id, /^[0-9a-f]{64}$/);
    for (const b of backends) await daemons[b.host]!.cli(["service", "add-backend", "web", b.ns]);
    await usableBackendsEverywhere("web", 4);
    // every host has programmed the other hosts' mesh addresses (gossip, then FDB + neighbour entries)
    for (const d of daemons) {
      await waitFor(
        async () => {
          const dbg = (await d.api("GET", `/trellis/debug/overlay/${NET}`)).body as {
            Fdb: Array<{ mac: string }>;
            Table: Array<{ name: string; mac: string }>;
          };
          const mesh = dbg.Table.filter((e) => e.name.startsWith("mesh."));
          return mesh.length === 2 && mesh.every((e) => dbg.Fdb.some((f) => f.mac === e.mac));
        },
        { timeoutMs: 15_000, what: `${d.host.name} programmed the other hosts' mesh addresses` },
      );
    }
    const views = await Promise.all(daemons.map((d) => service(d, "web")));
    const vip = views[0]!.VirtualIPs[0]!.Addr!;
    t.regex(vip, new RegExp(`^${SUBNET.replaceAll(".", "\\.")}\\.\\d+/24$`));
    for (const v of views) {
      t.is(v.ID, id);
      t.is(v.VirtualIPs[0]!.Addr, vip);
      t.deepEqual(v.Backends.map((b) => b.Node).sort(), ["node2", "node2", "node3", "node3"]);
    }
    bed!.vip = vip.split("/")[0]!;
    // the VIP is held by no endpoint
    t.false(
      backends.some((b) => b.ip === bed!.vip),
      "the VIP is not an endpoint address",
    );
  },
);

test.serial(
  "the VIP answers TCP and UDP from a container on every host; backends see the client",
  async (t) => {
    const { lab, clients, clientIps, vip } = bed!;
    for (const [i, c] of clients.entries()) {
      t.deepEqual(await dig(lab, c, ["web"]), [vip], `web from ${c}`);
      const r = await connections(lab, c, { ip: vip, port: 80, count: 40, conc: 4 });
      t.deepEqual(r.errors, {}, `TCP from host ${i + 1}`);
      t.deepEqual(Object.keys(r.clients), [clientIps[i]!], "the backend sees the client's own address");
      t.true(Object.keys(r.markers).length >= 2, JSON.stringify(r.markers));
      const u = await connections(lab, c, { proto: "udp", ip: vip, port: 80, count: 20, conc: 2 });
      t.deepEqual(u.errors, {}, `UDP from host ${i + 1}`);
      t.deepEqual(Object.keys(u.clients), [clientIps[i]!]);
    }
  },
);

test.serial("2 000 new connections spread evenly over the 4 backends on two other hosts (χ²)", async (t) => {
  const { lab, clients, vip } = bed!;
  const r = await connections(lab, clients[0]!, { ip: vip, port: 80, count: 2000, conc: 32 });
  t.deepEqual(r.errors, {});
  t.deepEqual(Object.keys(r.markers).sort(), ["b1", "b2", "b3", "b4"]);
  const chi2 = chiSquare(Object.values(r.markers), 4);
  // df = 3: P(χ² > 16.27) = 0.001 for a truly even spread.
  t.log(`counts ${JSON.stringify(r.markers)}; χ² = ${chi2.toFixed(2)} (df 3, p=0.001 bound 16.27)`);
  t.true(chi2 < 16.27, `χ² = ${chi2}`);
});

test.serial("DNS: tasks.web gives the backends, PTR of the VIP gives the service", async (t) => {
  const { lab, clients, backends, vip } = bed!;
  const ips = backends.map((b) => b.ip).sort();
  for (const c of clients) t.deepEqual(await dig(lab, c, ["tasks.web"]), ips, `tasks.web from ${c}`);
  t.deepEqual(await dig(lab, clients[1]!, ["-x", vip]), ["web."]);
});

test.serial(
  "routing mesh: the published port answers on a node without backends; source kept only where local",
  async (t) => {
    const { lab, hosts, outside, backends } = bed!;
    // node1 runs no backend: every connection crosses the overlay, SNATed to node1's mesh address
    const r1 = await connections(lab, outside.ns, {
      ip: hosts[0]!.underlayIp,
      port: 8080,
      count: 40,
      conc: 4,
    });
    t.deepEqual(r1.errors, {});
    t.true(Object.keys(r1.markers).length >= 2, JSON.stringify(r1.markers));
    const seen1 = Object.keys(r1.clients);
    t.is(seen1.length, 1, JSON.stringify(r1.clients));
    t.true(seen1[0]!.startsWith(`${SUBNET}.`), `node1's mesh address on ${NET}: ${seen1[0]}`);
    t.false([...backends.map((b) => b.ip), ...bed!.clientIps].includes(seen1[0]!));
    // node2 runs b1 and b2: those see the outside client's own address, b3/b4 see node2's mesh address
    const r2 = await connections(lab, outside.ns, {
      ip: hosts[1]!.underlayIp,
      port: 8080,
      count: 80,
      conc: 4,
    });
    t.deepEqual(r2.errors, {});
    t.deepEqual(Object.keys(r2.markers).sort(), ["b1", "b2", "b3", "b4"]);
    t.true(outside.underlayIp in r2.clients, JSON.stringify(r2.clients));
    const others = Object.keys(r2.clients).filter((c) => c !== outside.underlayIp);
    t.is(others.length, 1);
    t.true(others[0]!.startsWith(`${SUBNET}.`));
    t.not(others[0], seen1[0], "each node has its own mesh address");
    t.is(r2.clients[outside.underlayIp], (r2.markers["b1"] ?? 0) + (r2.markers["b2"] ?? 0));
  },
);

test.serial("host mode: published only where a backend runs, straight to the local ones", async (t) => {
  const { lab, hosts, outside } = bed!;
  const none = await connections(lab, outside.ns, {
    ip: hosts[0]!.underlayIp,
    port: 9090,
    count: 3,
    conc: 1,
  });
  t.is(Object.keys(none.markers).length, 0, "node1 does not publish 9090");
  const r = await connections(lab, outside.ns, { ip: hosts[2]!.underlayIp, port: 9090, count: 40, conc: 4 });
  t.deepEqual(r.errors, {});
  t.deepEqual(Object.keys(r.markers).sort(), ["b3", "b4"]);
  t.deepEqual(Object.keys(r.clients), [outside.underlayIp]);
});

test.serial("dnsrr: the name resolves to the backends themselves", async (t) => {
  const { lab, daemons, clients, backends } = bed!;
  await daemons[0]!.cli(["service", "create", "--name", "rr", "--network", NET, "--endpoint-mode", "dnsrr"]);
  for (const b of [backends[0]!, backends[2]!])
    await daemons[b.host]!.cli(["service", "add-backend", "rr", b.ns]);
  const want = [backends[0]!.ip, backends[2]!.ip].sort();
  await waitFor(async () => JSON.stringify(await dig(lab, clients[0]!, ["rr"])) === JSON.stringify(want), {
    timeoutMs: 10_000,
    what: "rr resolves to b1 and b3",
  });
  t.deepEqual(await dig(lab, clients[2]!, ["tasks.rr"]), want);
  t.is((await service(daemons[1]!, "rr")).VirtualIPs[0]!.Addr, undefined);
  await daemons[0]!.cli(["service", "rm", "rr"]);
});

test.serial(
  "a removed backend drains: its established connection goes on, new ones and DNS avoid it everywhere",
  async (t) => {
    const { lab, daemons, clients, backends, vip } = bed!;
    const holder = spawnScript(lab, clients[0]!, HOLDER, [vip, "80"]);
    const lines = () =>
      lab
        .output(holder)
        .split("\n")
        .filter((l) => /^\d+ b\d/.test(l));
    await waitFor(() => lines().length >= 3, { what: "the held connection's first replies" });
    const pinned = backends.find((b) => b.marker === lines()[0]!.split(" ")[1])!;
    await daemons[pinned.host]!.cli(["service", "remove-backend", "web", pinned.ns]);
    await usableBackendsEverywhere("web", 3);
    const removedAt = Date.now();
    for (const c of clients) {
      await waitFor(async () => (await dig(lab, c, ["tasks.web"])).length === 3, {
        what: `tasks.web from ${c}`,
      });
      t.false((await dig(lab, c, ["tasks.web"])).includes(pinned.ip));
      const r = await connections(lab, c, { ip: vip, port: 80, count: 100, conc: 8 });
      t.deepEqual(r.errors, {});
      t.false(pinned.marker in r.markers, JSON.stringify(r.markers));
    }
    // the established connection stayed on its backend and kept being answered after the removal
    await waitFor(() => lines().some((l) => Number(l.split(" ")[0]) > removedAt + 500), {
      what: "replies on the held connection after the removal",
    });
    t.true(
      lines().every((l) => l.split(" ")[1] === pinned.marker),
      "every reply came from the pinned backend",
    );
    t.false(lab.output(holder).includes("closed"));
    holder.kill("SIGTERM");
    await daemons[pinned.host]!.cli(["service", "add-backend", "web", pinned.ns]);
    await usableBackendsEverywhere("web", 4);
  },
);

test.serial("--affinity client-ip keeps each client on one backend, on every host", async (t) => {
  const { lab, daemons, clients, backends } = bed!;
  await daemons[0]!.cli([
    "service",
    "create",
    "--name",
    "sticky",
    "--network",
    NET,
    "--port",
    "80",
    "--affinity",
    "client-ip",
  ]);
  for (const b of backends) await daemons[b.host]!.cli(["service", "add-backend", "sticky", b.ns]);
  await usableBackendsEverywhere("sticky", 4);
  const vip = (await service(daemons[0]!, "sticky")).VirtualIPs[0]!.Addr!.split("/")[0]!;
  for (const c of clients) {
    const r = await connections(lab, c, { ip: vip, port: 80, count: 60, conc: 6 });
    t.deepEqual(r.errors, {});
    t.is(Object.keys(r.markers).length, 1, `${c}: ${JSON.stringify(r.markers)}`);
  }
  await daemons[0]!.cli(["service", "rm", "sticky"]);
});

test.serial(
  "--health-tcp: a backend that does not listen is never used; one that stops is dropped",
  async (t) => {
    const { lab, daemons, clients, backends } = bed!;
    const [d1] = daemons as [LabDaemon];
    await d1.cli([
      "service",
      "create",
      "--name",
      "hc",
      "--network",
      NET,
      "--port",
      "81",
      "--health-tcp",
      "81",
    ]);
    // b1 listens on 81, b2 does not
    const b1 = backends[0]!;
    const b2 = backends[1]!;
    const server = await startBackend(lab, b1.ns, "hc-b1", 81);
    for (const b of [b1, b2]) await daemons[b.host]!.cli(["service", "add-backend", "hc", b.ns]);
    await waitFor(
      async () => {
        const v = await service(d1, "hc");
        const health = Object.fromEntries(v.Backends.map((b) => [b.Addr, b.Health]));
        return health[b1.ip] === "healthy" && health[b2.ip] === "unhealthy";
      },
      { timeoutMs: 10_000, what: "hc health seen on node1" },
    );
    const hcVip = (await service(d1, "hc")).VirtualIPs[0]!.Addr!.split("/")[0]!;
    const r = await connections(lab, clients[0]!, { ip: hcVip, port: 81, count: 30, conc: 3 });
    t.deepEqual(r.errors, {});
    t.deepEqual(r.markers, { "hc-b1": 30 });
    t.deepEqual(await dig(lab, clients[0]!, ["tasks.hc"]), [b1.ip]);
    // the only healthy backend stops: the VIP stays (and resolves) but refuses at once
    server.kill("SIGKILL");
    await waitFor(async () => (await service(d1, "hc")).Backends.every((b) => b.Health === "unhealthy"), {
      timeoutMs: 10_000,
      what: "b1 seen unhealthy on node1",
    });
    t.deepEqual(await dig(lab, clients[0]!, ["hc"]), [hcVip]);
    const refused = await connections(lab, clients[0]!, { ip: hcVip, port: 81, count: 5, conc: 1 });
    t.deepEqual(refused.errors, { ECONNREFUSED: 5 });
    await d1.cli(["service", "rm", "hc"]);
  },
);

test.serial(
  "a dead host's backends leave the VIP on the others; its own data plane keeps serving",
  async (t) => {
    const { lab, daemons, clients, vip } = bed!;
    const d3 = daemons[2]!;
    await d3.kill("SIGKILL");
    // how long after node1 declares node3 dead its backends are gone there (logged, not asserted)
    const d1 = daemons[0]!;
    const dead = await waitFor(
      async () => {
        const nodes = (await d1.api("GET", "/trellis/nodes")).body as Array<{ Name: string; State: string }>;
        return nodes.find((n) => n.Name === "node3")?.State === "dead" && Date.now();
      },
      { timeoutMs: 15_000, intervalMs: 20, what: "node1 declares node3 dead" },
    );
    const gone = await waitFor(
      async () => (await service(d1, "web")).Backends.every((b) => b.Node !== "node3") && Date.now(),
      { timeoutMs: 15_000, intervalMs: 20, what: "node3's backends gone on node1" },
    );
    t.log(
      `node3's backends left node1's view ${Number(gone) - Number(dead)} ms after node1 saw node3 dead (polled every 20 ms)`,
    );
    await usableBackendsEverywhere("web", 2, daemons.slice(0, 2));
    for (const c of clients.slice(0, 2)) {
      await waitFor(async () => (await dig(lab, c, ["tasks.web"])).length === 2, {
        what: `tasks.web from ${c}`,
      });
      const r = await connections(lab, c, { ip: vip, port: 80, count: 100, conc: 8 });
      t.deepEqual(r.errors, {});
      t.deepEqual(Object.keys(r.markers).sort(), ["b1", "b2"]);
    }
    // node3's kernel state outlives its daemon: its client still reaches the service
    const r3 = await connections(lab, clients[2]!, { ip: vip, port: 80, count: 40, conc: 4 });
    t.deepEqual(r3.errors, {});
    // the restarted daemon reconciles and announces its backends again
    await d3.restart();
    await usableBackendsEverywhere("web", 4);
    const r = await connections(lab, clients[0]!, { ip: vip, port: 80, count: 200, conc: 8 });
    t.deepEqual(r.errors, {});
    t.deepEqual(Object.keys(r.markers).sort(), ["b1", "b2", "b3", "b4"]);
    t.deepEqual(await dig(lab, clients[2]!, ["web"]), [vip]);
  },
);

test.serial("removing the service removes its VIP, names and rules on every host", async (t) => {
  const { lab, hosts, daemons, clients, vip } = bed!;
  await daemons[1]!.cli(["service", "rm", "web"]);
  for (const [i, d] of daemons.entries()) {
    await waitFor(async () => (await d.api("GET", "/trellis/services/web")).status === 404, {
      what: `web gone on ${d.host.name}`,
    });
    await waitFor(async () => (await dig(lab, clients[i]!, ["web"])).length === 0, { what: "web NXDOMAIN" });
    await waitFor(
      async () =>
        (await lab.exec(hosts[i]!.ns, ["nft", "list", "table", "ip", "trellis_svc"], { allowFail: true }))
          .code !== 0,
      { what: `${d.host.name} deleted the service table` },
    );
    const addrs = (await lab.exec(hosts[i]!.ns, ["ip", "-4", "-o", "addr", "show"])).stdout;
    t.false(addrs.includes(`${vip}/32`), `${d.host.name} still holds the VIP`);
    t.false(/ tm-/.test(addrs), `${d.host.name} still has a mesh port`);
  }
  // the network can go now
  await daemons[0]!.cli(["network", "disconnect", NET, clients[0]!]);
});
