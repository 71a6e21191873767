/**
 * The two things being compared, behind one shape: "attach this container to benchnet, then detach
 * it", at the Engine API and through the CLI. trellis attaches a lab netns; Docker attaches a running
 * busybox container that sits on a first user-defined network.
 */
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { Lab, LabDaemon } from "../../test/helpers/lab.js";
import { nodeCommand } from "../../test/helpers/lab-daemon.js";
import { cleanEnv, run } from "../../test/helpers/proc.js";
import type { BenchDockerd } from "./dockerd.js";
import { UnixHttpClient } from "./unix-http.js";

export type Engine = "trellis" | "docker";
export type Operation = "connect" | "disconnect";

/** Both engines serve the same Engine API version; the same versioned paths go to both. */
const API_PREFIX = "/v1.41";
export const BENCH_NETWORK = "benchnet";
const BENCH_SUBNET = "10.80.0.0/16";
/** Docker's target container starts here, so benchnet is its second network. */
const DOCKER_FIRST_NETWORK = "firstnet";
const DOCKER_FIRST_SUBNET = "10.81.0.0/24";
const DOCKER_IMAGE = "bb:latest";
const DOCKER_TARGET = "target";
const BUSYBOX = "/bin/busybox";

export interface AttachTarget {
  engine: Engine;
  /** One kept-alive connection to the engine's API socket. */
  api: UnixHttpClient;
  /** The API request for an operation. */
  request(op: Operation): { method: string; path: string; body: unknown };
  /** The CLI command line for an operation, and its environment. */
  cli(op: Operation): { argv: string[]; env: NodeJS.ProcessEnv };
  /** A CLI command line that starts and exits without talking to the engine (`--version`). */
  cliFloor(): { argv: string[]; env: NodeJS.ProcessEnv };
  /** A process inside the container's network namespace (whose /proc/PID/net/dev shows its links). */
  containerPid: number;
  /** A process inside the engine's host namespace (the daemon). */
  hostPid: number;
}

function apiRequest(container: string) {
  return (op: Operation) => ({
    method: "POST",
    path: `${API_PREFIX}/networks/${BENCH_NETWORK}/${op}`,
    body:
      op === "connect"
        ? { Container: container, EndpointConfig: {} }
        : { Container: container, Force: false },
  });
}

/** trellis: a fresh lab container (netns) with a sleeper inside to watch its links, and benchnet. */
export async function trellisTarget(lab: Lab, daemon: LabDaemon): Promise<AttachTarget> {
  const api = new UnixHttpClient(daemon.socket);
  await api.ok("POST", `${API_PREFIX}/networks/create`, {
    Name: BENCH_NETWORK,
    IPAM: { Config: [{ Subnet: BENCH_SUBNET }] },
  });
  const ns = await lab.addContainer("c1");
  const sleeper = lab.spawnIn(ns, ["sleep", "infinity"]);
  if (sleeper.pid === undefined) throw new Error(`could not start a sleeper in ${ns}`);
  const entry = join(lab.repoRoot, "bin", "trellis");
  return {
    engine: "trellis",
    api,
    request: apiRequest(ns),
    cli: (op) => ({
      argv: [...nodeCommand(entry), "--socket", daemon.socket, "network", op, BENCH_NETWORK, ns],
      env: cleanEnv(),
    }),
    cliFloor: () => ({ argv: [...nodeCommand(entry), "--version"], env: cleanEnv() }),
    containerPid: sleeper.pid,
    hostPid: daemon.pid,
  };
}

/**
 * Docker: a busybox image built offline from /bin/busybox, two user-defined bridge networks and a
 * running container on the first (Docker refuses to connect a container in network mode "none").
 */
export async function dockerTarget(engine: BenchDockerd, workDir: string): Promise<AttachTarget> {
  const tarball = await busyboxTarball(workDir);
  await engine.docker(["import", tarball, DOCKER_IMAGE]);
  await engine.docker(["network", "create", "--subnet", DOCKER_FIRST_SUBNET, DOCKER_FIRST_NETWORK]);
  await engine.docker(["network", "create", "--subnet", BENCH_SUBNET, BENCH_NETWORK]);
  await engine.docker([
    "run",
    "-d",
    "--network",
    DOCKER_FIRST_NETWORK,
    "--name",
    DOCKER_TARGET,
    DOCKER_IMAGE,
    "sleep",
    "1000000",
  ]);
  const inspected = await engine.docker(["inspect", "-f", "{{.State.Pid}}", DOCKER_TARGET]);
  const pid = Number(inspected.stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`docker inspect gave no PID: ${inspected.stdout}`);
  return {
    engine: "docker",
    api: engine.api,
    request: apiRequest(DOCKER_TARGET),
    cli: (op) => ({
      argv: engine.cliArgv(["network", op, BENCH_NETWORK, DOCKER_TARGET]),
      env: engine.cliEnv(),
    }),
    cliFloor: () => ({ argv: [engine.dockerCli, "--version"], env: engine.cliEnv() }),
    containerPid: pid,
    hostPid: engine.pid,
  };
}

/** Removes the target container (SIGKILL), so stopping dockerd does not wait out its stop timeout. */
export async function removeDockerTarget(engine: BenchDockerd): Promise<void> {
  await engine.docker(["rm", "-f", DOCKER_TARGET], { allowFail: true });
}

/** A rootfs holding /bin/busybox (static) with the applets the target needs, as a tar file. */
async function busyboxTarball(workDir: string): Promise<string> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing (Debian: busybox-static)`);
  const rootfs = join(workDir, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
  for (const applet of ["sh", "sleep", "ip", "cat"]) symlinkSync("busybox", join(rootfs, "bin", applet));
  const tarball = join(workDir, "busybox.tar");
  const res = await run(["tar", "-C", rootfs, "-cf", tarball, "."]);
  if (res.code !== 0) throw new Error(`tar of the busybox rootfs failed: ${res.stderr.trim()}`);
  return tarball;
}
