/**
 * Services benchmark (issue 5): trellis's nftables VIP table next to a kube-proxy-style iptables
 * ruleset (a chain per service and per endpoint, `statistic` random selection), in the same run.
 *   1. rule programming: N services × B backends from nothing, and one service change at N, both through
 *      lib/ingress's ServiceProgrammer with a process per transaction (nftApply) and with a long-lived
 *      nft (lib/kernel/nft-session.ts), each in its own namespace; the full programming once more with
 *      the backends on the VIP's own port, as in the daemon's units (address-only backend maps);
 *   2. per-connection cost: new TCP connections/s through one VIP at a small and a large N.
 * A script, not a test: it prints what it measured and never fails on timing. Needs root.
 *
 *   node dist/bench/services.js [--services 10000] [--small 100] [--backends 5] [--rounds 3]
 *     [--changes 100] [--ipchanges 20] [--pairs 8] [--seconds 1] [--procs 2] [--conc 32]
 *     [--iptables legacy|nft]
 *
 * Default --iptables: legacy when iptables-legacy-restore exists, else nft. The iptables side is
 * kube-proxy's iptables mode: KUBE-SERVICES with one rule per VIP (scanned in order; the measured
 * VIP is the middle one), a KUBE-SVC chain per service choosing an endpoint with `statistic`, a
 * KUBE-SEP chain per endpoint (masquerade mark for hairpin, DNAT). Its "one change" is the smallest
 * restore kube-proxy's partial sync could do: `--noflush` with that service's chains only.
 *
 * Everything runs in lab namespaces, one "router" per system and size: a host namespace holding the
 * rules, a client namespace (10.78.0.2, the load generator) and a backend namespace (10.79.0.11-15,
 * one TCP server on :8080), all routed point to point, nothing in the root namespace.
 */
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Service } from "../lib/ingress/model.js";
import { type ProgramResult, ServiceProgrammer } from "../lib/ingress/programmer.js";
import { nftApply, nftVersion } from "../lib/kernel/nft.js";
import { createNftSession } from "../lib/kernel/nft-session.js";
import { Lab, waitFor } from "../test/helpers/lab.js";
import { cleanEnv } from "../test/helpers/proc.js";
import { fmtMs as fmtStat, quantile, summarize } from "./lib/stats.js";

const SELF = fileURLToPath(import.meta.url);
const PORT = 8080;
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const msSince = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

interface Options {
  services: number;
  small: number;
  backends: number;
  /** Full programming runs per ruleset. */
  rounds: number;
  /** Samples of each kind of one-service change, per trellis applier. */
  changes: number;
  /** Samples of each iptables change (each restore of the big ruleset takes about half a second). */
  ipchanges: number;
  /** Paired (small, large) measurements per system for the per-connection figures. */
  pairs: number;
  /** Seconds per throughput measurement. */
  seconds: number;
  conc: number;
  procs: number;
  iptables: "legacy" | "nft";
}

