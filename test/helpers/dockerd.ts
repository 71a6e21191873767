/**
 * A throwaway Docker engine inside a lab host namespace (tests and benchmarks). It never touches the
 * machine's own Docker set-up: dockerd runs in the lab namespace (nsenter --net) and in a private mount
 * namespace (unshare -m) where /run is a fresh tmpfs (containerd's shim sockets land there), /sys is
 * a sysfs of the lab namespace with the host's cgroup tree bound back in, and /etc/docker is a bind of
 * an empty directory of ours (key.json lands there). Data root, exec root, pidfile and API socket live
 * in our directory; containers get their own cgroup parent, removed at stop. No bridge, no iptables.
 * With `pluginDir`, that directory is the engine's /run/docker/plugins, where it discovers network
 * plugins by socket name (each engine its own, under the same driver name). See
 * docker-engine-notes.md §4.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statfsSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { request } from "node:http";
import { delimiter, join } from "node:path";
import {
  cleanEnv,
  errorMessage,
  hasExited,
  type RunResult,
  run,
  signalPid,
  waitFor,
  waitForExit,
} from "./proc.js";

const CGROUP_ROOT = "/sys/fs/cgroup";
const CGROUP2_MAGIC = 0x63677270;
const READY_TIMEOUT_MS = 60_000;
/** dockerd stops its containers and containerd on SIGTERM; give it this long, then SIGKILL. */
const STOP_GRACE_MS = 30_000;
const CLI_TIMEOUT_MS = 60_000;

/** dockerd could not be used; `message` is the reason, for "docker: unavailable: <reason>". */
export class DockerUnavailable extends Error {}

export interface LabDockerdOptions {
  /** The lab host namespace dockerd runs in (a name under /run/netns). */
  hostNs: string;
  /** A fresh directory for everything the engine writes; removed by stop(). */
  dir: string;
  /** The cgroup parent for containers (one path component); removed from every hierarchy by stop(). */
  cgroupName: string;
  /** Bound over the engine's /run/docker/plugins: network plugins' sockets go there. */
  pluginDir?: string;
  /** More dockerd flags. */
  extraArgs?: string[];
}

/** "cgroup v2" or "cgroup v1" (v1 includes the hybrid layout with a unified mount under it). */
export function cgroupMode(): string {
  return statfsSync(CGROUP_ROOT).type === CGROUP2_MAGIC ? "cgroup v2" : "cgroup v1";
}

function findExecutable(name: string): string | undefined {
  const dirs = (cleanEnv()["PATH"] ?? "").split(delimiter);
  return dirs.map((d) => join(d, name)).find((p) => existsSync(p));
}

const shQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

