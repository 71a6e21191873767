/**
 * The VIP load balancer on real traffic. One lab host namespace holds a plain Linux bridge
 * (10.77.0.0/24, gateway .1) with two client and four backend "containers"; the service table is
 * programmed in the host namespace, where the clients' traffic to the VIPs (spare addresses of the
 * subnet, routed via the gateway) is forwarded. Replies from a backend to a client on the same
 * bridge are bridged, not routed: br_netfilter (bridge-nf-call-iptables, on by default in a new
 * namespace) passes them through conntrack, which restores the VIP as their source.
 */
import test from "ava";
import type { Backend, Service } from "../../lib/ingress/model.js";
import { ServiceProgrammer } from "../../lib/ingress/programmer.js";
import { nftApply } from "../../lib/kernel/nft.js";
import { Lab, type LabHost, waitFor } from "../helpers/lab.js";
import { run } from "../helpers/proc.js";
import {
  chiSquare,
  connections as countConnections,
  HOLDER,
  spawnScript,
  startBackend,
} from "../helpers/svc-traffic.js";

const SUBNET = "10.77.0";
const PORT = 8080;
const VIP_EVEN = `${SUBNET}.250`;
const VIP_STICKY = `${SUBNET}.251`;
const VIP_EMPTY = `${SUBNET}.252`;
const VIP_DRAIN = `${SUBNET}.253`;

interface Bed {
  lab: Lab;
  host: LabHost;
  clients: string[];
  backends: Array<Backend & { ns: string; marker: string }>;
  programmer: ServiceProgrammer;
}
let bed: Bed | undefined;

