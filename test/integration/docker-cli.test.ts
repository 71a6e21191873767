/**
 * The real docker CLI (Debian's docker.io) drives trellisd through its Docker-compatible API:
 * `docker -H unix://SOCKET network create|ls|inspect|connect|disconnect|rm`.
 */
import { existsSync } from "node:fs";
import test from "ava";
import { Lab } from "../helpers/lab.js";
import { ping } from "../helpers/net.js";
import { run } from "../helpers/proc.js";

const DOCKER = ["/usr/bin/docker", "/usr/local/bin/docker"].find((p) => existsSync(p));

test("the docker CLI creates, lists, inspects, connects, disconnects and removes trellis networks", async (t) => {
  if (!DOCKER) {
    t.fail("docker CLI not installed (scripts/setup.sh installs docker.io)");
    return;
  }
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  const docker = async (...args: string[]) => {
    const r = await run([DOCKER, "-H", `unix://${d.socket}`, ...args], { timeoutMs: 20_000 });
    return { ...r, stdout: r.stdout.trim() };
  };
  const version = await docker("version", "--format", "{{.Server.APIVersion}}");
  t.is(version.code, 0, version.stderr);
  t.is(version.stdout, "1.41");

  const created = await docker(
    "network",
    "create",
    "--subnet",
    "10.90.0.0/24",
    "--label",
    "via=docker",
    "dnet",
  );
  t.is(created.code, 0, created.stderr);
  t.regex(created.stdout, /^[0-9a-f]{64}$/);
  const ls = await docker("network", "ls", "--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}");
  t.is(ls.stdout, `${created.stdout.slice(0, 12)} dnet bridge local`);
  const filtered = await docker("network", "ls", "-q", "--filter", "label=via=docker");
  t.is(filtered.stdout, created.stdout.slice(0, 12));

  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  t.is((await docker("network", "connect", "--ip", "10.90.0.50", "--alias", "db", "dnet", c1)).code, 0);
  t.is((await docker("network", "connect", "dnet", c2)).code, 0);
  const inspect = await docker(
    "network",
    "inspect",
    "dnet",
    "--format",
    "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
  );
  t.true(inspect.stdout.includes(`${c1}=10.90.0.50/24`), inspect.stdout);
  t.true(await ping(lab, c2, "10.90.0.50"));

  const dup = await docker("network", "create", "--subnet", "10.90.0.0/25", "dnet2");
  t.not(dup.code, 0);
  t.regex(dup.stderr, /overlaps/);

  const rmBusy = await docker("network", "rm", "dnet");
  t.not(rmBusy.code, 0);
  t.regex(rmBusy.stderr, /connected endpoint/);

  t.is((await docker("network", "disconnect", "dnet", c1)).code, 0);
  t.is((await docker("network", "disconnect", "dnet", c2)).code, 0);
  const rm = await docker("network", "rm", "dnet");
  t.is(rm.code, 0, rm.stderr);
  t.is((await docker("network", "ls", "-q")).stdout, "");
});
