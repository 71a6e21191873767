/**
 * The CLI end to end against an in-process fake trellisd on a temp unix socket: request bodies,
 * output and exit codes. One test also runs bin/trellis as a real process.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { fakeDaemon, type Route, run, tempSocketPath } from "../helpers/cli-harness.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

const ID1 = "a".repeat(64);
const ID2 = "b".repeat(64);

function network(name: string, id: string, extra: Record<string, unknown> = {}) {
  return {
    Name: name,
    Id: id,
    Created: "2026-01-01T00:00:00Z",
    Scope: "local",
    Driver: "bridge",
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: {}, Config: [{ Subnet: "172.18.0.0/16", Gateway: "172.18.0.1" }] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
    ...extra,
  };
}

const NETWORKS = [network("web10", ID1), network("web2", ID2, { Driver: "overlay" })];

const byName: Route = (req) => {
  const m = /^\/networks\/([^/]+)$/.exec(req.url);
  const found = m && NETWORKS.find((n) => n.Name === decodeURIComponent(m[1]!) || n.Id === m[1]);
  if (req.method === "GET" && found) return { status: 200, body: found };
  if (req.method === "GET" && req.url === "/networks") return { status: 200, body: NETWORKS };
  if (req.method === "DELETE" && found) return { status: 204 };
  if (m) return { status: 404, body: { message: `network ${decodeURIComponent(m[1]!)} not found` } };
  return undefined;
};

test("create: sends the Docker body with IPAM pairing, opts and labels; prints the Id", async (t) => {
  const d = await fakeDaemon(() => ({ status: 201, body: { Id: ID1, Warning: "" } }));
  t.teardown(d.close);
  const r = await run([
    "--socket",
    d.socket,
    "network",
    "create",
    "--subnet=10.10.0.0/16",
    "--subnet",
    "fd00:10::/64",
    "--gateway",
    "fd00:10::1",
    "--gateway",
    "10.10.0.1",
    "--ip-range",
    "10.10.1.0/24",
    "--ipv6",
    "--internal",
    "-o",
    "com.trellis.bridge.name=br-app",
    "--label",
    "team=web",
    "--label",
    "tier",
    "app",
  ]);
  t.deepEqual(r, { code: 0, stdout: `${ID1}\n`, stderr: "" });
  t.deepEqual(d.requests, [
    {
      method: "POST",
      url: "/networks/create",
      body: {
        Name: "app",
        Driver: "bridge",
        CheckDuplicate: true,
        Internal: true,
        EnableIPv6: true,
        IPAM: {
          Driver: "default",
          Config: [
            { Subnet: "10.10.0.0/16", Gateway: "10.10.0.1", IPRange: "10.10.1.0/24" },
            { Subnet: "fd00:10::/64", Gateway: "fd00:10::1" },
          ],
          Options: {},
        },
        Options: { "com.trellis.bridge.name": "br-app" },
        Labels: { team: "web", tier: "" },
      },
    },
  ]);
});

test("create: minimal body; TRELLIS_SOCKET is used when --socket is absent", async (t) => {
  const d = await fakeDaemon(() => ({ status: 201, body: { Id: ID2, Warning: "subnet is large" } }));
  t.teardown(d.close);
  const r = await run(["network", "create", "-d", "bridge", "plain"], { env: { TRELLIS_SOCKET: d.socket } });
  t.deepEqual(r, { code: 0, stdout: `${ID2}\n`, stderr: "WARNING: subnet is large\n" });
  t.deepEqual(d.requests[0]?.body, {
    Name: "plain",
    Driver: "bridge",
    CheckDuplicate: true,
    Internal: false,
    EnableIPv6: false,
    IPAM: { Driver: "default", Config: [], Options: {} },
    Options: {},
    Labels: {},
  });
});

test("create: bad values fail locally with one line and exit 1, no request sent", async (t) => {
  const d = await fakeDaemon(() => ({ status: 201, body: { Id: ID1 } }));
  t.teardown(d.close);
  const cases: Array<[string[], string]> = [
    [
      ["--subnet", "10.0.0.0/33"],
      'trellis: invalid --subnet "10.0.0.0/33": prefix length must be between 0 and 32\n',
    ],
    [
      ["--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1"],
      'trellis: invalid --gateway "10.1.0.1": not inside any --subnet\n',
    ],
    [["--bogus"], "trellis: unknown flag: --bogus\n"],
    [["-o", "=x"], 'trellis: invalid --opt "=x": expected KEY=VALUE with a non-empty KEY\n'],
  ];
  for (const [flags, stderr] of cases) {
    t.deepEqual(await run(["--socket", d.socket, "network", "create", ...flags, "n"]), {
      code: 1,
      stdout: "",
      stderr,
    });
  }
  const noName = await run(["--socket", d.socket, "network", "create"]);
  t.is(noName.code, 1);
  t.is(
    noName.stderr,
    `trellis: "trellis network create" requires exactly 1 argument, got 0 (see 'trellis network create --help')\n`,
  );
  t.deepEqual(d.requests, []);
});

test("daemon errors: 4xx and 5xx print Error: <message> and exit 1", async (t) => {
  const d = await fakeDaemon((req) =>
    req.url === "/networks/create"
      ? { status: 409, body: { message: "network with name web already exists" } }
      : { status: 500, body: { message: "netlink: operation not permitted" } },
  );
  t.teardown(d.close);
  t.deepEqual(await run(["--socket", d.socket, "network", "create", "web"]), {
    code: 1,
    stdout: "",
    stderr: "Error: network with name web already exists\n",
  });
  t.deepEqual(await run(["--socket", d.socket, "network", "disconnect", "web", "c1"]), {
    code: 1,
    stdout: "",
    stderr: "Error: netlink: operation not permitted\n",
  });
});

test("unreachable daemon: exit 2 for a missing socket and for a path that refuses connections", async (t) => {
  const missing = path.join(os.tmpdir(), `trellis-cli-missing-${randomBytes(4).toString("hex")}.sock`);
  const r = await run(["--socket", missing, "network", "ls"]);
  t.is(r.code, 2);
  t.is(r.stdout, "");
  t.is(
    r.stderr,
    `trellis: cannot reach trellisd at ${missing}: no socket at that path (is trellisd running?) [ENOENT]\n`,
  );

  // connect(2) to a file that is not a listening socket fails with ECONNREFUSED.
  const plainFile = tempSocketPath();
  writeFileSync(plainFile, "");
  t.teardown(() => rm(plainFile, { force: true }));
  const refused = await run(["network", "inspect", "x"], { env: { TRELLIS_SOCKET: plainFile } });
  t.is(refused.code, 2);
  t.regex(refused.stderr, /^trellis: cannot reach trellisd at .*: connection refused .*\[ECONNREFUSED\]\n$/);
});

test("ls: docker table sorted by name, -q short ids, --json the daemon's array", async (t) => {
  const d = await fakeDaemon(byName);
  t.teardown(d.close);
  const table = await run(["--socket", d.socket, "network", "ls"]);
  t.deepEqual(table, {
    code: 0,
    stderr: "",
    stdout:
      "NETWORK ID     NAME      DRIVER    SCOPE\n" +
      "bbbbbbbbbbbb   web2      overlay   local\n" +
      "aaaaaaaaaaaa   web10     bridge    local\n",
  });
  t.is((await run(["--socket", d.socket, "network", "list", "-q"])).stdout, "bbbbbbbbbbbb\naaaaaaaaaaaa\n");
  t.is((await run(["--socket", d.socket, "network", "ls", "-q", "--no-trunc"])).stdout, `${ID2}\n${ID1}\n`);
  const json = await run(["--socket", d.socket, "network", "ls", "--json"]);
  t.is(json.code, 0);
  t.deepEqual(JSON.parse(json.stdout), NETWORKS);
  t.is((await run(["--socket", d.socket, "network", "ls", "extra"])).code, 1);
  t.true(d.requests.every((r) => r.method === "GET" && r.url === "/networks"));
});

test("inspect: 4-space JSON array of those found; missing ones reported, exit 1", async (t) => {
  const d = await fakeDaemon(byName);
  t.teardown(d.close);
  const ok = await run(["--socket", d.socket, "network", "inspect", "web10"]);
  t.deepEqual(ok, { code: 0, stderr: "", stdout: `${JSON.stringify([NETWORKS[0]], null, 4)}\n` });
  t.true(ok.stdout.startsWith('[\n    {\n        "Name": "web10",'));

  const partial = await run(["--socket", d.socket, "network", "inspect", "web2", "nope", ID1, "--json"]);
  t.is(partial.code, 1);
  t.deepEqual(JSON.parse(partial.stdout), [NETWORKS[1], NETWORKS[0]]);
  t.is(partial.stderr, "Error: No such network: nope\n");
  t.deepEqual(
    d.requests.slice(1).map((r) => r.url),
    ["/networks/web2", "/networks/nope", `/networks/${ID1}`],
  );

  const none = await run(["--socket", d.socket, "network", "inspect", "a/b?c"]);
  t.deepEqual(none, { code: 1, stdout: "[]\n", stderr: "Error: No such network: a/b?c\n" });
  t.is(d.requests.at(-1)?.url, "/networks/a%2Fb%3Fc", "names are escaped into one path segment");
});

test("rm: removes each, keeps going past failures, exit 1; -f ignores missing", async (t) => {
  const d = await fakeDaemon(byName);
  t.teardown(d.close);
  const r = await run(["--socket", d.socket, "network", "rm", "web10", "ghost", "web2"]);
  t.deepEqual(r, { code: 1, stdout: "web10\nweb2\n", stderr: "Error: network ghost not found\n" });
  t.deepEqual(
    d.requests.map((q) => `${q.method} ${q.url}`),
    ["DELETE /networks/web10", "DELETE /networks/ghost", "DELETE /networks/web2"],
  );
  t.deepEqual(await run(["--socket", d.socket, "network", "remove", "-f", "ghost", "web2"]), {
    code: 0,
    stdout: "web2\n",
    stderr: "",
  });
});

test("prune: -f skips the prompt; 'y' confirms; anything else sends nothing", async (t) => {
  const d = await fakeDaemon((req) =>
    req.method === "POST" && req.url === "/networks/prune"
      ? { status: 200, body: { NetworksDeleted: ["old1", "old2"] } }
      : undefined,
  );
  t.teardown(d.close);
  t.deepEqual(await run(["--socket", d.socket, "network", "prune", "-f"]), {
    code: 0,
    stdout: "Deleted Networks:\nold1\nold2\n",
    stderr: "",
  });
  const declined = await run(["--socket", d.socket, "network", "prune"], { stdin: "n\n" });
  t.is(declined.code, 0);
  t.is(declined.stdout, "");
  t.regex(declined.stderr, /Are you sure you want to continue\? \[y\/N\] $/);
  t.is((await run(["--socket", d.socket, "network", "prune"])).stdout, "", "no stdin means no");
  t.is(d.requests.length, 1);
  const accepted = await run(["--socket", d.socket, "network", "prune"], { stdin: "y\n" });
  t.is(accepted.stdout, "Deleted Networks:\nold1\nold2\n");
  t.is(d.requests.length, 2);
});

test("connect: body with addresses, aliases, endpoint name and publish specs", async (t) => {
  const d = await fakeDaemon(() => ({ status: 200 }));
  t.teardown(d.close);
  const r = await run([
    "--socket",
    d.socket,
    "network",
    "connect",
    "--ip",
    "10.10.0.5",
    "--ip6=fd00:10::5",
    "--alias",
    "db",
    "--alias=primary",
    "--name",
    "db-1",
    "-p",
    "5432:5432",
    "--publish",
    "127.0.0.1:5353:53/udp",
    "app net",
    "/run/netns/c1",
  ]);
  t.deepEqual(r, { code: 0, stdout: "", stderr: "" });
  t.deepEqual(d.requests, [
    {
      method: "POST",
      url: "/networks/app%20net/connect",
      body: {
        Container: "/run/netns/c1",
        EndpointConfig: {
          IPAMConfig: { IPv4Address: "10.10.0.5", IPv6Address: "fd00:10::5" },
          Aliases: ["db", "primary"],
        },
        Trellis: {
          Name: "db-1",
          Publish: [
            { Proto: "tcp", HostPort: 5432, ContainerPort: 5432 },
            { Proto: "udp", HostIp: "127.0.0.1", HostPort: 5353, ContainerPort: 53 },
          ],
        },
      },
    },
  ]);
});

test("connect: minimal body; invalid -p / --ip fail locally", async (t) => {
  const d = await fakeDaemon(() => ({ status: 200 }));
  t.teardown(d.close);
  t.is((await run(["--socket", d.socket, "network", "connect", "app", "pid:4242"])).code, 0);
  t.deepEqual(d.requests[0]?.body, {
    Container: "pid:4242",
    EndpointConfig: { IPAMConfig: {}, Aliases: [] },
    Trellis: { Publish: [] },
  });
  const bad = await run(["--socket", d.socket, "network", "connect", "-p", "70000:80", "app", "c1"]);
  t.deepEqual(bad, {
    code: 1,
    stdout: "",
    stderr: 'trellis: invalid --publish "70000:80": host port "70000" must be a number from 1 to 65535\n',
  });
  const badIp = await run(["--socket", d.socket, "network", "connect", "--ip", "fd00::1", "app", "c1"]);
  t.is(badIp.stderr, 'trellis: invalid --ip "fd00::1": not an IPv4 address\n');
  t.is((await run(["--socket", d.socket, "network", "connect", "app"])).code, 1);
  t.is(d.requests.length, 1);
});

test("disconnect: body with Force", async (t) => {
  const d = await fakeDaemon(() => ({ status: 200 }));
  t.teardown(d.close);
  t.is((await run(["--socket", d.socket, "network", "disconnect", "-f", "app", "c1"])).code, 0);
  t.is((await run(["network", "disconnect", "app", "c2", `--socket=${d.socket}`])).code, 0);
  t.deepEqual(
    d.requests.map((r) => [r.url, r.body]),
    [
      ["/networks/app/disconnect", { Container: "c1", Force: true }],
      ["/networks/app/disconnect", { Container: "c2", Force: false }],
    ],
  );
});

test("--socket after the verb overrides the global one and the environment", async (t) => {
  const d = await fakeDaemon(byName);
  t.teardown(d.close);
  const r = await run(["--socket", "/nonexistent.sock", "network", "ls", "-q", "--socket", d.socket], {
    env: { TRELLIS_SOCKET: "/also-nonexistent.sock" },
  });
  t.is(r.code, 0);
  t.is(d.requests.length, 1);
});

test("help, version and unknown commands", async (t) => {
  const top = await run([]);
  t.is(top.code, 0);
  t.regex(top.stdout, /^Usage: {2}trellis \[OPTIONS\] COMMAND/);
  t.regex(top.stdout, /network +Manage networks/);
  const group = await run(["network", "--help"]);
  t.regex(group.stdout, /prune +Remove all unused networks/);
  const verb = await run(["network", "connect", "-h"]);
  t.is(verb.code, 0);
  t.regex(verb.stdout, /-p, --publish \[HOST_IP:\]HOST_PORT:CONTAINER_PORT\[\/tcp\|udp\]/);
  t.regex((await run(["--version"])).stdout, /^trellis version \d+\.\d+\.\d+\n$/);
  t.deepEqual(await run(["netwrk", "ls"]), {
    code: 1,
    stdout: "",
    stderr: "trellis: unknown command \"netwrk\" (see 'trellis --help')\n",
  });
  t.deepEqual(await run(["network", "list2"]), {
    code: 1,
    stdout: "",
    stderr: "trellis: unknown command \"trellis network list2\" (see 'trellis network --help')\n",
  });
  t.is((await run(["--bogus", "network", "ls"])).stderr, "trellis: unknown flag: --bogus\n");
});

test("bin/trellis runs as a real process against the fake daemon", async (t) => {
  const d = await fakeDaemon(byName);
  t.teardown(d.close);
  const bin = path.join(REPO_ROOT, "bin", "trellis");
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(bin, ["--socket", d.socket, "network", "ls"], (err, stdout, stderr) => {
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
  t.deepEqual(result, {
    code: 0,
    stderr: "",
    stdout:
      "NETWORK ID     NAME      DRIVER    SCOPE\n" +
      "bbbbbbbbbbbb   web2      overlay   local\n" +
      "aaaaaaaaaaaa   web10     bridge    local\n",
  });
  const missing = await new Promise<number>((resolve) => {
    execFile(bin, ["--socket", `${d.socket}.missing`, "network", "ls"], (err) =>
      resolve(err ? Number(err.code) : 0),
    );
  });
  t.is(missing, 2);
});