export class LabDockerd {
  readonly socket: string;
  private child: ChildProcess | undefined;
  private stopping: Promise<string[]> | undefined;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(
    private readonly opts: LabDockerdOptions,
    private readonly dockerd: string,
    readonly dockerCli: string,
  ) {
    this.socket = join(opts.dir, "docker.sock");
    const env = cleanEnv();
    for (const key of ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"])
      delete env[key];
    this.env = { ...env, DOCKER_CONFIG: join(opts.dir, "cli-config"), DOCKER_CLI_HINTS: "false" };
  }

  /** PID of dockerd (nsenter, unshare and sh all exec into it). */
  get pid(): number {
    return this.child?.pid ?? 0;
  }

  /** The environment for the docker CLI: its own config dir, no inherited DOCKER_HOST. */
  cliEnv(): NodeJS.ProcessEnv {
    return this.env;
  }

  /** The docker CLI's argv for this engine. */
  cliArgv(args: readonly string[]): string[] {
    return [this.dockerCli, "-H", `unix://${this.socket}`, ...args];
  }

  /** Starts dockerd and waits for its API; throws DockerUnavailable with the reason when it cannot. */
  static async start(opts: LabDockerdOptions): Promise<LabDockerd> {
    const dockerd = findExecutable("dockerd");
    const cli = findExecutable("docker");
    if (!dockerd) throw new DockerUnavailable("dockerd not found on PATH");
    if (!cli) throw new DockerUnavailable("the docker CLI is not found on PATH");
    if (!existsSync("/etc/docker")) {
      throw new DockerUnavailable(
        "/etc/docker is missing: dockerd would create /etc/docker/key.json on the machine",
      );
    }
    const engine = new LabDockerd(opts, dockerd, cli);
    try {
      await engine.launch();
    } catch (err) {
      const problems = await engine.stop();
      const extra = problems.length > 0 ? ` (cleanup: ${problems.join("; ")})` : "";
      throw err instanceof DockerUnavailable ? new DockerUnavailable(`${err.message}${extra}`) : err;
    }
    return engine;
  }

  private script(): string {
    const d = (sub: string) => shQuote(join(this.opts.dir, sub));
    const flags = [
      `--data-root ${d("data")}`,
      `--exec-root ${d("exec")}`,
      `--pidfile ${d("dockerd.pid")}`,
      `-H ${shQuote(`unix://${this.socket}`)}`,
      "--bridge=none --iptables=false --ip6tables=false --storage-driver=vfs",
      `--cgroup-parent=${shQuote(`/${this.opts.cgroupName}`)}`,
      ...(this.opts.extraArgs ?? []).map(shQuote),
    ];
    const plugins = this.opts.pluginDir
      ? [
          "mkdir -p /run/docker/plugins",
          `mount -n --bind ${shQuote(this.opts.pluginDir)} /run/docker/plugins`,
        ]
      : [];
    // -n: no /run/mount/utab bookkeeping (that file would land on the machine's /run before the tmpfs).
    return [
      "set -e",
      "mount -n -t tmpfs -o mode=0755 bench-run /run",
      `mount -n --rbind ${CGROUP_ROOT} ${d("cgroup")}`,
      "mount -n -t sysfs sysfs /sys",
      `mount -n --rbind ${d("cgroup")} ${CGROUP_ROOT}`,
      `mount -n --bind ${d("etc-docker")} /etc/docker`,
      ...plugins,
      `exec ${shQuote(this.dockerd)} ${flags.join(" ")}`,
    ].join("\n");
  }

  private async launch(): Promise<void> {
    for (const sub of ["data", "exec", "cgroup", "etc-docker", "cli-config"]) {
      mkdirSync(join(this.opts.dir, sub), { recursive: true });
    }
    const logPath = join(this.opts.dir, "dockerd.log");
    const logFd = openSync(logPath, "a");
    const argv = [
      `--net=/run/netns/${this.opts.hostNs}`,
      "--",
      "unshare",
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      this.script(),
    ];
    try {
      this.child = spawn("nsenter", argv, { env: cleanEnv(), stdio: ["ignore", logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    this.child.on("error", () => {}); // reported through the exit check below
    const started = Date.now();
    await waitFor(
      async () => {
        if (!this.child || hasExited(this.child)) {
          throw new DockerUnavailable(`dockerd exited at start-up: ${logTail(logPath)}`);
        }
        return (await ping(this.socket)) === 200;
      },
      { what: "dockerd's /_ping", timeoutMs: READY_TIMEOUT_MS, intervalMs: 100 },
    ).catch((err) => {
      if (this.child && hasExited(this.child)) {
        throw new DockerUnavailable(`dockerd exited at start-up: ${logTail(logPath)}`);
      }
      throw new DockerUnavailable(
        `${errorMessage(err)} after ${Date.now() - started} ms: ${logTail(logPath)}`,
      );
    });
  }

  /** Runs the docker CLI against this engine; throws with stderr on failure unless allowFail. */
  async docker(
    args: readonly string[],
    opts: { allowFail?: boolean; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const argv = this.cliArgv(args);
    const result = await run(argv, { env: this.env, timeoutMs: opts.timeoutMs ?? CLI_TIMEOUT_MS });
    if (result.code !== 0 && !opts.allowFail) {
      throw new Error(`docker ${args.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
    }
    return result;
  }

  /**
   * Stops dockerd by PID (SIGTERM, SIGKILL after a grace), removes its cgroup parent and its directory.
   * Idempotent; never throws; returns the problems it met. Remove containers first (docker rm -f) so
   * the engine does not wait on their stop timeouts.
   */
  stop(): Promise<string[]> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<string[]> {
    const problems: string[] = [];
    const child = this.child;
    if (child?.pid !== undefined && !hasExited(child)) {
      signalPid(child.pid, "SIGTERM");
      if (!(await waitForExit(child, STOP_GRACE_MS))) {
        problems.push(`dockerd ${child.pid} ignored SIGTERM for ${STOP_GRACE_MS} ms; SIGKILLed`);
        signalPid(child.pid, "SIGKILL");
        await waitForExit(child, 5_000);
      }
    }
    problems.push(...removeCgroupParent(this.opts.cgroupName));
    try {
      await rm(this.opts.dir, { recursive: true, force: true });
    } catch (err) {
      problems.push(`remove ${this.opts.dir}: ${errorMessage(err)}`);
    }
    return problems;
  }
}

/** GET /_ping's status on the engine's socket (0 when it does not answer). */
function ping(socketPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", headers: { Host: "docker" } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on("error", () => resolve(0));
    req.end();
  });
}

function logTail(path: string): string {
  try {
    const lines = readFileSync(path, "utf8").trim().split("\n");
    return lines.slice(-5).join(" | ") || "(empty log)";
  } catch {
    return "(no log)";
  }
}

/** rmdir `<hierarchy>/<name>` (deepest first) in every cgroup hierarchy: v2, and each v1 controller. */
function removeCgroupParent(name: string): string[] {
  const problems: string[] = [];
  const candidates = [join(CGROUP_ROOT, name)];
  for (const entry of readdirSync(CGROUP_ROOT, { withFileTypes: true })) {
    if (entry.isDirectory()) candidates.push(join(CGROUP_ROOT, entry.name, name));
  }
  const rmdirTree = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) rmdirTree(join(dir, entry.name));
    }
    rmdirSync(dir);
  };
  for (const dir of candidates) {
    if (!existsSync(dir)) continue;
    try {
      rmdirTree(dir);
    } catch (err) {
      problems.push(`remove cgroup ${dir}: ${errorMessage(err)}`);
    }
  }
  return problems;
}
