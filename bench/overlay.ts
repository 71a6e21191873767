/**
 * Overlay throughput benchmark: iperf3 TCP, one stream, container → container across two lab hosts
 * over a trellis overlay network, side by side in the same run with
 *   (a) the raw underlay between the two trellis host namespaces (veth → lab switch → veth), and
 *   (b) a VXLAN + bridge path built by hand with `ip`/`bridge` between two more lab hosts on the same
 *       switch: the kernel's own limit for trellis's design (vxlan dstport 4789, learning off, static
 *       FDB and neighbour entries, a container namespace per host on a bridge with the vxlan, MTU 1450).
 * A script, not a test: it prints what it measured and never fails on the figures. It fails only when
 * an operation fails, or when a path fragments (the MSS does not fit the MTU, or IP fragment counters
 * moved), because then the figures would not mean what they say.
 *
 *   node dist/bench/overlay.js [--seconds N] [--rounds N] [--json]
 *
 * Every path is measured `--rounds` times (default 2), the paths taking turns in an order that is
 * reversed every round (a b t, t b a, ...), so load from elsewhere on the machine falls on all alike;
 * the figure is the median of the rounds. Nothing leaves the lab: every address is inside its
 * namespaces, on the lab underlay 10.99.0.0/24.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { parseArgs } from "node:util";
import { Lab, type LabDaemon, type LabHost, waitFor } from "../test/helpers/lab.js";
import { errorMessage } from "../test/helpers/proc.js";
import { quantile } from "./lib/stats.js";
import { buildCommit } from "./lib/sys.js";

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

/** iperf3 --omit: the first second (slow start) is not counted. */
const OMIT_S = 1;
const IPERF_PORT = "5201";
/** The issue's goal: trellis ≥ 95 % of the hand-built VXLAN path. */
const GOAL_PERCENT = 95;
/** VXLAN over IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
const VXLAN_OVERHEAD = 50;
/** IPv4 20 + TCP 20 bytes of headers: MSS ≤ MTU − 40 (timestamps take 12 more out of the MSS). */
const TCP_IP_HEADERS = 40;

const TRELLIS_NET = "benchov";
const TRELLIS_SUBNET = "10.150.0.0/24";
const HAND_VNI = "4242";
const HAND = {
  k1: { ip: "10.151.0.1", mac: "02:00:0a:97:00:01" },
  k2: { ip: "10.151.0.2", mac: "02:00:0a:97:00:02" },
};
const HAND_MTU = 1450;

interface Options {
  seconds: number;
  rounds: number;
  json: boolean;
}

const USAGE = `Usage: node dist/bench/overlay.js [options]   (as root; build first: npx tsc -p tsconfig.json)

iperf3 TCP throughput, one stream, container to container across two lab hosts over a trellis
overlay network, next to (a) the raw underlay between the two hosts and (b) a VXLAN + bridge path
built by hand between two more lab hosts, in the same run.

  --seconds N   length of each iperf3 run, after ${OMIT_S} s of warm-up not counted (default 10)
  --rounds N    runs per path; the paths take turns, order reversed each round (default 2)
  --json        JSON document on stdout, the table on stderr
  -h, --help    this help`;

function parseOptions(argv: string[]): Options | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      seconds: { type: "string" },
      rounds: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const integer = (name: string, raw: string | undefined, fallback: number, max: number) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new Error(`--${name} must be an integer from 1 to ${max}, got "${raw}"`);
    return n;
  };
  return {
    seconds: integer("seconds", values.seconds, 10, 600),
    rounds: integer("rounds", values.rounds, 2, 50),
    json: values.json ?? false,
  };
}

type PathKey = "underlay" | "handmade" | "trellis";

/** One path to measure: an iperf3 client in `client`, its server in `server` at `serverIp`. */
interface PathSpec {
  key: PathKey;
  label: string;
  client: string;
  server: string;
  serverIp: string;
  /** Every namespace a packet of this path goes through (whose IP fragment counters must not move). */
  namespaces: string[];
  /** For the overlays: the underlay interface the VXLAN packets leave by, as [namespace, device]. */
  underlayDev?: [string, string];
}

