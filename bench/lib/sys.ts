/**
 * What the bench reads from the system and how it runs commands: a process's network interfaces and
 * memory from /proc, a command timed from spawn to exit, a bounded worker pool.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanEnv, describeArgv } from "../../test/helpers/proc.js";
import { msSince } from "./stats.js";

/** Interface names in the network namespace of process `pid` (from /proc/PID/net/dev). */
export function interfacesOf(pid: number): Set<string> {
  const text = readFileSync(`/proc/${pid}/net/dev`, "utf8");
  const names = new Set<string>();
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon > 0) names.add(line.slice(0, colon).trim());
  }
  return names;
}

export function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** Names in `now` that are not in `before`. */
export function added(before: ReadonlySet<string>, now: ReadonlySet<string>): string[] {
  return [...now].filter((x) => !before.has(x));
}

/**
 * Polls `check` every `intervalMs` until it is true; returns the ms it took. Throws after `timeoutMs`
 * with `what` in the message. For the bench's settle points only (outside every timed section).
 */
export async function pollUntil(
  check: () => boolean | Promise<boolean>,
  opts: { what: string; timeoutMs?: number; intervalMs?: number },
): Promise<number> {
  const started = process.hrtime.bigint();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  for (;;) {
    if (await check()) return msSince(started);
    if (msSince(started) > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}`);
    await sleep(opts.intervalMs ?? 1);
  }
}

export interface Memory {
  /** Resident set size now, in KiB (VmRSS). */
  rssKiB: number;
  /** Peak resident set size, in KiB (VmHWM). */
  hwmKiB: number;
}

export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(m[1]);
  };
  return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM") };
}

export interface TimedCommandOptions {
  env?: NodeJS.ProcessEnv;
  /** Deadline; the command is SIGKILLed after it and the call throws. Default 60 s. */
  timeoutMs?: number;
}

/**
 * Runs argv and returns the ms from spawn() until the process exited. Throws, with its stderr, when it
 * exits non-zero or passes the deadline. stdout is discarded.
 */
export function timeCommand(argv: readonly string[], opts: TimedCommandOptions = {}): Promise<number> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error("timeCommand: empty argv"));
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(file, args, { env: opts.env ?? cleanEnv(), stdio: ["ignore", "ignore", "pipe"] });
    let exitedAfter = 0;
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("exit", () => {
      exitedAfter = msSince(started);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${describeArgv(argv)}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(exitedAfter);
      else
        reject(
          new Error(`${describeArgv(argv)} exited ${code ?? signal}: ${stderr.trim() || "(no stderr)"}`),
        );
    });
  });
}

/** Runs `fn` on every item with at most `limit` calls in flight; results in item order. */
export async function mapPool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * The commit the figures were measured on. The daemon and CLI are built from the working tree, so
 * say when it holds uncommitted work; "?" outside a git checkout.
 */
export function buildCommit(repoRoot: string): string {
  try {
    const git = (args: string[]) => execFileSync("git", args, { cwd: repoRoot, encoding: "utf8" }).trim();
    let commit = git(["rev-parse", "--short", "HEAD"]);
    const dirty = git(["status", "--porcelain", "--", "lib", "bin", "native"]);
    if (dirty !== "") commit += ` + ${dirty.split("\n").length} uncommitted file(s) under lib/ bin/ native/`;
    return commit;
  } catch {
    return "?";
  }
}
