/**
 * Proves the test harness itself: the underlay carries traffic between hosts, container namespaces
 * exist, nothing lands in the root namespace, destroy() leaves no namespace and no process behind, and
 * LabDaemon drives a daemon (a stand-in here; the real trellisd when it is built).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { Lab, randomPrefix, repoRoot, waitFor } from "../helpers/lab.js";
import { isAlive, run } from "../helpers/proc.js";

async function rootLinkNames(): Promise<string[]> {
  const { stdout } = await run(["ip", "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
}

async function prefixed(prefix: string): Promise<string[]> {
  const { stdout } = await run(["ip", "netns", "list"]);
  return stdout.split("\n").filter((line) => line.startsWith(`${prefix}-`));
}

/** The first line the process prints on stdout. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    child.stdout?.on("data", (d: Buffer | string) => {
      text += d.toString();
      const nl = text.indexOf("\n");
      if (nl >= 0) resolve(text.slice(0, nl));
    });
    child.once("exit", () =>
      reject(new Error(`exited before printing a line (got ${JSON.stringify(text)})`)),
    );
  });
}

test("randomPrefix is tr + 4 hex digits", (t) => {
  t.regex(randomPrefix(), /^tr[0-9a-f]{4}$/);
});

test("two hosts ping each other over the lab underlay", async (t) => {
  const lab = await Lab.create(t);
  const [h1, h2] = await Promise.all([lab.addHost("h1"), lab.addHost("h2")]);
  t.is(h1.ns, `${lab.prefix}-h1`);
  t.not(h1.underlayIp, h2.underlayIp);
  t.regex(h1.underlayIp, /^10\.99\.0\.\d+$/);

  await waitFor(
    async () =>
      (await lab.exec(h1.ns, ["ping", "-c", "1", "-W", "1", h2.underlayIp], { allowFail: true })).code === 0,
    { timeoutMs: 10_000, what: "h1 to ping h2" },
  );
  const back = await lab.exec(h2.ns, ["ping", "-c", "2", "-i", "0.2", "-W", "1", h1.underlayIp]);
  t.regex(back.stdout, /2 received/);

  const addrs = JSON.parse((await lab.exec(h1.ns, ["ip", "-j", "-4", "addr", "show", "dev", "eth0"])).stdout);
  t.is(addrs[0].addr_info[0].local, h1.underlayIp);
  t.is(addrs[0].addr_info[0].prefixlen, 24);
  // the harness leaves ip_forward at the namespace default (off)
  const fwd = await lab.exec(h1.ns, ["cat", "/proc/sys/net/ipv4/ip_forward"]);
  t.is(fwd.stdout.trim(), "0");
});

test("a container namespace exists with only lo, up", async (t) => {
  const lab = await Lab.create(t);
  const c1 = await lab.addContainer("c1");
  t.is(c1, `${lab.prefix}-c1`);
  t.deepEqual(await prefixed(lab.prefix), [c1]);
  const links = JSON.parse((await lab.exec(c1, ["ip", "-j", "link", "show"])).stdout) as {
    ifname: string;
    flags: string[];
  }[];
  t.deepEqual(
    links.map((l) => l.ifname),
    ["lo"],
  );
  t.true(links[0]!.flags.includes("UP"));
});

test("exec reports failures, input and timeouts", async (t) => {
  const lab = await Lab.create(t);
  const c1 = await lab.addContainer("c1");
  const echoed = await lab.exec(c1, ["cat"], { input: "hello\n" });
  t.is(echoed.stdout, "hello\n");
  const err = await t.throwsAsync(lab.exec(c1, ["sh", "-c", "echo boom >&2; exit 3"]));
  t.regex(err!.message, /exited 3: boom/);
  const failed = await lab.exec(c1, ["sh", "-c", "exit 4"], { allowFail: true });
  t.is(failed.code, 4);
  const slow = await lab.exec(c1, ["sleep", "10"], { timeoutMs: 200, allowFail: true });
  t.is(slow.code, 124);
});

test("exec finds the system's nft, not the one npm puts on PATH (node_modules/.bin/nft)", async (t) => {
  const lab = await Lab.create(t);
  const c1 = await lab.addContainer("c1");
  const { stdout } = await lab.exec(c1, ["nft", "--version"]);
  t.regex(stdout, /^nftables v/);
});

test("nothing is created in the root namespace", async (t) => {
  const before = await rootLinkNames();
  const lab = await Lab.create(t);
  await Promise.all([lab.addHost("h1"), lab.addHost("h2"), lab.addContainer("c1")]);
  t.deepEqual(await rootLinkNames(), before);
});

test("destroy leaves no namespace, process or temp dir behind", async (t) => {
  const lab = await Lab.create(t);
  const h1 = await lab.addHost("h1");
  await lab.addHost("h2");
  const c1 = await lab.addContainer("c1");
  t.is((await prefixed(lab.prefix)).length, 4); // sw, h1, h2, c1

  const plain = lab.spawnIn(h1.ns, ["sleep", "300"]);
  // ignores SIGTERM: destroy() has to escalate to SIGKILL
  const stubborn = lab.spawnIn(c1, ["sh", "-c", 'trap "" TERM; echo ready; exec sleep 300']);
  // a grandchild the lab never saw: found through `ip netns pids`
  const parent = lab.spawnIn(h1.ns, ["sh", "-c", "sleep 300 & echo $!; wait"]);
  const [, grandchild] = await Promise.all([firstLine(stubborn), firstLine(parent).then(Number)]);
  const pids = [plain.pid!, stubborn.pid!, parent.pid!, grandchild];
  t.true(pids.every(isAlive), "all helper processes run before destroy");

  await lab.destroy();
  t.deepEqual(await prefixed(lab.prefix), []);
  t.deepEqual(pids.filter(isAlive), [], "no helper process survives destroy");
  t.false(existsSync(lab.dir));
  await t.notThrowsAsync(lab.destroy(), "destroy is idempotent");
});

/** A stand-in for trellisd: same flags, answers /_ping and echoes other requests; exits 0 on SIGTERM. */
const STUB_DAEMON = `
import { createServer } from "node:http";
import { readlinkSync, rmSync } from "node:fs";
const args = process.argv.slice(2);
const flag = (name) => args[args.indexOf(name) + 1];
if (args.includes("--refuse")) {
  console.log(JSON.stringify({ level: "fatal", msg: "stub refuses to start" }));
  process.exit(3);
}
const socket = flag("--socket");
rmSync(socket, { force: true });
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    if (req.url === "/_ping") return res.end("OK");
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url, body, stateDir: flag("--state-dir"),
      netns: readlinkSync("/proc/self/ns/net") }));
  });
});
server.listen(socket, () => console.log(JSON.stringify({ msg: "listening", socket })));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;

test("LabDaemon with a stand-in daemon: ready, api, kill, restart, logs", async (t) => {
  const lab = await Lab.create(t);
  const h1 = await lab.addHost("h1");
  const entry = join(lab.dir, "stub-daemon.mjs");
  await writeFile(entry, STUB_DAEMON);

  const d = await lab.startDaemon(h1, { entry });
  t.true(isAlive(d.pid));
  const ping = await d.api("GET", "/_ping");
  t.deepEqual(ping, { status: 200, body: "OK" });
  const echo = await d.api("POST", "/networks/create", { Name: "n1" });
  t.is(echo.status, 200);
  t.is(echo.body.method, "POST");
  t.deepEqual(JSON.parse(echo.body.body), { Name: "n1" });
  t.is(echo.body.stateDir, d.stateDir);
  const raw = await d.api("POST", "/x", undefined, { rawBody: "{not json" });
  t.is(raw.body.body, "{not json");
  // it runs inside the host's namespace
  const hostNs = (await lab.exec(h1.ns, ["readlink", "/proc/self/ns/net"])).stdout.trim();
  t.is(echo.body.netns, hostNs);
  t.regex(d.logs(), /"msg":"listening"/);

  const firstPid = d.pid;
  t.is(await d.kill(), 0);
  t.false(isAlive(firstPid));
  await d.restart();
  t.not(d.pid, firstPid);
  t.is((await d.api("GET", "/_ping")).status, 200);
  t.is(await d.kill("SIGKILL"), null);
});

test("startDaemon fails with the daemon's logs when it exits early", async (t) => {
  const lab = await Lab.create(t);
  const h1 = await lab.addHost("h1");
  const entry = join(lab.dir, "stub-daemon.mjs");
  await writeFile(entry, STUB_DAEMON);
  const err = await t.throwsAsync(lab.startDaemon(h1, { entry, args: ["--refuse"] }));
  t.regex(err!.message, /exited before answering \/_ping/);
  t.regex(err!.message, /stub refuses to start/);
});

const haveTrellisd =
  existsSync(join(repoRoot(), "bin/trellisd")) && existsSync(join(repoRoot(), "dist/lib/daemon/main.js"));

(haveTrellisd ? test : test.skip)(
  "the real trellisd starts in a host namespace and stops on SIGTERM",
  async (t) => {
    const lab = await Lab.create(t);
    const h1 = await lab.addHost("h1");
    const d = await lab.startDaemon(h1);
    try {
      t.is((await d.api("GET", "/_ping")).status, 200);
      const ls = await d.cli(["network", "ls"]);
      t.is(ls.code, 0);
      t.is(await d.kill("SIGTERM"), 0);
      await d.restart();
      t.is((await d.api("GET", "/_ping")).status, 200);
    } catch (err) {
      t.log(d.logs().slice(-8000));
      throw err;
    }
  },
);