interface RunFigures {
  /** Receiver's figure for the whole run minus the omitted warm-up, in Gbit/s. */
  gbps: number;
  retransmits: number;
  /** iperf3's TCP_MAXSEG of the data connection (the MSS without TCP options). */
  iperfMss: number | null;
  /** From `ss -tin` on the client halfway through the run. */
  ss: { mss: number | null; pmtu: number | null; advmss: number | null };
  cpuSenderPercent: number | null;
  cpuReceiverPercent: number | null;
  /** Sum over the path's namespaces of the IP fragmentation counters' increase during the run. */
  fragDeltas: Record<string, number>;
}

interface PathResult {
  key: PathKey;
  label: string;
  /** MTU of the client's interface (the path MTU the TCP stream sees). */
  mtu: number;
  /** MTU of the underlay interface the encapsulated packets leave by (overlays only). */
  underlayMtu: number | null;
  runs: RunFigures[];
  medianGbps: number;
  /** Problems that make this path's figures suspect (fragmentation, MSS larger than the MTU allows). */
  problems: string[];
}

// ------------------------------------------------------------------ small helpers

async function sh(lab: Lab, ns: string, argv: string[]): Promise<string> {
  return (await lab.exec(ns, argv)).stdout;
}

async function mtuOf(lab: Lab, ns: string, dev: string): Promise<number> {
  const links = JSON.parse(await sh(lab, ns, ["ip", "-j", "link", "show", "dev", dev])) as Array<{
    mtu: number;
  }>;
  const mtu = links[0]?.mtu;
  if (typeof mtu !== "number") throw new Error(`no MTU for ${dev} in ${ns}`);
  return mtu;
}

const FRAG_COUNTERS = ["FragOKs", "FragFails", "FragCreates", "ReasmReqds", "ReasmOKs", "ReasmFails"];

/** The IPv4 fragmentation/reassembly counters of `ns` (from its /proc/net/snmp). */
async function fragCounters(lab: Lab, ns: string): Promise<Record<string, number>> {
  const text = await sh(lab, ns, ["cat", "/proc/net/snmp"]);
  const lines = text.split("\n").filter((l) => l.startsWith("Ip: "));
  const [names, values] = lines.map((l) => l.slice(4).trim().split(/\s+/));
  if (!names || !values) throw new Error(`no Ip: lines in ${ns}'s /proc/net/snmp`);
  const out: Record<string, number> = {};
  for (const name of FRAG_COUNTERS) {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`no ${name} in ${ns}'s /proc/net/snmp`);
    out[name] = Number(values[i]);
  }
  return out;
}

async function fragSnapshot(lab: Lab, namespaces: string[]): Promise<Record<string, number>> {
  const sum: Record<string, number> = Object.fromEntries(FRAG_COUNTERS.map((c) => [c, 0]));
  for (const ns of namespaces) {
    const c = await fragCounters(lab, ns);
    for (const name of FRAG_COUNTERS) sum[name]! += c[name]!;
  }
  return sum;
}

/** `ss -tin dst IP` on the client: the largest mss/pmtu/advmss among its sockets to the server. */
function parseSs(text: string): RunFigures["ss"] {
  const pick = (re: RegExp) => {
    const all = [...text.matchAll(re)].map((m) => Number(m[1]));
    return all.length > 0 ? Math.max(...all) : null;
  };
  return { mss: pick(/\bmss:(\d+)/g), pmtu: pick(/\bpmtu:(\d+)/g), advmss: pick(/\badvmss:(\d+)/g) };
}

/** CPU time (user + system) that process `pid` has used so far, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
}

/** Clock ticks per second (USER_HZ): 100 on every Linux architecture Node runs on. */
const USER_HZ = 100;

function median(xs: number[]): number {
  return quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
}

// ------------------------------------------------------------------ set-up