/** The issue compares against iptables-legacy where there is one; iptables-nft otherwise. */
function hasBinary(name: string): boolean {
  return ["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"].some((dir) => {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function options(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      [
        "services",
        "small",
        "backends",
        "rounds",
        "changes",
        "ipchanges",
        "pairs",
        "seconds",
        "conc",
        "procs",
        "iptables",
      ].map((k) => [k, { type: "string" as const }]),
    ),
  });
  const int = (k: string, d: number) => {
    const n = v[k] === undefined ? d : Number(v[k]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive integer`);
    return n;
  };
  const iptables =
    (v["iptables"] as string | undefined) ?? (hasBinary("iptables-legacy-restore") ? "legacy" : "nft");
  if (iptables !== "legacy" && iptables !== "nft") throw new Error("--iptables must be legacy or nft");
  return {
    services: int("services", 10_000),
    small: int("small", 100),
    backends: int("backends", 5),
    rounds: int("rounds", 3),
    changes: int("changes", 100),
    ipchanges: int("ipchanges", 20),
    pairs: int("pairs", 8),
    seconds: int("seconds", 1),
    conc: int("conc", 32),
    procs: int("procs", 2),
    iptables,
  };
}

// --- the two rulesets ------------------------------------------------------------------------------

/** N services; the one in the middle (the measured VIP) has the real backends, the others fake ones.
 * The VIPs answer on port 80 and the backends listen on PORT (dnat rewrites the port), unless `vipPort`
 * says otherwise: the daemon's units have the backends on the VIP's own port. */
function benchServices(
  count: number,
  backends: number,
  vipPort = 80,
): { services: Service[]; measured: Service } {
  const mid = Math.floor(count / 2);
  const services = Array.from(
    { length: count },
    (_, i): Service => ({
      id: i,
      name: `svc${i}`,
      vips: [{ ip: `10.96.${i >> 8}.${i & 255}`, port: vipPort, proto: "tcp" }],
      backends: Array.from({ length: backends }, (_, j) =>
        i === mid
          ? { ip: `10.79.0.${11 + j}`, port: PORT }
          : {
              ip: `10.${100 + ((i * backends + j) >> 16)}.${((i * backends + j) >> 8) & 255}.${(i * backends + j) & 255}`,
              port: PORT,
            },
      ),
      mesh: [],
      affinity: "none",
    }),
  );
  return { services, measured: services[mid]! };
}

/** kube-proxy's iptables mode for one service: its chain with `statistic` picks, a chain per endpoint. */
function kubeServiceChains(s: Service): { decl: string[]; rules: string[] } {
  const svc = `KUBE-SVC-${s.id}`;
  const decl = [`:${svc} - [0:0]`];
  const rules: string[] = [];
  s.backends.forEach((b, j) => {
    const sep = `KUBE-SEP-${s.id}-${j}`;
    decl.push(`:${sep} - [0:0]`);
    const left = s.backends.length - j;
    const pick = left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(11)} ` : "";
    rules.push(`-A ${svc} ${pick}-j ${sep}`);
    rules.push(`-A ${sep} -s ${b.ip}/32 -j KUBE-MARK-MASQ`);
    rules.push(`-A ${sep} -p tcp -m tcp -j DNAT --to-destination ${b.ip}:${b.port}`);
  });
  return { decl, rules };
}

/** The whole nat table, as kube-proxy restores it: KUBE-SERVICES scans every VIP in turn. */
function kubeTable(services: readonly Service[]): string {
  const decl = [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]"];
  const rules = [
    "-A PREROUTING -j KUBE-SERVICES",
    "-A OUTPUT -j KUBE-SERVICES",
    "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
  ];
  for (const s of services) {
    const v = s.vips[0]!;
    rules.push(`-A KUBE-SERVICES -d ${v.ip}/32 -p tcp -m tcp --dport ${v.port} -j KUBE-SVC-${s.id}`);
    const c = kubeServiceChains(s);
    decl.push(...c.decl);
    rules.push(...c.rules);
  }
  return `*nat\n${decl.join("\n")}\n${rules.join("\n")}\nCOMMIT\n`;
}

/** The smallest iptables change for one service, as kube-proxy's partial sync writes it: with
 * --noflush, declared chains are flushed and refilled; endpoint chains that went away are deleted. */
function kubeChange(before: Service, after: Service): string {
  const c = kubeServiceChains(after);
  const gone = before.backends
    .slice(after.backends.length)
    .map((_, k) => `KUBE-SEP-${after.id}-${after.backends.length + k}`);
  const decl = [...c.decl, ...gone.map((g) => `:${g} - [0:0]`)];
  const rules = [...c.rules, ...gone.map((g) => `-X ${g}`)];
  return `*nat\n${decl.join("\n")}\n${rules.join("\n")}\nCOMMIT\n`;
}

// --- lab plumbing ----------------------------------------------------------------------------------

interface Router {
  label: string;
  ns: string;
  client: string;
}

