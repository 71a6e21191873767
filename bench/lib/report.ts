/** Turns the measurements into the printed table, the goal verdicts and the --json document. */
import type { Point, PointSamples } from "./latency.js";
import type { ScaleResult } from "./scale.js";
import { fmtMs, fmtP50P95, fmtRatio, renderTable, type Summary, summarize } from "./stats.js";
import type { Memory } from "./sys.js";
import type { Engine, Operation } from "./targets.js";

/** The goals from the issue: trellis connect p50 at the API, and the speed-up over Docker. */
export const GOAL_CONNECT_P50_MS = 10;
export const GOAL_SPEEDUP = 5;

export interface DockerStatus {
  state: "measured" | "skipped" | "unavailable";
  reason?: string;
  version?: string;
}

export interface BenchReport {
  settings: {
    runs: number;
    warmup: number;
    gapMs: number;
    count: number | null;
    concurrency: number;
    apiConnection: string;
    cliTiming: string;
  };
  environment: Record<string, string | number | number[]>;
  docker: DockerStatus;
  /** Samples by series (a measurement point, or the API with no pause), then engine. */
  latency: Partial<Record<Series, Partial<Record<Engine, PointSamples>>>>;
  /** trellisd's own handling time of the API-point requests, from its debug log ("request" lines). */
  serverMs: Record<Operation, number[]>;
  /** spawn→exit of each CLI doing no request (`--version`), by engine. */
  cliFloor: Partial<Record<Engine, number[]>>;
  scale: ScaleResult | null;
  /** Problems met while cleaning up (empty when everything was removed). */
  cleanupProblems: string[];
}

/** The API measured again with no pause: a connect right after a disconnect of the same container. */
export type Series = Point | "apiBackToBack";

const SERIES_LABEL: Record<Series, string> = {
  api: "Engine API: HTTP request→reply, kept-alive unix-socket conn",
  apiBackToBack: "Engine API, back to back (no pause after the previous op)",
  cli: "CLI end to end: spawn→exit",
};

const OPERATIONS: readonly Operation[] = ["connect", "disconnect"];

function summaryOf(report: BenchReport, point: Series, engine: Engine, op: Operation): Summary | undefined {
  const samples = report.latency[point]?.[engine]?.[op];
  return samples && samples.length > 0 ? summarize(samples) : undefined;
}

/** Docker's time over trellis's, at p50 and p95: "how many times faster trellis is". */
function ratios(t: Summary | undefined, d: Summary | undefined) {
  if (!t || !d) return undefined;
  return { p50: d.p50 / t.p50, p95: d.p95 / t.p95 };
}

function latencyRows(report: BenchReport): string[][] {
  const rows: string[][] = [];
  for (const op of OPERATIONS) {
    for (const point of ["api", "apiBackToBack", "cli"] as const) {
      if (!report.latency[point]) continue;
      const t = summaryOf(report, point, "trellis", op);
      const d = summaryOf(report, point, "docker", op);
      const r = ratios(t, d);
      rows.push([
        op,
        SERIES_LABEL[point],
        fmtP50P95(t),
        fmtP50P95(d),
        r ? `${fmtRatio(r.p50)} / ${fmtRatio(r.p95)}` : "—",
      ]);
    }
    const server = report.serverMs[op];
    if (server.length > 0) {
      rows.push([
        op,
        "trellisd handler time (its debug log, API runs)",
        fmtP50P95(summarize(server)),
        "—",
        "—",
      ]);
    }
  }
  const tf = report.cliFloor.trellis;
  const df = report.cliFloor.docker;
  if (tf || df) {
    rows.push([
      "(none)",
      "CLI floor: `--version`, no request, spawn→exit",
      fmtP50P95(tf && summarize(tf)),
      fmtP50P95(df && summarize(df)),
      "—",
    ]);
  }
  const t = report.latency.api?.trellis?.teardown;
  const d = report.latency.api?.docker?.teardown;
  if (t || d) {
    const ts = t && summarize(t);
    const ds = d && summarize(d);
    rows.push([
      "(after disconnect)",
      "reply → veth gone in container+host (API runs)",
      fmtP50P95(ts),
      fmtP50P95(ds),
      "—",
    ]);
  }
  return rows;
}

function verdict(ok: boolean | undefined): string {
  if (ok === undefined) return "n/a (no Docker figures)";
  return ok ? "MET" : "NOT MET";
}

function goalLines(report: BenchReport): string[] {
  const lines: string[] = [];
  const apiConnect = summaryOf(report, "api", "trellis", "connect");
  if (apiConnect) {
    lines.push(
      `trellis connect p50 at the API ≤ ${GOAL_CONNECT_P50_MS} ms: ${fmtMs(apiConnect.p50)} ms → ${verdict(apiConnect.p50 <= GOAL_CONNECT_P50_MS)}`,
    );
  }
  for (const point of ["api", "cli"] as const) {
    for (const op of OPERATIONS) {
      if (!report.latency[point]) continue;
      const r = ratios(summaryOf(report, point, "trellis", op), summaryOf(report, point, "docker", op));
      const label = `${op} (${point === "api" ? "API" : "CLI"})`.padEnd(17);
      lines.push(
        `≥ ${GOAL_SPEEDUP}× faster than Docker, ${label} p50: ${r ? fmtRatio(r.p50) : "—"} → ${verdict(r && r.p50 >= GOAL_SPEEDUP)}`,
      );
    }
  }
  return lines;
}

