/**
 * Attach benchmark: how long trellis takes to connect and disconnect a container (netns) on a bridge
 * network, at the Engine API and through the CLI, side by side with a real Docker engine doing the
 * same in the same run; then wall time and daemon memory for many containers on one network.
 * A script, not a test: it prints what it measured and never fails on timing. See bench/README.md.
 *
 *   node dist/bench/attach.js [--runs N] [--no-docker] [--skip-1000] [--json]
 */
import { cpus, loadavg, release } from "node:os";
import { join } from "node:path";
import { Lab, type LabDaemon } from "../test/helpers/lab.js";
import { errorMessage } from "../test/helpers/proc.js";
import { BenchDockerd, cgroupMode, DockerUnavailable } from "./lib/dockerd.js";
import { measureCliFloor, measurePoint } from "./lib/latency.js";
import { type BenchOptions, parseOptions, USAGE } from "./lib/options.js";
import { type BenchReport, type DockerStatus, renderReport, reportJson } from "./lib/report.js";
import { measureScale } from "./lib/scale.js";
import { buildCommit, memoryOf } from "./lib/sys.js";
import {
  type AttachTarget,
  BENCH_NETWORK,
  dockerTarget,
  removeDockerTarget,
  trellisTarget,
} from "./lib/targets.js";

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

/** Everything the run started, stopped in the right order (Docker before the lab) exactly once. */
class Cleanup {
  docker: BenchDockerd | undefined;
  dockerHasTarget = false;
  targets: AttachTarget[] = [];
  private done: Promise<string[]> | undefined;

  constructor(private readonly lab: Lab) {}

  async stopDocker(): Promise<string[]> {
    const docker = this.docker;
    if (!docker) return [];
    if (this.dockerHasTarget) await removeDockerTarget(docker).catch(() => {});
    this.dockerHasTarget = false;
    return docker.stop();
  }

  run(): Promise<string[]> {
    this.done ??= (async () => {
      for (const t of this.targets) t.api.close();
      const problems = await this.stopDocker();
      await this.lab.destroy(); // reports its own problems on stderr
      return problems;
    })();
    return this.done;
  }
}

/** trellisd's handling time per request, from its debug log, for the last `n` requests of `op`. */
function serverTimes(daemon: LabDaemon, op: "connect" | "disconnect", n: number, skip: number): number[] {
  const times: number[] = [];
  const want = new RegExp(`/networks/${BENCH_NETWORK}/${op}$`);
  for (const line of daemon.logs().split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; path?: string; ms?: number; status?: number };
      if (entry.msg === "request" && entry.path && want.test(entry.path) && typeof entry.ms === "number") {
        times.push(entry.ms);
      }
    } catch {
      // a line cut by the log buffer; skip it
    }
  }
  return times.slice(-n).slice(skip);
}

async function startDocker(
  lab: Lab,
  cleanup: Cleanup,
): Promise<{ target?: AttachTarget; status: DockerStatus }> {
  try {
    const host = await lab.addHost("dk");
    say(`starting dockerd in ${host.ns} (${cgroupMode()})`);
    cleanup.docker = await BenchDockerd.start({
      hostNs: host.ns,
      dir: join(lab.dir, "docker"),
      cgroupName: `trellis-bench-${lab.prefix}`,
    });
    const version = (
      await cleanup.docker.docker([
        "version",
        "--format",
        "server {{.Server.Version}} (API {{.Server.APIVersion}}), CLI {{.Client.Version}}",
      ])
    ).stdout.trim();
    cleanup.dockerHasTarget = true;
    const target = await dockerTarget(cleanup.docker, join(lab.dir, "docker-image"));
    say(`docker ready: ${version}`);
    return { target, status: { state: "measured", version } };
  } catch (err) {
    const reason = err instanceof DockerUnavailable ? err.message : errorMessage(err);
    say(`docker: unavailable: ${reason}`);
    const problems = await cleanup.stopDocker();
    cleanup.docker = undefined;
    return { status: { state: "unavailable", reason: [reason, ...problems].join("; ") } };
  }
}

function environment(lab: Lab): Record<string, string | number | number[]> {
  const commit = buildCommit(lab.repoRoot);
  return {
    node: process.version,
    kernel: release(),
    cpus: `${cpus().length}× ${cpus()[0]?.model.trim() ?? "?"}`,
    cgroup: cgroupMode(),
    commit,
    "load avg 1/5/15 at start": loadavg(),
  };
}

type LatencyPart = Pick<BenchReport, "latency" | "serverMs" | "cliFloor">;