/** Two trellis hosts joined in one cluster, an overlay network, one container on each host. */
async function setUpTrellis(lab: Lab, h1: LabHost, h2: LabHost) {
  const args = (h: LabHost, i: number) => [
    "--advertise-addr",
    h.underlayIp,
    "--node-name",
    `node${i}`,
    "--gossip-profile",
    "test",
    "--log-level",
    "warn",
  ];
  const d1 = await lab.startDaemon(h1, { args: args(h1, 1) });
  const d2 = await lab.startDaemon(h2, { args: [...args(h2, 2), "--join", h1.underlayIp] });
  await waitFor(
    async () => {
      for (const d of [d1, d2]) {
        const nodes = (await d.api("GET", "/trellis/nodes")).body as Array<{ State: string }>;
        if (nodes.filter((n) => n.State === "alive").length !== 2) return false;
      }
      return true;
    },
    { timeoutMs: 20_000, what: "both trellisd see each other alive" },
  );
  await d1.cli(["network", "create", "-d", "overlay", "--subnet", TRELLIS_SUBNET, TRELLIS_NET]);
  await waitFor(async () => (await d2.api("GET", `/networks/${TRELLIS_NET}`)).status === 200, {
    timeoutMs: 10_000,
    what: `${TRELLIS_NET} known on ${h2.name}`,
  });
  const c1 = await lab.addContainer("h1-c1");
  const c2 = await lab.addContainer("h2-c1");
  await d1.cli(["network", "connect", TRELLIS_NET, c1]);
  await d2.cli(["network", "connect", TRELLIS_NET, c2]);
  const ip2 = await endpointIp(d2, c2);
  await waitFor(
    async () => (await lab.exec(c1, ["ping", "-c", "1", "-W", "1", ip2], { allowFail: true })).code === 0,
    { timeoutMs: 10_000, what: `${c1} pings ${ip2} over ${TRELLIS_NET}` },
  );
  return { c1, c2, ip2, daemons: [d1, d2] };
}

async function endpointIp(d: LabDaemon, name: string): Promise<string> {
  const r = await d.api("GET", `/networks/${TRELLIS_NET}`);
  const containers = (r.body as { Containers?: Record<string, { Name: string; IPv4Address: string }> })
    .Containers;
  const ep = Object.values(containers ?? {}).find((c) => c.Name === name);
  if (!ep) throw new Error(`${name} is not on ${TRELLIS_NET}`);
  return ep.IPv4Address.split("/")[0]!;
}

/**
 * The hand-built path between hosts k1 and k2: in each, bridge br0 with vxlan vx0 (VNI 4242, dstport
 * 4789, local = its underlay address, nolearning) and a veth to a container namespace, all MTU 1450;
 * one static FDB entry (peer container MAC → peer VTEP) and one permanent neighbour entry in the
 * container for the peer. The same shape as what trellis programs, with nothing else in the way.
 */
async function setUpHandmade(lab: Lab, k1: LabHost, k2: LabHost) {
  const sides = [
    { host: k1, me: HAND.k1, peer: HAND.k2, peerVtep: k2.underlayIp, c: "" },
    { host: k2, me: HAND.k2, peer: HAND.k1, peerVtep: k1.underlayIp, c: "" },
  ];
  for (const side of sides) {
    const ns = side.host.ns;
    side.c = await lab.addContainer(`${side.host.name}-c1`);
    const ip = (args: string[]) => sh(lab, ns, ["ip", ...args]);
    await ip(["link", "add", "br0", "type", "bridge"]);
    await ip(["link", "set", "br0", "up"]);
    await ip([
      "link",
      "add",
      "vx0",
      "type",
      "vxlan",
      "id",
      HAND_VNI,
      "dstport",
      "4789",
      "local",
      side.host.underlayIp,
      "dev",
      "eth0",
      "nolearning",
    ]);
    await ip(["link", "set", "vx0", "mtu", String(HAND_MTU), "master", "br0", "up"]);
    await ip([
      "link",
      "add",
      "v0",
      "mtu",
      String(HAND_MTU),
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      side.c,
    ]);
    await ip(["link", "set", "v0", "master", "br0", "up"]);
    await sh(lab, side.c, [
      "ip",
      "link",
      "set",
      "eth0",
      "address",
      side.me.mac,
      "mtu",
      String(HAND_MTU),
      "up",
    ]);
    await sh(lab, side.c, ["ip", "addr", "add", `${side.me.ip}/24`, "dev", "eth0"]);
    await sh(lab, ns, [
      "bridge",
      "fdb",
      "add",
      side.peer.mac,
      "dev",
      "vx0",
      "dst",
      side.peerVtep,
      "self",
      "permanent",
    ]);
    await sh(lab, side.c, [
      "ip",
      "neigh",
      "add",
      side.peer.ip,
      "lladdr",
      side.peer.mac,
      "dev",
      "eth0",
      "nud",
      "permanent",
    ]);
  }
  const [c1, c2] = [sides[0]!.c, sides[1]!.c];
  await waitFor(
    async () =>
      (await lab.exec(c1, ["ping", "-c", "1", "-W", "1", HAND.k2.ip], { allowFail: true })).code === 0,
    { timeoutMs: 10_000, what: `${c1} pings ${HAND.k2.ip} over the hand-built VXLAN` },
  );
  return { c1, c2 };
}

