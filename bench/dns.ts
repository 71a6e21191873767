/**
 * Embedded DNS benchmark: dnsperf from inside a container namespace at 10 outstanding queries for a
 * container name, side by side in one run: trellis (127.0.0.11), dnsmasq serving the same name from
 * a hosts file inside the lab, and Docker's embedded DNS when dockerd can be started in a lab host
 * namespace. A script, not a test: it prints what it measured and never fails on timing.
 *
 *   node dist/bench/dns.js [--rounds N] [--seconds N] [--outstanding N] [--no-docker] [--json]
 *
 * The servers take turns: `--rounds` (default 5) rounds of one `--seconds` (default 4) dnsperf run
 * per server, so load from elsewhere on the machine falls on all of them alike; QPS and mean latency
 * (dnsperf's summary) are the medians over the rounds, with the QPS range. Then one run per server
 * with `-v` gives every query's latency, for p50/p99. Nothing leaves the lab: the daemon's
 * --dns-upstream is a lab address and every query is for a local name.
 */
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, type LabDaemon } from "../test/helpers/lab.js";
import { errorMessage, run } from "../test/helpers/proc.js";
import { BenchDockerd, DockerUnavailable } from "./lib/dockerd.js";
import { quantile } from "./lib/stats.js";

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Options {
  rounds: number;
  seconds: number;
  outstanding: number;
  noDocker: boolean;
  json: boolean;
}

const USAGE =
  "usage: node dist/bench/dns.js [--rounds N (5)] [--seconds N (4)] [--outstanding N (10)] [--no-docker] [--json]";

