/**
 * The integration-test lab: hosts and containers are network namespaces named `${prefix}-${name}`, the
 * underlay is bridge br0 inside the namespace `${prefix}-sw` with one veth per host (10.99.0.0/24).
 * Nothing is created in the root namespace; destroy() removes exactly what carries the lab's prefix and
 * stops every process the lab started, by PID. See DESIGN.md, "Lab conventions".
 *
 *   const lab = await Lab.create(t);            // destroy() runs at t.teardown
 *   const h1 = await lab.addHost("h1");
 *   const d1 = await lab.startDaemon(h1);
 *   const c1 = await lab.addContainer("h1-c1");
 *   await d1.cli(["network", "connect", "net1", c1]);
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LabDaemon, type LabHost } from "./lab-daemon.js";
import { LabRecord, namespacesWithPrefix, pidsInNamespace, reapAbandonedLabs } from "./lab-registry.js";
import {
  cleanEnv,
  describeArgv,
  errorMessage,
  hasExited,
  isAlive,
  OutputTail,
  type RunResult,
  run,
  signalPid,
  waitFor,
  waitForExit,
} from "./proc.js";

export { LabDaemon, type LabHost } from "./lab-daemon.js";
export { type WaitForOptions, waitFor } from "./proc.js";

/** The lab underlay; host n (1-based, in addHost order) gets .n. Never routed anywhere. */
const UNDERLAY_PREFIX = "10.99.0.";
const UNDERLAY_LEN = 24;
const MAX_HOSTS = 250;
/** destroy(): grace after SIGTERM before SIGKILL. */
const TERM_GRACE_MS = 2_000;
const EXEC_TIMEOUT_MS = 30_000;

export interface ExecOptions {
  /** Deadline; the process is killed after it and the result has code 124. Default 30 s. */
  timeoutMs?: number;
  input?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
}

export interface StartDaemonOptions {
  /** Extra daemon flags after --state-dir/--socket/--log-level. */
  args?: string[];
  /** Reuse a state dir (default: a fresh one in the lab's temp dir). */
  stateDir?: string;
  /** Test seam: a JS file to run instead of bin/trellisd. */
  entry?: string;
}

/** `tr` + 4 random hex digits: the per-run name prefix. */
export function randomPrefix(): string {
  return `tr${randomBytes(2).toString("hex")}`;
}

/** The directory holding package.json, found upwards from this file (src or dist). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("package.json not found above the test helpers");
    dir = parent;
  }
  return dir;
}

/** Labs not yet destroyed, for the process-exit safety net (see installExitHook). */
const liveLabs = new Set<Lab>();
let exitHookInstalled = false;
let reaped: Promise<unknown> | undefined;

export class Lab {
  readonly prefix: string;
  /** Temp dir for state dirs, sockets and files; removed on destroy. */
  readonly dir: string;
  readonly hosts: LabHost[] = [];
  readonly repoRoot = repoRoot();
  private readonly namespaces = new Set<string>();
  private readonly children = new Set<ChildProcess>();
  private readonly outputs = new WeakMap<ChildProcess, OutputTail>();
  private switchNs: Promise<string> | undefined;
  private daemonCount = 0;
  private destroying: Promise<void> | undefined;

  private constructor(
    prefix: string,
    dir: string,
    private readonly record: LabRecord,
  ) {
    this.prefix = prefix;
    this.dir = dir;
  }

