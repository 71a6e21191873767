/**
 * Container start with networking, through a real Docker engine: `docker run --rm --network NET bb
 * true` wall time (CLI spawn to exit) on a trellis network (trellis as the engine's network and
 * IPAM driver), on Docker's own user-defined bridge network, and with `--network none`, interleaved
 * run by run in the same engine. "Networking share" = median minus the median of `none`: what a
 * network costs a container start. A script, not a test: it prints what it measured.
 *
 *   node dist/bench/docker-run.js [--runs N] [--warmup N] [--json]
 *
 * The lab engine runs with --iptables=false (docker-engine-notes.md §4), so Docker's bridge driver
 * does no iptables work here: its cheapest configuration, a conservative yardstick for trellis.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { busyboxImage, IMAGE } from "../test/helpers/docker-plugin.js";
import { LabDockerd } from "../test/helpers/dockerd.js";
import { Lab } from "../test/helpers/lab.js";
import { run } from "../test/helpers/proc.js";
import { fmtMs, msSince, renderTable, summarize } from "./lib/stats.js";

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Target {
  label: string;
  network: string;
  samples: number[];
}

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string", default: "30" },
      warmup: { type: "string", default: "3" },
      json: { type: "boolean", default: false },
    },
  });
  return { runs: Number(values.runs), warmup: Number(values.warmup), json: values.json === true };
}

/** trellisd with the plugin and dockerd in one lab host, the image, and the three networks. */
async function setup(lab: Lab): Promise<{ engine: LabDockerd; targets: Target[] }> {
  const host = await lab.addHost("h1");
  const pluginDir = join(lab.dir, "plugins");
  mkdirSync(pluginDir);
  const dir = join(lab.dir, "docker");
  const args = ["--docker-plugin-socket", join(pluginDir, "trellis.sock")];
  await lab.startDaemon(host, {
    args: [...args, "--docker-engine-socket", join(dir, "docker.sock"), "--log-level", "warn"],
  });
  say(`starting dockerd in ${host.ns}`);
  const engine = await LabDockerd.start({
    hostNs: host.ns,
    dir,
    cgroupName: `trellis-bench-run-${lab.prefix}`,
    pluginDir,
  });
  const docker = (a: string[]) => engine.docker(a);
  await docker(["import", await busyboxImage(lab), IMAGE]);
  await docker(["network", "create", "--subnet", "10.85.0.0/16", "dockerbr"]);
  await docker([
    "network",
    "create",
    "-d",
    "trellis",
    "--ipam-driver",
    "trellis",
    "--subnet",
    "10.86.0.0/16",
    "trellisnet",
  ]);
  await docker(["network", "create", "-d", "trellis", "--subnet", "10.87.0.0/16", "trellisengine"]);
  const targets: Target[] = [
    { label: "--network none", network: "none", samples: [] },
    { label: "Docker bridge (user-defined)", network: "dockerbr", samples: [] },
    { label: "trellis (driver + IPAM)", network: "trellisnet", samples: [] },
    { label: "trellis (driver, Docker IPAM)", network: "trellisengine", samples: [] },
  ];
  return { engine, targets };
}

async function timeRun(engine: LabDockerd, network: string): Promise<number> {
  const argv = engine.cliArgv(["run", "--rm", "--network", network, IMAGE, "true"]);
  const started = process.hrtime.bigint();
  const r = await run(argv, { env: engine.cliEnv(), timeoutMs: 60_000 });
  const ms = msSince(started);
  if (r.code !== 0) throw new Error(`docker run on ${network} exited ${r.code}: ${r.stderr.trim()}`);
  return ms;
}

function render(targets: Target[], runs: number): string {
  const none = summarize(targets[0]!.samples).p50;
  const docker = summarize(targets[1]!.samples).p50 - none;
  const rows = targets.map((t) => {
    const s = summarize(t.samples);
    const share = s.p50 - none;
    const vsDocker = t.network === "none" ? "—" : `${((share / docker) * 100).toFixed(0)} %`;
    return [
      t.label,
      fmtMs(s.p50),
      `${fmtMs(s.min)}–${fmtMs(s.max)}`,
      t.network === "none" ? "—" : fmtMs(share),
      vsDocker,
    ];
  });
  return [
    `docker run --rm --network NET bb true: ${runs} runs per network, interleaved, wall time of the CLI (ms)`,
    renderTable(["network", "median", "min–max", "networking share", "share vs Docker bridge"], rows),
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const opts = options(argv);
  const lab = await Lab.create();
  let engine: LabDockerd | undefined;
  const cleanup = async () => {
    for (const p of (await engine?.stop()) ?? []) say(`docker cleanup: ${p}`);
    await lab.destroy();
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const made = await setup(lab);
    engine = made.engine;
    const { targets } = made;
    for (let i = 0; i < opts.warmup; i++) for (const t of targets) await timeRun(made.engine, t.network);
    say(`measuring ${opts.runs} runs per network`);
    for (let i = 0; i < opts.runs; i++) {
      // rotate the order every round so no network always runs right after another
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(i + k) % targets.length]!;
        t.samples.push(await timeRun(made.engine, t.network));
      }
    }
    const table = render(targets, opts.runs);
    if (opts.json) {
      process.stderr.write(`${table}\n`);
      process.stdout.write(`${JSON.stringify(targets, null, 2)}\n`);
    } else process.stdout.write(`${table}\n`);
  } finally {
    await cleanup();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(
      `docker-run bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