function parseOptions(argv: string[]): Options {
  const o: Options = { rounds: 5, seconds: 4, outstanding: 10, noDocker: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${a} needs a positive integer`);
      return n;
    };
    if (a === "--rounds") o.rounds = num();
    else if (a === "--seconds") o.seconds = num();
    else if (a === "--outstanding") o.outstanding = num();
    else if (a === "--no-docker") o.noDocker = true;
    else if (a === "--json") o.json = true;
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return o;
}

interface DnsperfResult {
  /** median over the rounds */
  qps: number;
  qpsMin: number;
  qpsMax: number;
  /** seconds: median of the rounds' dnsperf "Average Latency" */
  meanS: number;
  /** seconds, from the per-query latencies of the -v run */
  p50S: number;
  p99S: number;
  /** lowest share of queries answered in any run */
  completedPct: number;
}

interface Summary {
  qps: number;
  meanS: number;
  completedPct: number;
}

/** dnsperf's summary: "Queries per second:", "Average Latency (s):", "Queries completed:". */
function parseSummary(text: string): Summary {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`dnsperf output without ${re}: ${text.slice(-400)}`);
    return Number(m[1]);
  };
  return {
    qps: num(/Queries per second:\s+([0-9.]+)/),
    meanS: num(/Average Latency \(s\):\s+([0-9.]+)/),
    completedPct: num(/Queries completed:\s+\d+ \(([0-9.]+)%\)/),
  };
}

/** dnsperf -v prints a line per answer ending with its latency in seconds ("> NOERROR web A 0.000091"). */
function parseLatencies(verbose: string): number[] {
  return verbose
    .split("\n")
    .filter((l) => l.startsWith("> "))
    .map((l) => Number(l.trim().split(/\s+/).pop()))
    .filter((x) => Number.isFinite(x))
    .sort((a, b) => a - b);
}

const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

/** Docker: an offline busybox image, a user-defined bridge network, `web` and `client` on it; the
 * client's PID (its /proc/PID/ns/net is where dnsperf runs). */
async function dockerDnsTarget(engine: BenchDockerd, workDir: string): Promise<number> {
  const rootfs = join(workDir, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
  for (const applet of ["sh", "sleep"]) symlinkSync("busybox", join(rootfs, "bin", applet));
  const tarball = join(workDir, "busybox.tar");
  const tar = await run(["tar", "-C", rootfs, "-cf", tarball, "."]);
  if (tar.code !== 0) throw new Error(`tar: ${tar.stderr.trim()}`);
  await engine.docker(["import", tarball, "bbdns:latest"]);
  await engine.docker(["network", "create", "--subnet", "10.91.0.0/24", "dnsnet"]);
  for (const name of ["web", "client"]) {
    await engine.docker([
      "run",
      "-d",
      "--network",
      "dnsnet",
      "--name",
      name,
      "bbdns:latest",
      "sleep",
      "1000000",
    ]);
  }
  const pid = Number((await engine.docker(["inspect", "-f", "{{.State.Pid}}", "client"])).stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error("docker inspect gave no PID for client");
  return pid;
}

interface Row {
  server: string;
  result?: DnsperfResult;
  note?: string;
}

/** dnsperf inside `netns` (a /run/netns name or a /proc/PID/ns/net path) against server:53. */
async function dnsperf(opts: Options, netns: string, server: string, queries: string, verbose: boolean) {
  const enter = netns.startsWith("/") ? ["nsenter", `--net=${netns}`, "--"] : ["ip", "netns", "exec", netns];
  const seconds = opts.seconds;
  const argv = [
    ...enter,
    "dnsperf",
    "-s",
    server,
    "-d",
    queries,
    "-q",
    String(opts.outstanding),
    "-l",
    String(seconds),
  ];
  if (verbose) argv.push("-v");
  const r = await run(argv, { timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0)
    throw new Error(`dnsperf against ${server} exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return r.stdout;
}

interface Target {
  label: string;
  /** a /run/netns name or a /proc/PID/ns/net path */
  netns: string;
  server: string;
}

/** Interleaved rounds of throughput runs, then one -v run each for the latency distribution. */
async function measureAll(opts: Options, targets: Target[], queries: string): Promise<Row[]> {
  const runs = new Map<Target, Summary[]>(targets.map((t) => [t, []]));
  for (const t of targets) await dnsperf({ ...opts, seconds: 1 }, t.netns, t.server, queries, false); // warm-up
  for (let round = 1; round <= opts.rounds; round++) {
    say(`round ${round}/${opts.rounds}: ${opts.seconds} s per server`);
    for (const t of targets) {
      runs.get(t)!.push(parseSummary(await dnsperf(opts, t.netns, t.server, queries, false)));
    }
  }
  const rows: Row[] = [];
  for (const t of targets) {
    say(`${t.label}: latency run with -v`);
    const latencies = parseLatencies(await dnsperf(opts, t.netns, t.server, queries, true));
    const rs = runs.get(t)!;
    const qps = rs.map((r) => r.qps);
    rows.push({
      server: t.label,
      result: {
        qps: median(qps),
        qpsMin: Math.min(...qps),
        qpsMax: Math.max(...qps),
        meanS: median(rs.map((r) => r.meanS)),
        p50S: quantile(latencies, 0.5),
        p99S: quantile(latencies, 0.99),
        completedPct: Math.min(...rs.map((r) => r.completedPct)),
      },
    });
  }
  return rows;
}

/** trellis: a daemon in lab host h1, a network, the answering container and the asking one. */
async function trellisSetup(lab: Lab): Promise<{ daemon: LabDaemon; client: string }> {
  const host = await lab.addHost("h1");
  const quiet = await lab.addHost("up"); // nothing listens: forwarding is not exercised here
  const daemon = await lab.startDaemon(host, {
    args: ["--dns-upstream", `${quiet.underlayIp}:53`, "--log-level", "info"],
  });
  await daemon.cli(["network", "create", "--subnet", "10.90.0.0/24", "benchdns"]);
  const web = await lab.addContainer("web");
  const client = await lab.addContainer("client");
  await daemon.cli(["network", "connect", "--name", "web", "--ip", "10.90.0.10", "benchdns", web]);
  await daemon.cli(["network", "connect", "--name", "client", "benchdns", client]);
  return { daemon, client };
}

/** dnsmasq in the asking container's namespace on 127.0.0.53, the name from a hosts file. */
function startDnsmasq(lab: Lab, client: string): void {
  const hosts = join(lab.dir, "dnsmasq.hosts");
  writeFileSync(hosts, "10.90.0.10 web\n");
  lab.spawnIn(client, [
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    `--addn-hosts=${hosts}`,
    "--listen-address=127.0.0.53",
    "--bind-interfaces",
    "--user=root",
    "--pid-file=",
    "--log-facility=-",
  ]);
}

/** Docker's side, or the reason there is none ("unavailable: ..."). */
async function dockerTarget(opts: Options, lab: Lab, engines: BenchDockerd[]): Promise<Target | string> {
  if (opts.noDocker) return "skipped (--no-docker)";
  try {
    const host = await lab.addHost("dk");
    say(`starting dockerd in ${host.ns}`);
    const engine = await BenchDockerd.start({
      hostNs: host.ns,
      dir: join(lab.dir, "docker"),
      cgroupName: `trellis-bench-dns-${lab.prefix}`,
    });
    engines.push(engine);
    const pid = await dockerDnsTarget(engine, join(lab.dir, "docker-image"));
    return { label: "docker embedded DNS", netns: `/proc/${pid}/ns/net`, server: "127.0.0.11" };
  } catch (err) {
    return `unavailable: ${err instanceof DockerUnavailable ? err.message : errorMessage(err)}`;
  }
}

const us = (s: number | undefined) => (s === undefined || !Number.isFinite(s) ? "—" : (s * 1e6).toFixed(0));

function render(rows: Row[]): string {
  const trellis = rows[0]?.result;
  const lines = [
    "server                 QPS (median, range)       mean µs   p50 µs   p99 µs   answered   trellis QPS ÷ this",
    ...rows.map((r) => {
      if (!r.result) return `${r.server.padEnd(22)}  ${r.note ?? ""}`;
      const x = r.result;
      const ratio = trellis ? (trellis.qps / x.qps).toFixed(2) : "—";
      return [
        r.server.padEnd(22),
        `${x.qps.toFixed(0)} (${x.qpsMin.toFixed(0)}–${x.qpsMax.toFixed(0)})`.padEnd(24),
        us(x.meanS).padStart(10),
        us(x.p50S).padStart(8),
        us(x.p99S).padStart(8),
        `${x.completedPct.toFixed(1)}%`.padStart(10),
        ratio.padStart(10),
      ].join(" ");
    }),
  ];
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  const lab = await Lab.create();
  const engines: BenchDockerd[] = [];
  const cleanup = async () => {
    for (const e of engines)
      await e.docker(["rm", "-f", "web", "client"], { allowFail: true }).catch(() => {});
    for (const e of engines) for (const p of await e.stop()) say(`docker cleanup: ${p}`);
    await lab.destroy();
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const rows: Row[] = [];
  try {
    const queries = join(lab.dir, "queries.txt");
    writeFileSync(queries, "web A\n");
    const { client } = await trellisSetup(lab);
    startDnsmasq(lab, client);
    const targets: Target[] = [
      { label: "trellis (127.0.0.11)", netns: client, server: "127.0.0.11" },
      { label: "dnsmasq (hosts file)", netns: client, server: "127.0.0.53" },
    ];
    const docker = await dockerTarget(opts, lab, engines);
    if (typeof docker !== "string") targets.push(docker);
    rows.push(...(await measureAll(opts, targets, queries)));
    if (typeof docker === "string") rows.push({ server: "docker", note: docker });
  } finally {
    await cleanup();
  }
  const table = render(rows);
  const header = `dnsperf -q ${opts.outstanding}, ${opts.rounds} interleaved rounds of ${opts.seconds} s per server, query "web A" from inside a container namespace`;
  if (opts.json) {
    process.stderr.write(`${header}\n${table}\n`);
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else process.stdout.write(`${header}\n${table}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(
      `dns bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
