/**
 * Process helpers for the integration-test harness: run a command to completion with a deadline, keep
 * the tail of a long-running process's output, stop processes by PID, and one retry helper with a
 * deadline. No shell is ever involved: argv arrays go straight to spawn().
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

export interface RunResult {
  /** Exit code; 128+N when killed by signal N; 124 when the deadline killed it; 127 when it could not start. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Deadline in ms, after which the process is SIGKILLed and the result has code 124. Default 30 000. */
  timeoutMs?: number;
  /** Written to the process's stdin, which is then closed (stdin is always closed, empty by default). */
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export const EXIT_TIMEOUT = 124;
const EXIT_NOT_STARTED = 127;
/** Per stream; a runaway command should not take the test process down with it. */
const MAX_CAPTURE = 16 * 1024 * 1024;

/**
 * The environment for every process the harness starts. npm prepends node_modules/.bin to PATH while it
 * runs scripts, and that directory holds an `nft` (a dependency's file tracer) that would shadow
 * /usr/sbin/nft: drop those entries, and make sure the sbin directories are there.
 */
export function cleanEnv(): NodeJS.ProcessEnv {
  const entries = (process.env["PATH"] ?? "")
    .split(":")
    .filter((p) => p !== "" && !/(^|\/)node_modules\/\.bin\/?$/.test(p));
  for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (!entries.includes(dir)) entries.push(dir);
  }
  return { ...process.env, PATH: entries.join(":") };
}

/** Runs argv to completion. Never rejects: failures to start or deadlines show up in `code`. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error("run: empty argv"));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: opts.env ?? cleanEnv(), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let settled = false;
    const finish = (code: number, extra = "") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, stdout, stderr: stderr + extra });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    child.on("error", (err) => finish(EXIT_NOT_STARTED, `${err.message}\n`));
    child.on("close", (code, signal) => {
      if (timedOut) finish(EXIT_TIMEOUT, `[killed: no exit within ${timeoutMs} ms]\n`);
      else finish(code ?? exitCodeForSignal(signal));
    });
    // A command that never reads its input must not fail the run with EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

export function exitCodeForSignal(signal: NodeJS.Signals | null): number {
  return signal ? 128 + (constants.signals[signal] ?? 0) : 1;
}

export function describeArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/** Keeps the last `limit` characters written to it: bounded capture of a long-running process. */
export class OutputTail {
  private text = "";
  constructor(private readonly limit = 4 * 1024 * 1024) {}

  append(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.limit) this.text = this.text.slice(this.text.length - this.limit);
  }

  /** Appends everything the child writes to stdout and stderr. */
  capture(child: ChildProcess): void {
    child.stdout?.setEncoding("utf8").on("data", (d: string) => this.append(d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => this.append(d));
  }

  toString(): string {
    return this.text;
  }
}

/** Resolves once the child has exited (at once if it already has); false if `ms` passed first. */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Sends a signal by PID; false when there is no such process any more. */
export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * /proc/PID/stat, split after the command name (which may hold spaces and parentheses).
 * Index 0 is the state (field 3), index 19 the start time in clock ticks (field 22).
 */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== "Z" && state !== "X";
}

/** Start time in clock ticks since boot: with the PID, identifies one process across PID reuse. */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

export interface WaitForOptions {
  /** Give up after this many ms. Default 10 000. */
  timeoutMs?: number;
  /** Pause between attempts in ms. Default 100. */
  intervalMs?: number;
  /** What we are waiting for, for the error message ("h1 pings h2"). */
  what?: string;
}

/**
 * Calls `fn` until it returns a truthy value (which is returned) or the deadline passes. An attempt that
 * throws counts as not yet; the last error is part of the timeout message. A slow attempt is not allowed
 * to run past the deadline.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    const remaining = deadline - Date.now();
    try {
      const value = await withDeadline(Promise.resolve().then(fn), Math.max(remaining, 1));
      if (value) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() + intervalMs > deadline) break;
    await sleep(intervalMs);
  }
  const last = lastError === undefined ? "" : `; last error: ${errorMessage(lastError)}`;
  throw new Error(
    `timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${opts.what ?? "condition"}${last}`,
  );
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`attempt still running at the deadline`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
