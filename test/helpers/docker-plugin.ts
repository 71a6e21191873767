/**
 * A lab host running both a Docker engine and trellisd as its network plugin: dockerd inside the
 * host's namespace with the host's own plugin directory (LabDockerd), trellisd in the same
 * namespace serving `--docker-plugin` in that directory (so the engine's driver "trellis" is this
 * host's trellisd), and a busybox image made with `docker import`. Teardown (ava runs it before the
 * lab's) removes the containers, stops dockerd by PID and removes its directories.
 */
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import { LabDockerd } from "./dockerd.js";
import type { Lab, LabDaemon, LabHost } from "./lab.js";
import { type RunResult, run } from "./proc.js";

export const IMAGE = "bb:latest";
const BUSYBOX = "/bin/busybox";

export interface DockerHost {
  host: LabHost;
  daemon: LabDaemon;
  engine: LabDockerd;
  /** the docker CLI against this host's engine; throws with stderr unless allowFail */
  docker(args: string[], opts?: { allowFail?: boolean; timeoutMs?: number }): Promise<RunResult>;
}

export interface DockerHostOptions {
  /** extra trellisd flags (cluster flags for overlays), given the host (its underlay address) */
  daemonArgs?: (host: LabHost) => string[];
}

/** A rootfs of busybox with every applet linked (sh, ping, nslookup, httpd, wget, ...), as a tar. */
export async function busyboxImage(lab: Lab): Promise<string> {
  const tarball = join(lab.dir, "busybox.tar");
  if (existsSync(tarball)) return tarball;
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing (Debian: busybox-static)`);
  const rootfs = join(lab.dir, "busybox-rootfs");
  for (const dir of ["bin", "etc", "tmp", "www"]) mkdirSync(join(rootfs, dir), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
  const list = await run([BUSYBOX, "--list"]);
  for (const applet of list.stdout.split("\n").filter((a) => /^[a-z0-9[_.-]+$/.test(a))) {
    if (applet !== "busybox") symlinkSync("busybox", join(rootfs, "bin", applet));
  }
  const res = await run(["tar", "-C", rootfs, "-cf", tarball, "."]);
  if (res.code !== 0) throw new Error(`tar of the busybox rootfs failed: ${res.stderr.trim()}`);
  return tarball;
}

export async function dockerHost(
  t: ExecutionContext,
  lab: Lab,
  name: string,
  opts: DockerHostOptions = {},
): Promise<DockerHost> {
  const host = await lab.addHost(name);
  const pluginDir = join(lab.dir, `${name}-plugins`);
  const dockerDir = join(lab.dir, `${name}-docker`);
  mkdirSync(pluginDir, { recursive: true });
  const engineSocket = join(dockerDir, "docker.sock");
  const daemon = await lab.startDaemon(host, {
    args: [
      "--docker-plugin-socket",
      join(pluginDir, "trellis.sock"),
      "--docker-engine-socket",
      engineSocket,
      ...(opts.daemonArgs?.(host) ?? []),
    ],
  });
  const engine = await LabDockerd.start({
    hostNs: host.ns,
    dir: dockerDir,
    cgroupName: `trellis-test-${lab.prefix}-${name}`,
    pluginDir,
  });
  t.teardown(async () => {
    const ids = (await engine.docker(["ps", "-aq"], { allowFail: true })).stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await engine.docker(["rm", "-f", ...ids], { allowFail: true });
    for (const problem of await engine.stop()) console.error(`dockerd on ${name}: ${problem}`);
  });
  await engine.docker(["import", await busyboxImage(lab), IMAGE]);
  return { host, daemon, engine, docker: (args, o) => engine.docker(args, o) };
}

/** `docker run -d` of a busybox container serving its name over HTTP on port 80; returns its IP. */
export async function runWeb(
  h: DockerHost,
  net: string,
  name: string,
  extra: string[] = [],
): Promise<string> {
  const script = `echo ${name} > /www/index.html && exec httpd -f -p 80 -h /www`;
  await h.docker(["run", "-d", "--name", name, "--network", net, ...extra, IMAGE, "sh", "-c", script]);
  return ipIn(h, name, net);
}

/** `docker run -d` of a container that just sleeps; returns its IP on `net`. */
export async function runSleeper(h: DockerHost, net: string, name: string, extra: string[] = []) {
  await h.docker(["run", "-d", "--name", name, "--network", net, ...extra, IMAGE, "sleep", "600"]);
  return ipIn(h, name, net);
}

export async function ipIn(h: DockerHost, container: string, net: string): Promise<string> {
  const format = `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`;
  return (await h.docker(["inspect", "-f", format, container])).stdout.trim();
}

/** Runs a command in a container; the result, never a throw. */
export function dexec(h: DockerHost, container: string, argv: string[], timeoutMs = 15_000) {
  return h.docker(["exec", container, ...argv], { allowFail: true, timeoutMs });
}

/** True when `from` gets a ping reply from `target` (an IP or a name). */
export async function dping(h: DockerHost, from: string, target: string): Promise<boolean> {
  return (await dexec(h, from, ["ping", "-c", "1", "-W", "2", target])).code === 0;
}

/** An HTTP/1.0 GET of / with busybox nc (busybox-static's wget crashes); the body's last line or "". */
export const HTTP_GET = (target: string, port: number, nc = "nc") =>
  `printf 'GET / HTTP/1.0\r\n\r\n' | ${nc} -w 3 ${target} ${port}`;

export function lastLine(out: string): string {
  return out.trim().split("\n").pop()?.trim() ?? "";
}

/** The same GET from a lab namespace (a lab host or a trellis-attached netns). */
export async function nsGet(lab: Lab, ns: string, target: string, port = 80): Promise<string> {
  const r = await lab.exec(ns, ["busybox", "sh", "-c", HTTP_GET(target, port, "busybox nc")], {
    allowFail: true,
    timeoutMs: 10_000,
  });
  return r.code === 0 && r.stdout.startsWith("HTTP/1.") ? lastLine(r.stdout) : "";
}

/** What an HTTP GET of http://target:port/ from container `from` returns ("" on failure). */
export async function dget(h: DockerHost, from: string, target: string, port = 80): Promise<string> {
  const r = await dexec(h, from, ["sh", "-c", HTTP_GET(target, port)]);
  return r.code === 0 && r.stdout.startsWith("HTTP/1.") ? lastLine(r.stdout) : "";
}