const mib = (m: Memory) =>
  `${(m.rssKiB / 1024).toFixed(1)} MiB (peak so far ${(m.hwmKiB / 1024).toFixed(1)})`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function scaleLines(s: ScaleResult): string[] {
  return [
    `${s.count} containers (netns) on one trellis network (${s.endpointsAtEnd} endpoints at the end):`,
    `  serially, one kept-alive connection : ${secs(s.serial.wallMs)} wall, ${(s.serial.wallMs / s.count).toFixed(2)} ms/attach; per request p50/p95 ${fmtP50P95(s.serial.perAttach)} (first 100: ${fmtP50P95(s.serial.first100)}, last 100: ${fmtP50P95(s.serial.last100)}), max ${fmtMs(s.serial.perAttach.max)} ms`,
    `  ${String(s.concurrency).padStart(2)} at a time, ${s.concurrency} connections      : ${secs(s.concurrent.wallMs)} wall, ${(s.concurrent.wallMs / s.count).toFixed(2)} ms/attach; per request p50/p95 ${fmtP50P95(s.concurrent.perAttach)}, max ${fmtMs(s.concurrent.perAttach.max)} ms`,
    `  (in between: detached all ${s.concurrency} at a time in ${secs(s.detachAll.wallMs)}; every veth gone after ${secs(s.detachAll.settledMs)})`,
    `  trellisd VmRSS (VmHWM): ${mib(s.memory.before)} before; ${mib(s.memory.afterSerial)} after the serial ${s.count}; ${mib(s.memory.afterConcurrent)} after the concurrent ${s.count}`,
    `  (creating the ${s.count} namespaces, lab set-up not trellis: ${secs(s.setupMs)})`,
  ];
}

function dockerLine(d: DockerStatus): string {
  if (d.state === "measured")
    return `docker: ${d.version ?? "?"} in a lab host namespace (see bench/README.md)`;
  return `docker: ${d.state}: ${d.reason ?? ""}`;
}

export function renderReport(report: BenchReport): string {
  const s = report.settings;
  const out: string[] = [];
  out.push(
    `trellis attach benchmark — ${s.runs} runs (+${s.warmup} warm-up) per engine and point, ${s.gapMs} ms pause after each operation`,
  );
  out.push(
    Object.entries(report.environment)
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.map((x) => x.toFixed(2)).join(" ") : v}`)
      .join("; "),
  );
  out.push(dockerLine(report.docker));
  out.push(`API timing: ${s.apiConnection}`);
  out.push(`CLI timing: ${s.cliTiming}`);
  out.push("");
  out.push(
    renderTable(
      [
        "operation",
        "measurement point",
        "trellis p50 / p95",
        "docker p50 / p95",
        "ratio docker÷trellis p50 / p95",
      ],
      latencyRows(report),
    ),
  );
  out.push("", "Goals (as measured, not adjusted):", ...goalLines(report).map((l) => `  ${l}`));
  if (report.scale) out.push("", ...scaleLines(report.scale));
  if (report.cleanupProblems.length > 0)
    out.push("", "cleanup problems:", ...report.cleanupProblems.map((p) => `  ${p}`));
  return out.join("\n");
}

/** The --json document: every summary next to its raw samples. */
export function reportJson(report: BenchReport): unknown {
  const latency: Record<string, unknown> = {};
  for (const [point, engines] of Object.entries(report.latency)) {
    const perEngine: Record<string, unknown> = {};
    for (const [engine, samples] of Object.entries(engines ?? {})) {
      perEngine[engine] = {
        connect: { summary: summarize(samples.connect), samplesMs: samples.connect },
        disconnect: { summary: summarize(samples.disconnect), samplesMs: samples.disconnect },
        teardownAfterDisconnect: { summary: summarize(samples.teardown), samplesMs: samples.teardown },
        ...(point.startsWith("api") ? { reusedConnection: samples.reused } : {}),
      };
    }
    latency[point] = perEngine;
  }
  const server = Object.fromEntries(
    OPERATIONS.map((op) => [op, { summary: summarize(report.serverMs[op]), samplesMs: report.serverMs[op] }]),
  );
  return {
    settings: report.settings,
    environment: report.environment,
    docker: report.docker,
    goals: goalLines(report),
    latency,
    trellisdHandlerMs: server,
    cliFloorMs: Object.fromEntries(
      Object.entries(report.cliFloor).map(([engine, ms]) => [
        engine,
        { summary: summarize(ms ?? []), samplesMs: ms },
      ]),
    ),
    scale: report.scale,
    cleanupProblems: report.cleanupProblems,
  };
}