  static async create(t?: { teardown(fn: () => unknown): void }): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces)");
    reaped ??= reapAbandonedLabs();
    await reaped;
    const { prefix, record } = await claimPrefix();
    let dir: string;
    try {
      dir = await mkdtemp(join(tmpdir(), `trellis-${prefix}-`));
      record.setDir(dir);
    } catch (err) {
      record.remove();
      throw err;
    }
    const lab = new Lab(prefix, dir, record);
    liveLabs.add(lab);
    installExitHook();
    t?.teardown(() => lab.destroy());
    return lab;
  }

  /** A host: namespace, lo up, veth eth0 to the lab switch, underlay address 10.99.0.<n>/24. */
  async addHost(name: string): Promise<LabHost> {
    this.checkName(name);
    if (this.hosts.length >= MAX_HOSTS) throw new Error(`at most ${MAX_HOSTS} hosts per lab`);
    const host: LabHost = {
      name,
      ns: `${this.prefix}-${name}`,
      underlayIp: `${UNDERLAY_PREFIX}${this.hosts.length + 1}`,
    };
    const port = `p${this.hosts.length + 1}`;
    this.hosts.push(host);
    const sw = await this.ensureSwitch();
    await this.createNamespace(host.ns);
    await this.ip(["-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.ns]);
    await this.ip(["-n", sw, "link", "set", port, "master", "br0", "up"]);
    await this.ip(["-n", host.ns, "addr", "add", `${host.underlayIp}/${UNDERLAY_LEN}`, "dev", "eth0"]);
    await this.ip(["-n", host.ns, "link", "set", "eth0", "up"]);
    return host;
  }

  /** A bare namespace with lo up, for a daemon to attach. Returns its name (`${prefix}-${name}`). */
  async addContainer(name: string): Promise<string> {
    this.checkName(name);
    const ns = `${this.prefix}-${name}`;
    await this.createNamespace(ns);
    return ns;
  }

  /** Runs argv inside `ns` (`ip netns exec`). Throws with stderr on a non-zero exit unless allowFail. */
  async exec(ns: string, argv: string[], opts: ExecOptions = {}): Promise<RunResult> {
    const full = ["ip", "netns", "exec", ns, ...argv];
    const result = await run(full, { timeoutMs: opts.timeoutMs ?? EXEC_TIMEOUT_MS, input: opts.input });
    if (result.code !== 0 && !opts.allowFail) {
      throw new Error(`${describeArgv(full)} exited ${result.code}: ${result.stderr.trim()}`);
    }
    return result;
  }

  /**
   * Starts a long-running process inside `ns` (a server, a traffic generator). It is stopped by PID on
   * destroy(). Its stdout/stderr are readable on the returned child; the last 1 MiB is kept for output().
   */
  spawnIn(ns: string, argv: string[]): ChildProcess {
    const full = ["ip", "netns", "exec", ns, ...argv];
    const child = spawn(full[0]!, full.slice(1), { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    const tail = new OutputTail(1024 * 1024);
    tail.capture(child);
    child.on("error", (err) => tail.append(`[harness] spawn failed: ${err.message}\n`));
    this.outputs.set(child, tail);
    this.track(child);
    return child;
  }

  /** What a process from spawnIn() has written so far (stdout and stderr interleaved). */
  output(child: ChildProcess): string {
    return this.outputs.get(child)?.toString() ?? "";
  }

  /** Starts trellisd inside the host's namespace, with its own state dir and socket in the lab dir. */
  async startDaemon(host: LabHost, opts: StartDaemonOptions = {}): Promise<LabDaemon> {
    const home = join(this.dir, `${host.name}-d${++this.daemonCount}`);
    await mkdir(home, { recursive: true });
    const stateDir = opts.stateDir ?? join(home, "state");
    await mkdir(stateDir, { recursive: true });
    const daemon = new LabDaemon(
      { repoRoot: this.repoRoot, track: (child) => this.track(child) },
      { host, stateDir, socket: join(home, "trellis.sock"), args: opts.args ?? [], entry: opts.entry },
    );
    await daemon.start();
    return daemon;
  }

  /**
   * Stops every process the lab started (SIGTERM, SIGKILL after 2 s), then any process left inside its
   * namespaces, deletes every `${prefix}-*` namespace and the temp dir. Idempotent; never throws
   * (problems are reported on stderr).
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${errorMessage(err)}`);
      }
    };
    await attempt("stop processes", () => this.stopChildren());
    await attempt("stop leftover processes", () => this.killNamespaceProcesses());
    await attempt("delete namespaces", () => this.deleteNamespaces());
    await attempt("remove temp dir", () => rm(this.dir, { recursive: true, force: true }));
    if (problems.length === 0) this.record.remove();
    liveLabs.delete(this);
    if (problems.length > 0)
      console.error(`lab ${this.prefix}: teardown problems:\n  ${problems.join("\n  ")}`);
  }

  private async stopChildren(): Promise<void> {
    const running = [...this.children].filter((c) => !hasExited(c) && c.pid !== undefined);
    for (const child of running) signalPid(child.pid!, "SIGTERM");
    const exited = await Promise.all(running.map((c) => waitForExit(c, TERM_GRACE_MS)));
    const stubborn = running.filter((_, i) => !exited[i]);
    for (const child of stubborn) signalPid(child.pid!, "SIGKILL");
    const killed = await Promise.all(stubborn.map((c) => waitForExit(c, TERM_GRACE_MS)));
    const left = stubborn.filter((_, i) => !killed[i]).map((c) => c.pid);
    if (left.length > 0) throw new Error(`still running after SIGKILL: ${left.join(", ")}`);
  }

  /** Processes inside the lab's namespaces that we did not start directly (a server's children...). */
  private async killNamespaceProcesses(): Promise<void> {
    const pids: number[] = [];
    for (const ns of await this.allNamespaces()) pids.push(...(await pidsInNamespace(ns)));
    if (pids.length === 0) return;
    for (const pid of pids) signalPid(pid, "SIGKILL");
    await waitFor(() => pids.every((pid) => !isAlive(pid)), {
      timeoutMs: TERM_GRACE_MS,
      intervalMs: 20,
      what: `PIDs ${pids.join(", ")} to exit`,
    });
  }

  private async deleteNamespaces(): Promise<void> {
    for (const ns of await this.allNamespaces()) {
      const res = await run(["ip", "netns", "del", ns]);
      if (res.code === 0) this.namespaces.delete(ns);
    }
    const left = await namespacesWithPrefix(this.prefix);
    if (left.length > 0) throw new Error(`namespaces left: ${left.join(", ")}`);
  }

  private async allNamespaces(): Promise<string[]> {
    const found = await namespacesWithPrefix(this.prefix);
    return [...new Set([...this.namespaces, ...found])];
  }

  /** Synchronous last resort for process exit without destroy() (see installExitHook). */
  emergencyCleanup(): void {
    for (const child of this.children)
      if (child.pid !== undefined && !hasExited(child)) signalPid(child.pid, "SIGKILL");
    let complete = true;
    for (const ns of this.namespaces) {
      try {
        const pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", env: cleanEnv() });
        for (const pid of pids.split("\n").map(Number)) if (pid > 1) signalPid(pid, "SIGKILL");
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", env: cleanEnv() });
      } catch {
        complete = false; // the registry reaper will find what is left
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (complete) this.record.remove();
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    if (child.pid !== undefined) this.record.addProcess(child.pid);
  }

  private ensureSwitch(): Promise<string> {
    this.switchNs ??= (async () => {
      const sw = `${this.prefix}-sw`;
      await this.createNamespace(sw);
      await this.ip(["-n", sw, "link", "add", "br0", "type", "bridge"]);
      await this.ip(["-n", sw, "link", "set", "br0", "up"]);
      return sw;
    })();
    return this.switchNs;
  }

  private async createNamespace(ns: string): Promise<void> {
    if (this.destroying) throw new Error(`lab ${this.prefix} is being destroyed`);
    await this.ip(["netns", "add", ns]);
    this.namespaces.add(ns);
    await this.ip(["-n", ns, "link", "set", "lo", "up"]);
  }

  private async ip(args: string[]): Promise<void> {
    const res = await run(["ip", ...args]);
    if (res.code !== 0)
      throw new Error(`${describeArgv(["ip", ...args])} exited ${res.code}: ${res.stderr.trim()}`);
  }

  private checkName(name: string): void {
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name) || name === "sw") {
      throw new Error(`bad lab name ${JSON.stringify(name)}: lower-case letters, digits and '-', not "sw"`);
    }
  }
}

/** A fresh prefix, reserved in the registry and unused by any namespace. */
async function claimPrefix(): Promise<{ prefix: string; record: LabRecord }> {
  for (let i = 0; i < 20; i++) {
    const prefix = randomPrefix();
    const record = LabRecord.claim(prefix);
    if (!record) continue;
    if ((await namespacesWithPrefix(prefix)).length === 0) return { prefix, record };
    record.remove();
  }
  throw new Error("no free lab prefix after 20 tries");
}

/**
 * If the test process exits with labs not destroyed (an uncaught error, process.exit), kill their
 * processes and delete their namespaces synchronously. A SIGKILLed test process is handled by the
 * registry reaper at the next Lab.create().
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const lab of liveLabs) lab.emergencyCleanup();
  });
}