async function ip(args: string[]): Promise<void> {
  const r = await run(["ip", ...args]);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** A container namespace on the host's bridge at SUBNET.<n>, with the VIP block routed via the host. */
async function attach(lab: Lab, host: LabHost, name: string, n: number): Promise<string> {
  const ns = await lab.addContainer(name);
  await ip(["-n", host.ns, "link", "add", `ve-${name}`, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await ip(["-n", host.ns, "link", "set", `ve-${name}`, "master", "br0", "up"]);
  await ip(["-n", ns, "addr", "add", `${SUBNET}.${n}/24`, "dev", "eth0"]);
  await ip(["-n", ns, "link", "set", "eth0", "up"]);
  await ip(["-n", ns, "route", "add", `${SUBNET}.240/28`, "via", `${SUBNET}.1`]);
  return ns;
}

/** COUNT new connections (CONC at a time) from client to VIP:80. */
function connections(client: string, proto: "tcp" | "udp", vip: string, count: number, conc = 16) {
  return countConnections(bed!.lab, client, { proto, ip: vip, port: 80, count, conc });
}

const service = (id: number, vip: string, backends: Backend[], extra: Partial<Service> = {}): Service => ({
  id,
  name: `svc${id}`,
  vips: [
    { ip: vip, port: 80, proto: "tcp" },
    { ip: vip, port: 80, proto: "udp" },
  ],
  backends,
  mesh: [],
  affinity: "none",
  ...extra,
});

test.before(async () => {
  const lab = await Lab.create();
  try {
    const host = await lab.addHost("h1");
    await ip(["-n", host.ns, "link", "add", "br0", "type", "bridge"]);
    await ip(["-n", host.ns, "addr", "add", `${SUBNET}.1/24`, "dev", "br0"]);
    await ip(["-n", host.ns, "link", "set", "br0", "up"]);
    const sysctls = [
      "net.ipv4.ip_forward=1",
      "net.ipv4.conf.all.send_redirects=0",
      "net.ipv4.conf.br0.send_redirects=0",
    ];
    await lab.exec(host.ns, ["sysctl", "-qw", ...sysctls]);
    const clients = [await attach(lab, host, "cl1", 2), await attach(lab, host, "cl2", 3)];
    const backends: Bed["backends"] = [];
    for (let i = 1; i <= 4; i++) {
      const ns = await attach(lab, host, `be${i}`, 10 + i);
      await startBackend(lab, ns, `be${i}`, PORT);
      backends.push({ ip: `${SUBNET}.${10 + i}`, port: PORT, ns, marker: `be${i}` });
    }
    const netns = `/run/netns/${host.ns}`;
    const programmer = new ServiceProgrammer({ nftApply: (script) => nftApply(script, { netns }) });
    await programmer.sync([]);
    bed = { lab, host, clients, backends, programmer };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
});

test.after.always(async () => {
  await bed?.lab.destroy();
});

const plain = (b: Bed["backends"]): Backend[] => b.map(({ ip, port }) => ({ ip, port }));

test.serial("2 000 TCP connections to a VIP spread evenly over 4 backends (χ² test)", async (t) => {
  const { programmer, clients, backends } = bed!;
  await programmer.upsert(service(1, VIP_EVEN, plain(backends)));
  const r = await connections(clients[0]!, "tcp", VIP_EVEN, 2000, 32);
  t.deepEqual(r.errors, {});
  t.deepEqual(Object.keys(r.markers).sort(), ["be1", "be2", "be3", "be4"]);
  const chi2 = chiSquare(Object.values(r.markers), 4);
  // df = 3: P(χ² > 16.27) = 0.001 for a truly even spread, so this fails wrongly once in 1 000 runs.
  t.log(
    `counts ${JSON.stringify(r.markers)}; χ² = ${chi2.toFixed(2)} (df 3, p=0.001 bound 16.27); ${r.ms} ms`,
  );
  t.true(chi2 < 16.27, `χ² = ${chi2}`);
});

test.serial("UDP to the same VIP reaches every backend, one new flow per source port", async (t) => {
  const { clients } = bed!;
  const r = await connections(clients[1]!, "udp", VIP_EVEN, 400, 16);
  t.deepEqual(r.errors, {});
  t.deepEqual(Object.keys(r.markers).sort(), ["be1", "be2", "be3", "be4"]);
  t.log(`UDP counts ${JSON.stringify(r.markers)}; χ² = ${chiSquare(Object.values(r.markers), 4).toFixed(2)}`);
});

test.serial("the host itself reaches a VIP too (nat output hook)", async (t) => {
  const { host } = bed!;
  const counts = await connections(host.ns, "tcp", VIP_EVEN, 40, 4);
  t.deepEqual(counts.errors, {});
  t.is(
    Object.values(counts.markers).reduce((a, b) => a + b, 0),
    40,
  );
  t.true(Object.keys(counts.markers).length > 1, JSON.stringify(counts.markers));
});

test.serial("client-ip affinity keeps each client on one backend, for TCP and UDP", async (t) => {
  const { programmer, clients, backends } = bed!;
  await programmer.upsert(service(2, VIP_STICKY, plain(backends), { affinity: "client-ip" }));
  for (const client of clients) {
    for (const proto of ["tcp", "udp"] as const) {
      const r = await connections(client, proto, VIP_STICKY, 200, 8);
      t.deepEqual(r.errors, {});
      t.is(Object.keys(r.markers).length, 1, `${client} ${proto}: ${JSON.stringify(r.markers)}`);
    }
  }
});

test.serial(
  "zero backends: the VIP refuses at once (TCP reset, ICMP unreachable), then serves when one joins",
  async (t) => {
    const { programmer, clients, backends } = bed!;
    await programmer.upsert(service(3, VIP_EMPTY, []));
    // UDP is refused with an ICMP error, which the kernel rate-limits per client (icmp_ratelimit:
    // a burst of 6, then 1/s): keep under the burst. TCP resets are not limited.
    for (const [proto, n] of [
      ["tcp", 20],
      ["udp", 5],
    ] as const) {
      const r = await connections(clients[0]!, proto, VIP_EMPTY, n, proto === "tcp" ? 4 : 1);
      t.deepEqual(r.errors, { ECONNREFUSED: n }, proto);
      // A timeout would take 3 s per attempt. Generous bound for a loaded machine.
      t.true(r.ms < 2500, `${proto}: ${n} refusals took ${r.ms} ms`);
      t.log(`${proto}: ${n} refusals in ${r.ms} ms`);
    }
    await programmer.upsert(service(3, VIP_EMPTY, plain(backends.slice(0, 1))));
    const r = await connections(clients[0]!, "tcp", VIP_EMPTY, 20, 4);
    t.deepEqual(r, { ...r, markers: { be1: 20 }, errors: {} });
  },
);

test.serial("a removed backend drains: no new connections, its established one carries on", async (t) => {
  const { lab, programmer, clients, backends } = bed!;
  await programmer.upsert(service(4, VIP_DRAIN, plain(backends)));
  const holder = spawnScript(lab, clients[1]!, HOLDER, [VIP_DRAIN, "80"]);
  const lines = () => lab.output(holder).split("\n").filter(Boolean);
  await waitFor(() => lines().length >= 3, {
    timeoutMs: 10_000,
    what: "the held connection's first replies",
  });
  const pinned = lines()[0]!.split(" ")[1]!;
  const gone = backends.find((b) => b.marker === pinned)!;
  const removedAt = Date.now();
  await programmer.upsert(service(4, VIP_DRAIN, plain(backends.filter((b) => b !== gone))));
  const r = await connections(clients[0]!, "tcp", VIP_DRAIN, 300, 16);
  t.deepEqual(r.errors, {});
  t.false(pinned in r.markers, `no new connection to ${pinned}: ${JSON.stringify(r.markers)}`);
  t.is(Object.keys(r.markers).length, 3);
  await waitFor(() => lines().filter((l) => Number(l.split(" ")[0]) > removedAt + 500).length >= 3, {
    timeoutMs: 10_000,
    what: "replies on the held connection after the removal",
  });
  const all = lines();
  t.false(all.includes("closed"));
  t.true(
    all.every((l) => l.split(" ")[1] === pinned),
    "every reply still comes from the removed backend",
  );
  // no masquerade on this path: the backend sees the client's own address
  t.true(
    all.slice(1).every((l) => l.split(" ")[2] === `${SUBNET}.3`),
    all.slice(0, 3).join(" | "),
  );
  t.log(`held connection on ${pinned}: ${all.length} replies, still open after removal`);
  holder.kill("SIGTERM");
});