/** Runs argv inside ns with `input` on stdin; resolves with ms from spawn to exit, throws on failure. */
function timedIn(ns: string, argv: string[], input = ""): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("ip", ["netns", "exec", ns, ...argv], {
      env: cleanEnv(),
      stdio: ["pipe", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = msSince(t0);
      if (code === 0) resolve(ms);
      else reject(new Error(`${argv.join(" ")} in ${ns} exited ${code}: ${stderr.trim().slice(0, 500)}`));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

/** host ns with a client (10.78.0.2) and a backend namespace (10.79.0.11-15) on point-to-point veths. */
async function buildRouter(lab: Lab, label: string, backends: number): Promise<Router> {
  const host = await lab.addContainer(label);
  const client = await lab.addContainer(`${label}-c`);
  const backend = await lab.addContainer(`${label}-b`);
  const sh = async (ns: string, cmds: string[]) => {
    for (const cmd of cmds) await lab.exec(ns, cmd.split(" "));
  };
  await sh(host, [
    `ip link add cl type veth peer name eth0 netns ${client}`,
    `ip link add be type veth peer name eth0 netns ${backend}`,
    "ip addr add 10.78.0.1/30 dev cl",
    "ip addr add 10.79.0.1/24 dev be",
    "ip link set cl up",
    "ip link set be up",
    "sysctl -qw net.ipv4.ip_forward=1",
    // Short conntrack timeouts: the load generator opens tens of thousands of flows per run.
    "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_close=1 net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
  ]);
  await sh(client, [
    "ip addr add 10.78.0.2/30 dev eth0",
    "ip link set eth0 up",
    "ip route add default via 10.78.0.1",
    "sysctl -qw net.ipv4.ip_local_port_range=1024\t65000",
  ]);
  const addrs = Array.from({ length: backends }, (_, j) => `ip addr add 10.79.0.${11 + j}/24 dev eth0`);
  await sh(backend, [...addrs, "ip link set eth0 up", "ip route add default via 10.79.0.1"]);
  const server = lab.spawnIn(backend, [process.execPath, SELF, "--server"]);
  await waitFor(() => lab.output(server).includes("ready"), {
    timeoutMs: 10_000,
    what: `server in ${backend}`,
  });
  return { label, ns: host, client };
}

// --- the load generator and the backend server (modes of this same script) -------------------------

async function serve(): Promise<void> {
  const net = await import("node:net");
  // One byte per connection, so the generator waits for the server and the accept queue never
  // overflows (an overflow drops SYNs, and a 1 s retransmit would swamp the figure).
  net
    .createServer((s) => {
      s.on("error", () => {});
      s.end("x");
    })
    .listen({ port: PORT, host: "0.0.0.0", backlog: 4096 }, () => console.log("ready"));
}

/**
 * Opens connections to ip:port for `seconds`, `conc` at a time, each reset once the server's byte
 * arrived; prints how many, and the median time from connect() to established (µs): the SYN and
 * SYN-ACK are the packets that cross the NAT rules.
 */
async function loadgen(ip: string, port: number, seconds: number, conc: number): Promise<void> {
  const net = await import("node:net");
  const deadline = Date.now() + seconds * 1000;
  let errors = 0;
  const latencies: number[] = [];
  const one = () =>
    new Promise<void>((done) => {
      const t0 = process.hrtime.bigint();
      const s = net.connect(port, ip);
      s.on("connect", () => latencies.push(Number(process.hrtime.bigint() - t0) / 1e3));
      s.on("data", () => {
        s.resetAndDestroy(); // RST: no TIME_WAIT on either side, the flow's conntrack entry closes
        done();
      });
      s.on("error", () => {
        errors++;
        done();
      });
    });
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  const p50us = summarize(latencies).p50;
  console.log(JSON.stringify({ ok: latencies.length, errors, seconds: msSince(t0) / 1000, p50us }));
}

interface Load {
  /** New connections per second, all generators together. */
  rate: number;
  /** Median connect latency (µs), of the first generator. */
  p50us: number;
}

/** Runs `procs` generators with `conc` connections in flight each, from the router's client to vip. */
async function load(
  lab: Lab,
  r: Router,
  vip: string,
  o: Options,
  procs = o.procs,
  conc = o.conc,
): Promise<Load> {
  const argv = [process.execPath, SELF, "--loadgen", vip, "80", String(o.seconds), String(conc)];
  const outs = await Promise.all(
    Array.from({ length: procs }, () => lab.exec(r.client, argv, { timeoutMs: o.seconds * 1000 + 30_000 })),
  );
  const res = outs.map(
    (out) => JSON.parse(out.stdout) as { ok: number; errors: number; seconds: number; p50us: number },
  );
  for (const x of res)
    if (x.errors > x.ok / 100) throw new Error(`${r.label}: ${x.errors} failed connections of ${x.ok}`);
  return { rate: res.reduce((acc, x) => acc + x.ok / x.seconds, 0), p50us: res[0]!.p50us };
}

// --- rule programming ------------------------------------------------------------------------------

/**
 * The two ways trellis can apply its transactions, each programming its own namespace through its own
 * ServiceProgrammer: a process per transaction (nftApply), or one long-lived nft per namespace
 * (lib/kernel/nft-session.ts). nft's exit closes its netlink socket, and when a transaction deleted
 * anything the kernel makes that close wait for an RCU grace period: the one-shot process pays that
 * and its start every time, the session never.
 */
const APPLIERS = ["nft -f", "session"] as const;
type Applier = (typeof APPLIERS)[number];
const CHANGES = ["backend joins", "backend leaves", "service added", "service removed"] as const;

/** Alternates which applier goes first, so neither always runs right after the other. */
const inTurn = (i: number): readonly Applier[] => (i % 2 ? [...APPLIERS].reverse() : APPLIERS);

/** Appends a sample to the named series. */
function record(series: Record<string, number[]>, name: string, ms: number): void {
  const list = series[name];
  if (list) list.push(ms);
  else series[name] = [ms];
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return msSince(t0);
}

interface Samples {
  full: number[];
  changes: Record<string, number[]>;
}

interface Programming {
  /** The JavaScript part of a full programming: sync() into an empty programmer whose apply does
   * nothing (validation, copies, render, bookkeeping). */
  js: number[];
  trellis: Record<Applier, Samples>;
  /** The session's first transaction (an empty table's delete), nft's start included. */
  sessionStart: number[];
  ipFull: number[];
  ipChanges: Record<string, number[]>;
}

const emptyProgramming = (): Programming => ({
  js: [],
  trellis: { "nft -f": { full: [], changes: {} }, session: { full: [], changes: {} } },
  sessionStart: [],
  ipFull: [],
  ipChanges: {},
});

/** One service grown by a backend, and a service that does not exist yet (for add/remove). */
function changeSubjects(services: readonly Service[], backends: number) {
  const base = services[1]!;
  const grown: Service = { ...base, backends: [...base.backends, { ip: "10.250.0.1", port: PORT }] };
  const extra: Service = {
    id: services.length + 1,
    name: "extra",
    vips: [{ ip: "10.200.0.1", port: 80, proto: "tcp" }],
    backends: Array.from({ length: backends }, (_, j) => ({ ip: `10.201.0.${j + 1}`, port: PORT })),
    mesh: [],
    affinity: "none",
  };
  return { base, grown, extra };
}

/** A change must be the element diff it claims to be, not a full resync after a failed diff. */
function expectMode(r: ProgramResult, mode: ProgramResult["mode"], what: string): void {
  if (r.mode !== mode || r.recovered) throw new Error(`${what}: expected ${mode}, got ${JSON.stringify(r)}`);
}

/** netns: the namespace each applier programs (paths under /run/netns). */
async function programTrellis(
  netns: Record<Applier, string>,
  services: Service[],
  o: Options,
  p: Programming,
): Promise<void> {
  const session = createNftSession({ netns: netns.session, timeoutMs: 300_000 });
  const oneShot = (script: string) => nftApply(script, { netns: netns["nft -f"], timeoutMs: 300_000 });
  const programmers: Record<Applier, ServiceProgrammer> = {
    "nft -f": new ServiceProgrammer({ nftApply: oneShot }),
    session: new ServiceProgrammer({ nftApply: (script) => session.apply(script) }),
  };
  try {
    p.sessionStart.push(await timeIt(() => programmers.session.clear()));
    for (let i = 0; i < o.rounds; i++) {
      const dry = new ServiceProgrammer({ nftApply: async () => {} });
      p.js.push(await timeIt(() => dry.sync(services)));
      for (const a of APPLIERS) await programmers[a].clear();
      await sleep(1000); // let the kernel free the old tables outside the timing
      for (const a of inTurn(i)) {
        let r: ProgramResult | undefined;
        p.trellis[a].full.push(await timeIt(async () => (r = await programmers[a].sync(services))));
        expectMode(r!, "full", `${a}: full programming`);
      }
    }
    const { base, grown, extra } = changeSubjects(services, o.backends);
    const steps: Array<[(typeof CHANGES)[number], (pr: ServiceProgrammer) => Promise<ProgramResult>]> = [
      ["backend joins", (pr) => pr.upsert(grown)],
      ["backend leaves", (pr) => pr.upsert(base)],
      ["service added", (pr) => pr.upsert(extra)],
      ["service removed", (pr) => pr.remove(extra.id)],
    ];
    for (let i = 0; i < o.changes; i++) {
      for (const [name, step] of steps) {
        for (const a of inTurn(i)) {
          let r: ProgramResult | undefined;
          record(p.trellis[a].changes, name, await timeIt(async () => (r = await step(programmers[a]))));
          expectMode(r!, "diff", `${a}: ${name}`);
        }
      }
    }
  } finally {
    await session.close();
  }
}

async function programIptables(r: Router, services: Service[], o: Options, p: Programming): Promise<void> {
  const restore = `iptables-${o.iptables}-restore`;
  const table = kubeTable(services);
  for (let i = 0; i < o.rounds; i++) {
    await timedIn(r.ns, [restore, "-w", "60"], "*nat\nCOMMIT\n");
    await sleep(1000);
    p.ipFull.push(await timedIn(r.ns, [restore, "-w", "60"], table));
  }
  const { base, grown } = changeSubjects(services, o.backends);
  for (let i = 0; i < o.ipchanges; i++) {
    const joins = await timedIn(r.ns, [restore, "-w", "60", "--noflush"], kubeChange(base, grown));
    record(p.ipChanges, "backend joins", joins);
    const leaves = await timedIn(r.ns, [restore, "-w", "60", "--noflush"], kubeChange(grown, base));
    record(p.ipChanges, "backend leaves", leaves);
  }
}

// --- report ----------------------------------------------------------------------------------------

const p50 = (xs: readonly number[]) => summarize(xs).p50;
const row = (cells: string[], widths: number[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 12)).join("  ");

/** "p50 / p90 / p99" in ms, three significant digits; empty for no samples. */
function spread(xs: readonly number[] | undefined): string {
  if (!xs || xs.length === 0) return "";
  const sorted = [...xs].sort((a, b) => a - b);
  return [0.5, 0.9, 0.99].map((q) => fmtStat(quantile(sorted, q))).join(" / ");
}

function report(
  o: Options,
  runs: Record<"big" | "small" | "samePort", Programming>,
  perConn: PerConnection,
): string {
  const { big: p, small } = runs;
  const ipt = `iptables-${o.iptables}`;
  const w = [33, 22, 22, 22, 8];
  const t = p.trellis;
  const lines = [
    "",
    `1. Rule programming: ${o.services} services × ${o.backends} backends, through ServiceProgrammer`,
    `   ms, p50 / p90 / p99 of: full ${o.rounds} runs each; trellis changes ${o.changes} each, iptables ${o.ipchanges}`,
    row(["", "trellis nft -f", "trellis session", `${ipt}-restore`, "goal"], w),
    row(
      [
        "full programming (from empty)",
        spread(t["nft -f"].full),
        spread(t.session.full),
        spread(p.ipFull),
        "≤ 500",
      ],
      w,
    ),
    row([`  of which JS (sync, no-op apply)`, spread(p.js), "", "", ""], w),
    row(
      [
        "  backends on the VIP's port",
        spread(runs.samePort.trellis["nft -f"].full),
        spread(runs.samePort.trellis.session.full),
        "",
        "≤ 500",
      ],
      w,
    ),
  ];
  for (const name of CHANGES) {
    const cells = [
      `one change: ${name}`,
      spread(t["nft -f"].changes[name]),
      spread(t.session.changes[name]),
      spread(p.ipChanges[name]),
      "≤ 10",
    ];
    lines.push(row(cells, w));
  }
  const st = small.trellis;
  lines.push(
    row(
      [
        `(at ${o.small} services: full)`,
        spread(st["nft -f"].full),
        spread(st.session.full),
        spread(small.ipFull),
        "",
      ],
      w,
    ),
    `  session: one long-lived nft per namespace (lib/kernel/nft-session.ts); its first transaction, nft's start included: ${[...p.sessionStart, ...small.sessionStart].map(fmtStat).join(", ")} ms`,
    "",
    `2. New TCP connections through one VIP: ${o.pairs} pairs (small, large table back to back), medians`,
    `   throughput: ${o.procs} generators × ${o.conc} in flight for ${o.seconds} s; latency: one serial generator`,
    row(["", `${o.small} services`, `${o.services} services`, "change (paired)", "IQR of change"], w),
  );
  const pct = (x: number) => `${((x - 1) * 100).toFixed(1)} %`;
  const us = (x: number) => `${x.toFixed(0)} µs`;
  for (const [sys, e] of perConn) {
    const ratios = [...e.ratio].sort((a, b) => a - b);
    const iqr = `${pct(quantile(ratios, 0.25))} .. ${pct(quantile(ratios, 0.75))}`;
    const [small, big] = [Math.round(p50(e.small.rate)), Math.round(p50(e.big.rate))];
    lines.push(row([`${sys} connections/s`, `${small}`, `${big}`, pct(p50(ratios)), iqr], w));
  }
  for (const [sys, e] of perConn) {
    const d = p50(e.latencyDelta);
    const cells = [
      `${sys} connect p50`,
      us(p50(e.small.p50us)),
      us(p50(e.big.p50us)),
      `${d >= 0 ? "+" : ""}${us(d)}`,
    ];
    lines.push(row(cells, w));
  }
  lines.push("  goal: trellis flat (within 10 %) from the small to the large table");
  return lines.join("\n");
}

// --- per-connection cost -------------------------------------------------------------------------

interface Series {
  rate: number[];
  p50us: number[];
}
type PerConnection = Map<string, { small: Series; big: Series; ratio: number[]; latencyDelta: number[] }>;

/**
 * Paired design against a shared, noisy machine: each pair measures one system's small and large
 * table back to back (order alternating), and the figure that matters is the ratio within the pair.
 * Throughput with `procs` × `conc` connections in flight; latency with one serial generator.
 */
async function measureConnections(
  lab: Lab,
  routers: Record<string, Router>,
  sets: Record<"big" | "small", { measured: Service }>,
  o: Options,
): Promise<PerConnection> {
  const systems = [...new Set(Object.keys(routers).map((n) => n.replace(/-(big|small)$/, "")))];
  const vip = (size: "big" | "small") => sets[size].measured.vips[0]!.ip;
  for (const name of Object.keys(routers)) {
    // warm-up, not counted: the first connections pay for JIT, ARP and conntrack table growth
    await load(lab, routers[name]!, vip(name.endsWith("big") ? "big" : "small"), o);
  }
  const out: PerConnection = new Map();
  for (let pair = 0; pair < o.pairs; pair++) {
    for (let k = 0; k < systems.length; k++) {
      const sys = systems[(k + pair) % systems.length]!;
      const entry = out.get(sys) ?? {
        small: { rate: [], p50us: [] },
        big: { rate: [], p50us: [] },
        ratio: [],
        latencyDelta: [],
      };
      out.set(sys, entry);
      const got: Partial<Record<"big" | "small", { rate: number; p50us: number }>> = {};
      const order: Array<"big" | "small"> = pair % 2 ? ["small", "big"] : ["big", "small"];
      for (const size of order) {
        const router = routers[`${sys}-${size}`]!;
        const rate = (await load(lab, router, vip(size), o)).rate;
        const p50us = (await load(lab, router, vip(size), o, 1, 1)).p50us;
        got[size] = { rate, p50us };
        entry[size].rate.push(rate);
        entry[size].p50us.push(p50us);
      }
      entry.ratio.push(got.big!.rate / got.small!.rate);
      entry.latencyDelta.push(got.big!.p50us - got.small!.p50us);
      say(
        `pair ${pair + 1}: ${sys} ${Math.round(got.small!.rate)}/s → ${Math.round(got.big!.rate)}/s, serial connect p50 ${got.small!.p50us.toFixed(0)} → ${got.big!.p50us.toFixed(0)} µs`,
      );
    }
  }
  return out;
}

// --- main ------------------------------------------------------------------------------------------

async function main(o: Options): Promise<void> {
  const load = () =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(" ");
  say(`kernel ${release()}, ${cpus().length} CPUs, load ${load()}`);
  say(`${await nftVersion()}; iptables-${o.iptables}-restore (kube-proxy-style ruleset)`);
  const lab = await Lab.create();
  const stop = () => void lab.destroy().then(() => process.exit(130));
  process.once("SIGINT", stop).once("SIGTERM", stop);
  try {
    const big = benchServices(o.services, o.backends);
    const small = benchServices(o.small, o.backends);
    const ipt = `iptables-${o.iptables}`;
    const routers = {
      "trellis-small": await buildRouter(lab, "ts", o.backends),
      "trellis-big": await buildRouter(lab, "tb", o.backends),
      [`${ipt}-small`]: await buildRouter(lab, "is", o.backends),
      [`${ipt}-big`]: await buildRouter(lab, "ib", o.backends),
    };
    // the session's table lives in a namespace of its own; the routers' tables serve the connections
    const sessionNs = async (name: string) => `/run/netns/${await lab.addContainer(name)}`;
    const nsOf = async (r: Router, name: string): Promise<Record<Applier, string>> => ({
      "nft -f": `/run/netns/${r.ns}`,
      session: await sessionNs(name),
    });
    const pBig = emptyProgramming();
    const pSmall = emptyProgramming();
    say(`programming ${o.services} services into trellis's table and the ${ipt} ruleset`);
    const smallRuns = { ...o, changes: 1, ipchanges: 1 }; // only its full programming is reported
    await programTrellis(await nsOf(routers["trellis-small"], "tss"), small.services, smallRuns, pSmall);
    await programIptables(routers[`${ipt}-small`]!, small.services, smallRuns, pSmall);
    await programTrellis(await nsOf(routers["trellis-big"], "tbs"), big.services, o, pBig);
    await programIptables(routers[`${ipt}-big`]!, big.services, o, pBig);
    // the same size with the backends on the VIP's port, full programming only, in namespaces of its own
    const same = benchServices(o.services, o.backends, PORT).services;
    const pSame = emptyProgramming();
    const sameNs = { "nft -f": await sessionNs("tsp1"), session: await sessionNs("tsp2") };
    await programTrellis(sameNs, same, { ...o, changes: 0 }, pSame);
    const perConn = await measureConnections(lab, routers, { big, small }, o);
    console.log(report(o, { big: pBig, small: pSmall, samePort: pSame }, perConn));
    say(`load at end ${load()}`);
  } finally {
    await lab.destroy();
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === "--server") await serve();
else if (mode === "--loadgen") await loadgen(rest[0]!, Number(rest[1]), Number(rest[2]), Number(rest[3]));
else await main(options(process.argv.slice(2)));