/** The `vxlan ...` line of `ip -d link show DEV` in `ns`: how the device is configured. */
async function vxlanDetails(lab: Lab, ns: string, dev: string): Promise<string> {
  const text = await sh(lab, ns, ["ip", "-d", "link", "show", "dev", dev]);
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l.startsWith("vxlan ")) ?? "?"
  );
}

/**
 * What a namespace adds to a bridged packet's path besides the devices: whether br_netfilter hands
 * bridged IPv4 to the inet hooks there, and which nftables tables exist (conntrack, chains).
 */
async function netfilterOf(lab: Lab, ns: string): Promise<string> {
  const brnf = await lab.exec(ns, ["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"], {
    allowFail: true,
  });
  const tables = (await sh(lab, ns, ["nft", "list", "tables"]))
    .split("\n")
    .map((l) => l.replace(/^table /, "").trim())
    .filter((l) => l !== "");
  const brnfText = brnf.code === 0 ? brnf.stdout.trim() : "n/a (br_netfilter not loaded)";
  return `bridge-nf-call-iptables=${brnfText}, nft tables: ${tables.length > 0 ? tables.join(", ") : "none"}`;
}

async function trellisVxlanDev(lab: Lab, ns: string): Promise<string> {
  const links = JSON.parse(await sh(lab, ns, ["ip", "-j", "-d", "link", "show", "type", "vxlan"])) as Array<{
    ifname: string;
  }>;
  const dev = links[0]?.ifname;
  if (!dev) throw new Error(`no vxlan device in ${ns}`);
  return dev;
}

async function startIperfServer(lab: Lab, ns: string, ip: string): Promise<void> {
  const child = lab.spawnIn(ns, ["iperf3", "-s", "-B", ip, "-p", IPERF_PORT]);
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`iperf3 server in ${ns} exited: ${lab.output(child)}`);
      const out = await sh(lab, ns, ["ss", "-Hltn", "sport", `= :${IPERF_PORT}`]);
      return out.trim() !== "";
    },
    { timeoutMs: 10_000, what: `iperf3 server in ${ns} listening` },
  );
}

// ------------------------------------------------------------------ measuring

