/** The bench's command line, parsed once into typed options with their defaults. */
import { parseArgs } from "node:util";

export interface BenchOptions {
  /** Measured connect+disconnect cycles per engine and measurement point. Default 200. */
  runs: number;
  /** Cycles done first and not counted. Default 5. */
  warmup: number;
  /** Pause after every operation, in ms, outside the timed sections. Default 30; 0 = back to back. */
  gapMs: number;
  /** Skip the Docker engine: trellis figures only. */
  noDocker: boolean;
  /** Skip the many-containers phase. */
  skipScale: boolean;
  /** Containers in the many-containers phase. Default 1000 (a Linux bridge takes at most 1024 ports). */
  count: number;
  /** Requests in flight in the concurrent round of that phase. Default 50. */
  concurrency: number;
  /** Print the JSON document on stdout (the table then goes to stderr). */
  json: boolean;
}

export const USAGE = `Usage: node dist/bench/attach.js [options]   (as root; build first: npx tsc -p tsconfig.json)

Times connect/disconnect of a network namespace on a trellis bridge network at the Engine API and
through the CLI, next to a real Docker engine doing the same on a user-defined bridge network, then
attaches many namespaces to one trellis network.

  --runs N          measured cycles per engine and measurement point (default 200)
  --warmup N        unmeasured cycles first (default 5)
  --gap-ms N        pause after each operation, outside the timings (default 30; 0 = back to back)
  --no-docker       trellis only
  --skip-1000       skip the many-containers phase
  --count N         containers in that phase (default 1000, at most 1000)
  --concurrency N   requests in flight in its concurrent round (default 50)
  --json            JSON document on stdout, the table on stderr
  -h, --help        this help`;

export type Parsed = { kind: "help" } | { kind: "run"; options: BenchOptions };

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

export function parseOptions(argv: string[]): Parsed {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      runs: { type: "string" },
      warmup: { type: "string" },
      "gap-ms": { type: "string" },
      "no-docker": { type: "boolean" },
      "skip-1000": { type: "boolean" },
      count: { type: "string" },
      concurrency: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return { kind: "help" };
  return {
    kind: "run",
    options: {
      runs: integer("runs", values.runs, 200, 1, 100_000),
      warmup: integer("warmup", values.warmup, 5, 0, 1000),
      gapMs: integer("gap-ms", values["gap-ms"], 30, 0, 10_000),
      noDocker: values["no-docker"] ?? false,
      skipScale: values["skip-1000"] ?? false,
      count: integer("count", values.count, 1000, 1, 1000),
      concurrency: integer("concurrency", values.concurrency, 50, 1, 1000),
      json: values.json ?? false,
    },
  };
}
