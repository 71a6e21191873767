/**
 * The VIP load balancer on real traffic. One lab host namespace holds a plain Linux bridge
 * (10.77.0.0/24, gateway .1) with two client and four backend "containers"; the service table is
 * programmed in the host namespace, where the clients' traffic to the VIPs (spare addresses of the
 * subnet, routed via the gateway) is forwarded. Replies from a backend to a client on the same
 * bridge are bridged, not routed: br_netfilter (bridge-nf-call-iptables, on by default in a new
 * namespace) passes them through conntrack, which restores the VIP as their source.
 */
import type { ChildProcess } from "node:child_process";
import test from "ava";
import type { Backend, Service } from "../../lib/ingress/model.js";
import { ServiceProgrammer } from "../../lib/ingress/programmer.js";
import { nftApply } from "../../lib/kernel/nft.js";
import { Lab, type LabHost, waitFor } from "../helpers/lab.js";
import { run } from "../helpers/proc.js";

const SUBNET = "10.77.0";
const PORT = 8080;
const VIP_EVEN = `${SUBNET}.250`;
const VIP_STICKY = `${SUBNET}.251`;
const VIP_EMPTY = `${SUBNET}.252`;
const VIP_DRAIN = `${SUBNET}.253`;

/** Backend: TCP greets with "<marker>\n" and answers each line with "<marker> <client address> <line>";
 * UDP answers "<marker>\n". */
const SERVER = `
import net from "node:net"; import dgram from "node:dgram";
const [marker, port] = process.argv.slice(1);
let up = 0; const ready = () => { if (++up === 2) console.log("ready"); };
net.createServer((s) => { s.on("error", () => {}); s.write(marker + "\\n");
  s.on("data", (d) => s.write(marker + " " + s.remoteAddress + " " + d)); }).listen(+port, "0.0.0.0", ready);
const u = dgram.createSocket("udp4"); u.on("message", (m, r) => u.send(marker + "\\n", r.port, r.address));
u.bind(+port, "0.0.0.0", ready);`;

/** Client: COUNT new connections (CONC at a time) to IP:PORT; prints {"markers":{},"errors":{},"ms":N}. */
const COUNTER = `
import net from "node:net"; import dgram from "node:dgram";
const [proto, ip, port, count, conc, timeout] = process.argv.slice(1);
const markers = {}, errors = {}; let started = 0; const t0 = Date.now();
const tally = (o, k) => { o[k] = (o[k] ?? 0) + 1; };
const one = () => new Promise((done) => {
  let settled = false; let sock;
  const end = (kind, key) => { if (settled) return; settled = true; clearTimeout(timer);
    tally(kind === "ok" ? markers : errors, key); if (proto === "tcp") sock.destroy(); else sock.close(); done(); };
  const timer = setTimeout(() => end("err", "timeout"), +timeout);
  if (proto === "tcp") {
    sock = net.connect(+port, ip); let buf = "";
    sock.on("data", (d) => { buf += d; if (buf.includes("\\n")) end("ok", buf.split("\\n")[0]); });
    sock.on("error", (e) => end("err", e.code ?? e.message));
  } else {
    sock = dgram.createSocket("udp4");
    sock.on("message", (m) => end("ok", String(m).trim()));
    sock.on("error", (e) => end("err", e.code ?? e.message));
    sock.connect(+port, ip, () => sock.send("q"));
  }
});
const worker = async () => { while (started < +count) { started++; await one(); } };
await Promise.all(Array.from({ length: +conc }, worker));
console.log(JSON.stringify({ markers, errors, ms: Date.now() - t0 }));`;

/** Client: one long-lived TCP connection, a line every 100 ms; prints "<ms> <reply>" per reply. */
const HOLDER = `
import net from "node:net";
const [ip, port] = process.argv.slice(1);
const s = net.connect(+port, ip); let n = 0;
s.on("data", (d) => { for (const l of String(d).split("\\n").filter(Boolean)) console.log(Date.now() + " " + l); });
s.on("close", () => { console.log("closed"); process.exit(0); });
s.on("error", (e) => console.log("error " + e.code));
setInterval(() => s.write("ping" + n++ + "\\n"), 100);`;

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

function spawnScript(lab: Lab, ns: string, script: string, args: string[]): ChildProcess {
  return lab.spawnIn(ns, [process.execPath, "--input-type=module", "-e", script, ...args]);
}

async function runScript(lab: Lab, ns: string, script: string, args: string[]): Promise<string> {
  const r = await lab.exec(ns, [process.execPath, "--input-type=module", "-e", script, ...args], {
    timeoutMs: 120_000,
  });
  return r.stdout;
}

interface Counts {
  markers: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
}

async function connections(client: string, proto: "tcp" | "udp", vip: string, count: number, conc = 16) {
  const { lab } = bed!;
  const out = await runScript(lab, client, COUNTER, [proto, vip, "80", String(count), String(conc), "3000"]);
  return JSON.parse(out) as Counts;
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
      const child = spawnScript(lab, ns, SERVER, [`be${i}`, String(PORT)]);
      await waitFor(() => lab.output(child).includes("ready"), { timeoutMs: 10_000, what: `server be${i}` });
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

/** χ² of observed counts against an even spread over `k` categories. */
function chiSquare(counts: number[], k: number): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / k;
  const padded = [...counts, ...Array(k - counts.length).fill(0)];
  return padded.reduce((acc, o) => acc + (o - expected) ** 2 / expected, 0);
}

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
  const { lab, host } = bed!;
  const r = await runScript(lab, host.ns, COUNTER, ["tcp", VIP_EVEN, "80", "40", "4", "3000"]);
  const counts = JSON.parse(r) as Counts;
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