interface IperfJson {
  error?: string;
  start?: { tcp_mss_default?: number; tcp_mss?: number };
  end?: {
    sum_sent?: { retransmits?: number };
    sum_received?: { bits_per_second?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

async function measureOnce(lab: Lab, path: PathSpec, seconds: number): Promise<RunFigures> {
  const before = await fragSnapshot(lab, path.namespaces);
  const client = lab.exec(
    path.client,
    ["iperf3", "-c", path.serverIp, "-p", IPERF_PORT, "-t", String(seconds), "-O", String(OMIT_S), "-J"],
    { timeoutMs: (seconds + OMIT_S + 30) * 1000, allowFail: true },
  );
  // Halfway through, the data connection's MSS and path MTU as the kernel has them.
  await new Promise((r) => setTimeout(r, ((seconds + OMIT_S) * 1000) / 2));
  const ssOut = (await lab.exec(path.client, ["ss", "-tin", "dst", path.serverIp], { allowFail: true }))
    .stdout;
  const res = await client;
  let json: IperfJson;
  try {
    json = JSON.parse(res.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 in ${path.client} (exit ${res.code}) printed no JSON: ${res.stderr.trim()}`);
  }
  if (json.error || res.code !== 0)
    throw new Error(`iperf3 in ${path.client}: ${json.error ?? res.stderr.trim()}`);
  const bps = json.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number") throw new Error(`iperf3 in ${path.client}: no end.sum_received in its JSON`);
  const after = await fragSnapshot(lab, path.namespaces);
  return {
    gbps: bps / 1e9,
    retransmits: json.end?.sum_sent?.retransmits ?? 0,
    iperfMss: json.start?.tcp_mss_default ?? json.start?.tcp_mss ?? null,
    ss: parseSs(ssOut),
    cpuSenderPercent: json.end?.cpu_utilization_percent?.host_total ?? null,
    cpuReceiverPercent: json.end?.cpu_utilization_percent?.remote_total ?? null,
    fragDeltas: Object.fromEntries(FRAG_COUNTERS.map((c) => [c, after[c]! - before[c]!])),
  };
}

function problemsOf(path: PathSpec, mtu: number, underlayMtu: number | null, runs: RunFigures[]): string[] {
  const problems: string[] = [];
  for (const [i, r] of runs.entries()) {
    const moved = Object.entries(r.fragDeltas).filter(([, d]) => d !== 0);
    if (moved.length > 0)
      problems.push(
        `run ${i + 1}: IP fragment counters moved: ${moved.map(([c, d]) => `${c} +${d}`).join(", ")}`,
      );
    for (const [what, mss] of [
      ["iperf3 MSS", r.iperfMss],
      ["ss mss", r.ss.mss],
    ] as const) {
      if (mss !== null && mss + TCP_IP_HEADERS > mtu)
        problems.push(`run ${i + 1}: ${what} ${mss} + ${TCP_IP_HEADERS} > MTU ${mtu}`);
    }
    if (r.ss.pmtu !== null && r.ss.pmtu > mtu)
      problems.push(`run ${i + 1}: ss pmtu ${r.ss.pmtu} > MTU ${mtu}`);
    if (r.ss.mss === null)
      problems.push(`run ${i + 1}: ss showed no mss for the connection to ${path.serverIp}`);
  }
  if (underlayMtu !== null && mtu + VXLAN_OVERHEAD > underlayMtu)
    problems.push(
      `MTU ${mtu} + ${VXLAN_OVERHEAD} (VXLAN) > underlay MTU ${underlayMtu}: the outer packets fragment`,
    );
  return problems;
}

// ------------------------------------------------------------------ report

interface Report {
  settings: { seconds: number; omitSeconds: number; rounds: number; order: string[][] };
  environment: Record<string, string | number | number[]>;
  paths: PathResult[];
  vxlan: { handmade: string; trellis: string };
  /** Netfilter in the namespaces of (b) and of trellis: the main thing besides the devices that differs. */
  netfilter: Record<string, string>;
  /** CPU the two trellisd used while the runs went on, in % of one CPU (they are off the data path). */
  trellisdCpuPercent: Record<string, number>;
  trellisPercentOfHandmade: number;
  goal: { percentOfHandmade: number; met: boolean };
  problems: string[];
}

const fmt = (x: number | null | undefined, digits = 2) =>
  x === null || x === undefined || Number.isNaN(x) ? "-" : x.toFixed(digits);

function renderReport(r: Report): string {
  const out: string[] = [];
  out.push("");
  out.push(
    `overlay throughput: iperf3 TCP, 1 stream, ${r.settings.seconds} s per run (+${r.settings.omitSeconds} s not counted), ` +
      `${r.settings.rounds} run(s) per path, turns: ${r.settings.order.map((o) => o.join(" ")).join(" | ")}`,
  );
  for (const [k, v] of Object.entries(r.environment))
    out.push(`  ${k}: ${Array.isArray(v) ? v.join(" ") : v}`);
  out.push("");
  const runHeads = r.paths[0]?.runs.map((_, i) => `run ${i + 1}`) ?? [];
  const head = [
    "path",
    "MTU",
    "MSS",
    "pmtu",
    ...runHeads,
    "median Gbit/s",
    "retr",
    "CPU snd/rcv %",
    "vs (b)",
  ];
  const handmade = r.paths.find((p) => p.key === "handmade");
  const rows = r.paths.map((p) => {
    const mss = [...new Set(p.runs.map((x) => x.ss.mss))].join("/");
    const pmtu = [...new Set(p.runs.map((x) => x.ss.pmtu))].join("/");
    const retr = p.runs.map((x) => x.retransmits).join("/");
    const cpu = p.runs.map((x) => `${fmt(x.cpuSenderPercent, 0)}/${fmt(x.cpuReceiverPercent, 0)}`).join(" ");
    const vs =
      handmade && p.key !== "handmade" ? `${fmt((100 * p.medianGbps) / handmade.medianGbps, 1)} %` : "";
    return [
      p.label,
      String(p.mtu),
      mss,
      pmtu,
      ...p.runs.map((x) => fmt(x.gbps)),
      fmt(p.medianGbps),
      retr,
      cpu,
      vs,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  out.push(line(head));
  out.push(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) out.push(line(row));
  out.push("");
  out.push(`(b) vxlan:  ${r.vxlan.handmade}`);
  out.push(`trellis vxlan: ${r.vxlan.trellis}`);
  for (const [ns, text] of Object.entries(r.netfilter)) out.push(`netfilter in ${ns}: ${text}`);
  for (const p of r.paths) {
    if (p.underlayMtu !== null)
      out.push(
        `${p.label}: MTU ${p.mtu} inside, underlay MTU ${p.underlayMtu} (≥ ${p.mtu} + ${VXLAN_OVERHEAD})`,
      );
  }
  out.push(
    `trellisd CPU during the runs (control plane only, off the data path): ${Object.entries(
      r.trellisdCpuPercent,
    )
      .map(([h, pct]) => `${h} ${fmt(pct, 1)} %`)
      .join(", ")} of one CPU`,
  );
  out.push(
    r.problems.length === 0
      ? "fragmentation: none (MSS + 40 ≤ MTU on every path; IP Frag*/Reasm* counters unchanged in every namespace of every path)"
      : `PROBLEMS (figures suspect):\n  ${r.problems.join("\n  ")}`,
  );
  out.push("");
  out.push(
    `goal: trellis ≥ ${r.goal.percentOfHandmade} % of the hand-built VXLAN path (b): ` +
      `${fmt(r.trellisPercentOfHandmade, 1)} % → ${r.goal.met ? "MET" : "NOT MET"} in this run`,
  );
  return out.join("\n");
}

function environment(lab: Lab): Record<string, string | number | number[]> {
  const commit = buildCommit(lab.repoRoot);
  let iperf = "?";
  try {
    iperf = execFileSync("iperf3", ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim();
  } catch {
    // reported when the first run fails
  }
  return {
    node: process.version,
    kernel: release(),
    cpus: `${cpus().length}× ${cpus()[0]?.model.trim() ?? "?"}`,
    iperf3: iperf,
    commit,
    "load avg 1/5/15 at start": loadavg().map((x) => Number(x.toFixed(2))),
  };
}

// ------------------------------------------------------------------ main

async function runBench(opts: Options, lab: Lab): Promise<Report> {
  const env = environment(lab);
  say(`lab ${lab.prefix}: hosts h1 h2 (trellis), k1 k2 (hand-built VXLAN) on the lab switch`);
  const h1 = await lab.addHost("h1");
  const h2 = await lab.addHost("h2");
  const k1 = await lab.addHost("k1");
  const k2 = await lab.addHost("k2");
  say("starting trellisd on h1 and h2, overlay network, one container per host");
  const tr = await setUpTrellis(lab, h1, h2);
  say("building the hand-built VXLAN + bridge path on k1 and k2");
  const hand = await setUpHandmade(lab, k1, k2);

  const trellisVx = await trellisVxlanDev(lab, h1.ns);
  const paths: PathSpec[] = [
    {
      key: "underlay",
      label: `(a) underlay ${h1.name} → ${h2.name}`,
      client: h1.ns,
      server: h2.ns,
      serverIp: h2.underlayIp,
      namespaces: [h1.ns, h2.ns],
    },
    {
      key: "handmade",
      label: `(b) hand-built VXLAN ${k1.name} → ${k2.name}`,
      client: hand.c1,
      server: hand.c2,
      serverIp: HAND.k2.ip,
      namespaces: [hand.c1, k1.ns, k2.ns, hand.c2],
      underlayDev: [k1.ns, "eth0"],
    },
    {
      key: "trellis",
      label: `trellis overlay ${h1.name} → ${h2.name}`,
      client: tr.c1,
      server: tr.c2,
      serverIp: tr.ip2,
      namespaces: [tr.c1, h1.ns, h2.ns, tr.c2],
      underlayDev: [h1.ns, "eth0"],
    },
  ];
  for (const p of paths) await startIperfServer(lab, p.server, p.serverIp);

  const runs = new Map<PathKey, RunFigures[]>(paths.map((p) => [p.key, []]));
  const order: string[][] = [];
  const ticksBefore = tr.daemons.map((d) => cpuTicks(d.pid));
  const started = process.hrtime.bigint();
  for (let round = 0; round < opts.rounds; round++) {
    const turn = round % 2 === 0 ? paths : [...paths].reverse();
    order.push(turn.map((p) => (p.key === "trellis" ? "t" : p.key === "underlay" ? "a" : "b")));
    for (const p of turn) {
      say(`round ${round + 1}/${opts.rounds}: ${p.label} (${opts.seconds + OMIT_S} s)`);
      const figures = await measureOnce(lab, p, opts.seconds);
      say(`  ${fmt(figures.gbps)} Gbit/s, ${figures.retransmits} retransmits, mss ${figures.ss.mss ?? "?"}`);
      runs.get(p.key)!.push(figures);
    }
  }

  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  const trellisdCpuPercent = Object.fromEntries(
    tr.daemons.map((d, i) => [d.host.name, (100 * (cpuTicks(d.pid) - ticksBefore[i]!)) / USER_HZ / elapsedS]),
  );
  const results: PathResult[] = [];
  for (const p of paths) {
    const mtu = await mtuOf(lab, p.client, "eth0");
    const underlayMtu = p.underlayDev ? await mtuOf(lab, ...p.underlayDev) : null;
    const pathRuns = runs.get(p.key)!;
    results.push({
      key: p.key,
      label: p.label,
      mtu,
      underlayMtu,
      runs: pathRuns,
      medianGbps: median(pathRuns.map((x) => x.gbps)),
      problems: problemsOf(p, mtu, underlayMtu, pathRuns),
    });
  }
  const byKey = (k: PathKey) => results.find((x) => x.key === k)!;
  const percent = (100 * byKey("trellis").medianGbps) / byKey("handmade").medianGbps;
  env["load avg 1/5/15 at end"] = loadavg().map((x) => Number(x.toFixed(2)));
  return {
    settings: { seconds: opts.seconds, omitSeconds: OMIT_S, rounds: opts.rounds, order },
    environment: env,
    paths: results,
    vxlan: {
      handmade: await vxlanDetails(lab, k1.ns, "vx0"),
      trellis: await vxlanDetails(lab, h1.ns, trellisVx),
    },
    netfilter: {
      [`(b) host ${k1.name}`]: await netfilterOf(lab, k1.ns),
      [`(b) container ${hand.c1}`]: await netfilterOf(lab, hand.c1),
      [`trellis host ${h1.name}`]: await netfilterOf(lab, h1.ns),
      [`trellis container ${tr.c1}`]: await netfilterOf(lab, tr.c1),
    },
    trellisdCpuPercent,
    trellisPercentOfHandmade: percent,
    goal: { percentOfHandmade: GOAL_PERCENT, met: percent >= GOAL_PERCENT },
    problems: results.flatMap((p) => p.problems.map((x) => `${p.label}: ${x}`)),
  };
}

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    const parsed = parseOptions(argv);
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    process.stderr.write(`overlay bench: ${errorMessage(err)}\n${USAGE}\n`);
    return 1;
  }
  const lab = await Lab.create();
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: cleaning up`);
    void lab.destroy().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let report: Report;
  try {
    report = await runBench(opts, lab);
  } finally {
    await lab.destroy();
  }
  const table = renderReport(report);
  if (opts.json) {
    process.stderr.write(`${table}\n`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`${table}\n`);
  }
  return report.problems.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(
      `overlay bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
