/**
 * A trellisd running inside a lab host's namespace, with its own state dir and unix socket, and the
 * client side a test needs: the HTTP API over the socket, the CLI, signals, restart, captured logs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  cleanEnv,
  describeArgv,
  errorMessage,
  hasExited,
  OutputTail,
  type RunResult,
  run,
  signalPid,
  waitForExit,
} from "./proc.js";

export interface LabHost {
  /** The name given to addHost ("h1"). */
  name: string;
  /** Its network namespace (`${prefix}-${name}`). */
  ns: string;
  /** Its address on the lab underlay (10.99.0.0/24), on eth0. */
  underlayIp: string;
}

/** What a daemon needs from its lab. */
export interface DaemonContext {
  readonly repoRoot: string;
  /** Hands a started process to the lab, which stops it on destroy(). */
  track(child: ChildProcess): void;
}

export interface DaemonSpec {
  host: LabHost;
  stateDir: string;
  socket: string;
  /** Extra daemon arguments, after the standard ones. */
  args: readonly string[];
  /** JS file to run instead of bin/trellisd (a test seam for a stand-in daemon). */
  entry?: string;
}

export interface ApiResponse {
  status: number;
  /** Parsed JSON when the body is JSON, else the raw text ("" when empty). */
  // biome-ignore lint/suspicious/noExplicitAny: a JSON body of any shape; tests narrow it
  body: any;
}

/** How long the daemon has to answer GET /_ping after it was started. */
const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 20;
/** How long kill() waits for the process to exit before it gives up (and SIGKILLs it). */
const KILL_WAIT_MS = 15_000;
const API_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 60_000;

export class LabDaemon {
  readonly host: LabHost;
  readonly socket: string;
  readonly stateDir: string;
  /** PID of the daemon process (it is `ip netns exec`, which execs node: one PID throughout). */
  pid = 0;
  private child: ChildProcess | undefined;
  private readonly output = new OutputTail();

  constructor(
    private readonly ctx: DaemonContext,
    private readonly spec: DaemonSpec,
  ) {
    this.host = spec.host;
    this.socket = spec.socket;
    this.stateDir = spec.stateDir;
  }

  /** Starts the daemon and resolves once it answers GET /_ping; rejects with its logs otherwise. */
  async start(): Promise<void> {
    if (this.child && !hasExited(this.child))
      throw new Error(`trellisd on ${this.host.name} is already running`);
    const entry =
      this.spec.entry ?? firstExisting(this.ctx.repoRoot, ["bin/trellisd", "dist/lib/daemon/main.js"]);
    const argv = [
      "ip",
      "netns",
      "exec",
      this.host.ns,
      ...nodeCommand(entry),
      "--state-dir",
      this.stateDir,
      "--socket",
      this.socket,
      "--log-level",
      "debug",
      ...this.spec.args,
    ];
    this.output.append(`[harness] ${describeArgv(argv)}\n`);
    const child = spawn(argv[0]!, argv.slice(1), { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.output.capture(child);
    child.on("error", (err) => this.output.append(`[harness] spawn failed: ${err.message}\n`));
    child.on("exit", (code, signal) =>
      this.output.append(`[harness] trellisd exited (code ${code}, signal ${signal})\n`),
    );
    if (child.pid === undefined) {
      await waitForExit(child, 1000);
      throw new Error(`could not start trellisd on ${this.host.name}\n${this.logs()}`);
    }
    this.pid = child.pid;
    this.ctx.track(child);
    await this.waitReady(child);
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = "";
    while (Date.now() < deadline) {
      if (hasExited(child)) {
        throw new Error(
          `trellisd on ${this.host.name} exited before answering /_ping\n--- logs ---\n${this.logs()}`,
        );
      }
      try {
        const res = await this.api("GET", "/_ping", undefined, { timeoutMs: 1000 });
        if (res.status === 200) return;
        lastError = `status ${res.status}`;
      } catch (err) {
        lastError = errorMessage(err);
      }
      await sleep(READY_POLL_MS);
    }
    signalPid(this.pid, "SIGKILL");
    await waitForExit(child, 2000);
    throw new Error(
      `trellisd on ${this.host.name} did not answer /_ping within ${READY_TIMEOUT_MS} ms (${lastError})\n--- logs ---\n${this.logs()}`,
    );
  }

  /** One HTTP request over the unix socket. `rawBody` is sent as is (for malformed-input tests). */
  api(
    method: string,
    path: string,
    body?: unknown,
    opts: { rawBody?: string; timeoutMs?: number } = {},
  ): Promise<ApiResponse> {
    const payload = opts.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
    const headers: Record<string, string | number> = { Host: "trellis" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = Buffer.byteLength(payload);
    }
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: parseMaybeJson(text) });
        });
      });
      req.setTimeout(opts.timeoutMs ?? API_TIMEOUT_MS, () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? API_TIMEOUT_MS} ms`)),
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Runs the CLI against this daemon (from the root namespace: unix sockets work across namespaces). */
  async cli(args: string[], opts: { allowFail?: boolean } = {}): Promise<RunResult> {
    const entry = firstExisting(this.ctx.repoRoot, ["bin/trellis", "dist/lib/cli/main.js"]);
    const argv = [...nodeCommand(entry), "--socket", this.socket, ...args];
    const result = await run(argv, { timeoutMs: CLI_TIMEOUT_MS });
    if (result.code !== 0 && !opts.allowFail) {
      throw new Error(`${describeArgv(["trellis", ...args])} exited ${result.code}: ${result.stderr.trim()}`);
    }
    return result;
  }

  /**
   * Signals the daemon and waits for it to exit. Returns its exit code (null when a signal ended it).
   * If it is still running KILL_WAIT_MS later it is SIGKILLed and this rejects, with the logs.
   */
  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const child = this.child;
    if (!child) throw new Error(`trellisd on ${this.host.name} was never started`);
    if (!hasExited(child)) {
      signalPid(this.pid, signal);
      if (!(await waitForExit(child, KILL_WAIT_MS))) {
        signalPid(this.pid, "SIGKILL");
        await waitForExit(child, 2000);
        throw new Error(
          `trellisd on ${this.host.name} did not exit within ${KILL_WAIT_MS} ms of ${signal}\n--- logs ---\n${this.logs()}`,
        );
      }
    }
    return child.exitCode;
  }

  /** Starts the daemon again with the same state dir, socket and arguments (stops it first if running). */
  async restart(): Promise<void> {
    if (this.child && !hasExited(this.child)) await this.kill("SIGTERM");
    this.output.append("[harness] --- restart ---\n");
    await this.start();
  }

  /** Everything the daemon wrote to stdout and stderr (the last 4 MiB), with the harness's notes. */
  logs(): string {
    return this.output.toString();
  }
}

function parseMaybeJson(text: string): unknown {
  if (text === "") return "";
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function firstExisting(root: string, candidates: string[]): string {
  for (const rel of candidates) {
    const path = join(root, rel);
    if (existsSync(path)) return path;
  }
  throw new Error(`none of ${candidates.join(", ")} exists under ${root} (is the project built?)`);
}

/** A JS entry (bin shims included) runs under this very node binary; anything with another shebang runs as is. */
export function nodeCommand(entry: string): string[] {
  let head = "";
  try {
    head = readFileSync(entry, "utf8").slice(0, 128);
  } catch {
    // unreadable: let the spawn report it
  }
  if (head.startsWith("#!") && !/^#![^\n]*\bnode\b/.test(head)) return [entry];
  return [process.execPath, entry];
}