/** The latency series, in order: API (interleaved), API back to back (one engine at a time), CLI, CLI floor. */
async function measureLatency(
  opts: BenchOptions,
  daemon: LabDaemon,
  targets: AttachTarget[],
): Promise<LatencyPart> {
  const latencyOpts = { runs: opts.runs, warmup: opts.warmup, gapMs: opts.gapMs, progress: say };
  const n = opts.warmup + opts.runs;
  const latency: BenchReport["latency"] = {};
  say(`API point: ${n} cycles per engine`);
  latency.api = Object.fromEntries(await measurePoint(targets, "api", latencyOpts));
  const serverMs = {
    connect: serverTimes(daemon, "connect", n, opts.warmup),
    disconnect: serverTimes(daemon, "disconnect", n, opts.warmup),
  };
  const backToBackRuns = Math.min(opts.runs, 50);
  say(`API point back to back: ${opts.warmup + backToBackRuns} cycles per engine, no pause`);
  latency.apiBackToBack = {};
  for (const target of targets) {
    // One engine at a time: interleaving would put the other engine's cycle between the ops.
    const only = await measurePoint([target], "api", { ...latencyOpts, runs: backToBackRuns, gapMs: 0 });
    latency.apiBackToBack[target.engine] = only.get(target.engine);
  }
  say(`CLI point: ${n} cycles per engine`);
  latency.cli = Object.fromEntries(await measurePoint(targets, "cli", latencyOpts));
  const floorRuns = Math.min(opts.runs, 50);
  say(`CLI floor: ${floorRuns} runs of --version per engine`);
  const cliFloor = Object.fromEntries(await measureCliFloor(targets, floorRuns));
  return { latency, serverMs, cliFloor };
}

function settingsOf(opts: BenchOptions, latency: BenchReport["latency"]): BenchReport["settings"] {
  const reuse = Object.entries(latency.api ?? {})
    .map(([engine, r]) => `${engine}: ${r?.reused ?? 0}/${2 * opts.runs} requests reused it`)
    .join(", ");
  return {
    runs: opts.runs,
    warmup: opts.warmup,
    gapMs: opts.gapMs,
    count: opts.skipScale ? null : opts.count,
    concurrency: opts.concurrency,
    apiConnection: `process.hrtime around one POST on ONE kept-alive HTTP/1.1 connection per engine (opened before the runs); ${reuse}`,
    cliTiming:
      "spawn() of `node bin/trellis --socket S network connect|disconnect benchnet NETNS` / `docker -H unix://S network connect|disconnect benchnet target` until the process exits",
  };
}

async function runBench(
  opts: BenchOptions,
  lab: Lab,
  cleanup: Cleanup,
): Promise<Omit<BenchReport, "cleanupProblems">> {
  const env = environment(lab);
  const host = await lab.addHost("tr");
  const daemon = await lab.startDaemon(host);
  cleanup.targets.push(await trellisTarget(lab, daemon));
  let docker: DockerStatus = { state: "skipped", reason: "--no-docker" };
  if (!opts.noDocker) {
    const started = await startDocker(lab, cleanup);
    docker = started.status;
    if (started.target) cleanup.targets.push(started.target);
  }
  const measured = await measureLatency(opts, daemon, cleanup.targets);
  const dockerProblems = await cleanup.stopDocker(); // frees the CPU before the scale phase
  if (dockerProblems.length > 0) say(`docker cleanup: ${dockerProblems.join("; ")}`);
  say(`trellisd RSS before the scale phase: ${(memoryOf(daemon.pid).rssKiB / 1024).toFixed(1)} MiB`);
  const scale = opts.skipScale
    ? null
    : await measureScale(lab, daemon, { count: opts.count, concurrency: opts.concurrency, progress: say });
  env["load avg 1/5/15 at end"] = loadavg();
  return { settings: settingsOf(opts, measured.latency), environment: env, docker, ...measured, scale };
}

async function main(argv: string[]): Promise<number> {
  let opts: BenchOptions;
  try {
    const parsed = parseOptions(argv);
    if (parsed.kind === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    opts = parsed.options;
  } catch (err) {
    process.stderr.write(`attach bench: ${errorMessage(err)}\n${USAGE}\n`);
    return 1;
  }
  const lab = await Lab.create();
  const cleanup = new Cleanup(lab);
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: cleaning up`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let result: Omit<BenchReport, "cleanupProblems">;
  try {
    result = await runBench(opts, lab, cleanup);
  } finally {
    const problems = await cleanup.run();
    if (problems.length > 0) say(`cleanup problems: ${problems.join("; ")}`);
  }
  const report: BenchReport = { ...result, cleanupProblems: await cleanup.run() };
  const table = renderReport(report);
  if (opts.json) {
    process.stderr.write(`${table}\n`);
    process.stdout.write(`${JSON.stringify(reportJson(report), null, 2)}\n`);
  } else {
    process.stdout.write(`${table}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(
      `attach bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
