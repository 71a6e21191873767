/**
 * `trellis service ...` and `network connect --service` end to end: the CLI in-process against the
 * real service routes over a fake ServiceOperations on a temp unix socket (network connect and
 * disconnect are recorded by two stub routes). Asserts what reached the daemon, output, exit codes.
 */
import test, { type ExecutionContext } from "ava";
import type { Router } from "../../lib/api/http.js";
import type { ServiceResource } from "../../lib/cli/wire.js";
import { invalid, notFound } from "../../lib/common/errors.js";
import type { CreateServiceInput, ServiceView } from "../../lib/ingress/spec.js";
import { run } from "../helpers/cli-harness.js";
import { FakeServices, hexOf, serveServices } from "../helpers/fake-services.js";

// The CLI declares the reply shape itself; this fails to compile if it drifts from the daemon's type.
// (Drift in the request shows at run time: the route refuses unknown fields.)
const _viewIsResource = (v: ServiceView): ServiceResource => v;
void _viewIsResource;

interface NetCall {
  op: "connect" | "disconnect";
  network: string;
  body: unknown;
}

const CONTAINERS = [
  { ref: "c1", name: "web-1", addr: "10.0.1.3", health: "healthy" as const },
  { ref: "/run/netns/c2", name: "web-2", addr: "10.0.1.4", health: "unhealthy" as const },
  { ref: "pid:42", name: "web-3", addr: "10.0.1.5" },
];

async function daemon(t: ExecutionContext, opts: { failDisconnect?: boolean } = {}) {
  const ops = new FakeServices(CONTAINERS);
  const net: NetCall[] = [];
  const stubs = (router: Router) => {
    router.add("POST", /^\/networks\/([^/]+)\/(connect|disconnect)$/, (req, [network, op]) => {
      net.push({ op: op as NetCall["op"], network: network!, body: req.body });
      if (network === "nonet") throw notFound(`network ${network} not found`);
      if (op === "disconnect" && opts.failDisconnect) throw invalid("endpoint is busy");
      return { status: 200 };
    });
  };
  const socket = await serveServices(t, ops, stubs);
  const cli = (...argv: string[]) => run(["--socket", socket, ...argv]);
  return { ops, net, cli };
}

const base = (name: string, extra: Partial<CreateServiceInput> = {}): CreateServiceInput => ({
  name,
  networks: ["front"],
  endpointMode: "vip",
  ports: [],
  affinity: "none",
  labels: {},
  ...extra,
});

test("create: every flag reaches the daemon as CreateServiceInput; prints the id", async (t) => {
  const { ops, cli } = await daemon(t);
  const r = await cli(
    "service",
    "create",
    "--name",
    "web",
    "--network",
    "front",
    "--network=back",
    "--endpoint-mode",
    "vip",
    "-p",
    "8080:80",
    "--publish",
    "mode=host,5353:53/udp",
    "-p",
    "published=8443,target=443,protocol=tcp,mode=ingress",
    "--port",
    "9000",
    "--port=9001/udp",
    "--affinity",
    "client-ip",
    "--health-tcp",
    "80",
    "--label",
    "team=web",
    "--label",
    "tier",
  );
  t.deepEqual(r, { code: 0, stdout: `${hexOf("web")}\n`, stderr: "" });
  t.deepEqual(ops.calls, [
    {
      op: "createService",
      input: {
        name: "web",
        networks: ["front", "back"],
        endpointMode: "vip",
        ports: [
          { proto: "tcp", target: 80, published: 8080, mode: "ingress" },
          { proto: "udp", target: 53, published: 5353, mode: "host" },
          { proto: "tcp", target: 443, published: 8443, mode: "ingress" },
          { proto: "tcp", target: 9000, mode: "ingress" },
          { proto: "udp", target: 9001, mode: "ingress" },
        ],
        affinity: "client-ip",
        healthTcp: 80,
        labels: { team: "web", tier: "" },
      },
    },
  ]);
});

test("create: defaults for a minimal service", async (t) => {
  const { ops, cli } = await daemon(t);
  t.is((await cli("service", "create", "--name", "db", "--network", "front")).code, 0);
  t.deepEqual(ops.calls, [{ op: "createService", input: base("db") }]);
});

test("create: bad flags fail locally with one line and exit 1, nothing sent", async (t) => {
  const { ops, cli } = await daemon(t);
  const cases: Array<[string[], string]> = [
    [["--network", "front"], "--name is required"],
    [["--name", "", "--network", "front"], "--name is required"],
    [["--name", "web"], "--network is required (at least one)"],
    [["--name", "web", "--network", ""], 'invalid --network "": must not be empty'],
    [
      ["--name", "web", "--network", "n", "--endpoint-mode", "rr"],
      'invalid --endpoint-mode "rr": must be vip or dnsrr',
    ],
    [
      ["--name", "web", "--network", "n", "--affinity", "sticky"],
      'invalid --affinity "sticky": must be none or client-ip',
    ],
    [
      ["--name", "web", "--network", "n", "--health-tcp", "0"],
      'invalid --health-tcp "0": health port "0" must be a number from 1 to 65535',
    ],
    [
      ["--name", "web", "--network", "n", "--label", "=x"],
      'invalid --label "=x": expected KEY=VALUE with a non-empty KEY',
    ],
    [
      ["--name", "web", "--network", "n", "-p", "80"],
      'invalid --publish "80": expected [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp] (use --port TARGET for a port served at the VIP only)',
    ],
    [
      ["--name", "web", "--network", "n", "-p", "8080:80", "-p", "8080:81"],
      'invalid --publish "8080:81": published port 8080/tcp already used by --publish "8080:80"',
    ],
    [
      ["--name", "web", "--network", "n", "--port", "1:2"],
      'invalid --port "1:2": expected TARGET[/tcp|udp] (use --publish to publish a port)',
    ],
    [
      ["--name", "web", "--network", "n", "extra"],
      `"trellis service create" accepts no arguments, got 1 (see 'trellis service create --help')`,
    ],
    [["--name", "web", "--network", "n", "--bogus"], "unknown flag: --bogus"],
  ];
  for (const [flags, line] of cases) {
    t.deepEqual(
      await cli("service", "create", ...flags),
      { code: 1, stdout: "", stderr: `trellis: ${line}\n` },
      line,
    );
  }
  t.deepEqual(ops.calls, []);
});

test("create: the daemon's refusals print Error: and exit 1", async (t) => {
  const { ops, cli } = await daemon(t);
  t.deepEqual(await cli("service", "create", "--name", "-x", "--network", "n"), {
    code: 1,
    stdout: "",
    stderr: `Error: invalid service name "-x": 1 to 63 letters, digits, '_', '.', '-', starting with a letter or digit\n`,
  });
  t.deepEqual(
    await cli(
      "service",
      "create",
      "--name",
      "db",
      "--network",
      "n",
      "--endpoint-mode",
      "dnsrr",
      "-p",
      "5432:5432",
    ),
    {
      code: 1,
      stdout: "",
      stderr: "Error: Ports[0]: port published with ingress mode can't be used with dnsrr mode\n",
    },
  );
  t.is(
    (
      await cli(
        "service",
        "create",
        "--name",
        "db",
        "--network",
        "n",
        "--endpoint-mode",
        "dnsrr",
        "-p",
        "mode=host,5432:5432",
      )
    ).code,
    0,
  );
  t.deepEqual(await cli("service", "create", "--name", "db", "--network", "n"), {
    code: 1,
    stdout: "",
    stderr: "Error: service with name db already exists\n",
  });
  t.is(ops.calls.length, 2, "the invalid ones never reached the daemon");
});

/** web10 (vip, two networks, three backends, all kinds of ports), web2 (dnsrr, nothing). */
async function populated(t: ExecutionContext) {
  const d = await daemon(t);
  await d.ops.createService(
    base("web10", {
      networks: ["front", "back"],
      ports: [
        { proto: "tcp", target: 80, published: 8080, mode: "ingress" },
        { proto: "udp", target: 53, published: 53, mode: "host" },
        { proto: "tcp", target: 9000, mode: "ingress" },
      ],
    }),
  );
  await d.ops.createService(base("web2", { endpointMode: "dnsrr" }));
  for (const c of CONTAINERS) await d.ops.addBackend("web10", c.ref);
  d.ops.calls.length = 0;
  return d;
}

test("ls: table sorted by name with VIPs, healthy/total backends and ports; -q, --no-trunc, --json", async (t) => {
  const { ops, cli } = await populated(t);
  const [web10, web2] = [ops.getService("web10"), ops.getService("web2")];
  t.deepEqual(await cli("service", "ls"), {
    code: 0,
    stderr: "",
    stdout:
      "ID             NAME      MODE      VIPS                BACKENDS   PORTS\n" +
      `${web2.ID.slice(0, 12)}   web2      dnsrr     -                   0/0        \n` +
      `${web10.ID.slice(0, 12)}   web10     vip       10.0.1.2,10.1.1.2   2/3        *:8080->80/tcp, host:53->53/udp, 9000/tcp\n`,
  });
  t.is((await cli("service", "list", "-q")).stdout, `${web2.ID.slice(0, 12)}\n${web10.ID.slice(0, 12)}\n`);
  t.is((await cli("service", "ls", "-q", "--no-trunc")).stdout, `${web2.ID}\n${web10.ID}\n`);
  const json = await cli("service", "ls", "--json");
  t.is(json.code, 0);
  t.deepEqual(JSON.parse(json.stdout), [web10, web2]);
  t.deepEqual(await cli("service", "ls", "--json", "-q"), {
    code: 1,
    stdout: "",
    stderr: "trellis: --json and --quiet cannot be used together\n",
  });
  t.is((await cli("service", "ls", "extra")).code, 1);
});

test("ls: an empty list is just the header", async (t) => {
  const { cli } = await daemon(t);
  t.deepEqual(await cli("service", "ls"), {
    code: 0,
    stderr: "",
    stdout: "ID        NAME      MODE      VIPS      BACKENDS   PORTS\n",
  });
  t.is((await cli("service", "ls", "--json")).stdout, "[]\n");
});

test("inspect: 4-space JSON array of those found; missing ones reported, exit 1", async (t) => {
  const { ops, cli } = await populated(t);
  const web2 = ops.getService("web2");
  const ok = await cli("service", "inspect", "web2");
  t.deepEqual(ok, { code: 0, stderr: "", stdout: `${JSON.stringify([web2], null, 4)}\n` });
  const partial = await cli("service", "inspect", "web10", "nope", web2.ID.slice(0, 8), "--json");
  t.is(partial.code, 1);
  t.deepEqual(JSON.parse(partial.stdout), [ops.getService("web10"), web2]);
  t.is(partial.stderr, "Error: No such service: nope\n");
  t.deepEqual(await cli("service", "inspect", "a/b?c"), {
    code: 1,
    stdout: "[]\n",
    stderr: "Error: No such service: a/b?c\n",
  });
  t.is((await cli("service", "inspect")).code, 1);
});

test("rm: removes each, keeps going past failures, exit 1", async (t) => {
  const { ops, cli } = await populated(t);
  t.deepEqual(await cli("service", "rm", "web10", "ghost", "web2"), {
    code: 1,
    stdout: "web10\nweb2\n",
    stderr: "Error: service ghost not found\n",
  });
  t.deepEqual(
    ops.calls.map((c) => c.op === "removeService" && c.ref),
    ["web10", "ghost", "web2"],
  );
  t.deepEqual(ops.services, []);
  t.is((await cli("service", "remove")).code, 1);
});

test("add-backend / remove-backend: each container sent as typed; failures reported, the rest done", async (t) => {
  const { ops, cli } = await populated(t);
  await ops.removeBackend("web10", "pid:42");
  await ops.removeBackend("web10", "c1");
  ops.calls.length = 0;
  t.deepEqual(await cli("service", "add-backend", "web10", "pid:42", "ghost", "c1"), {
    code: 1,
    stdout: "pid:42\nc1\n",
    stderr: "Error: container ghost not found\n",
  });
  t.deepEqual(
    ops.getService("web10").Backends.map((b) => b.Name),
    ["web-2", "web-3", "web-1"],
  );
  t.deepEqual(await cli("service", "remove-backend", "web10", "/run/netns/c2", "c1"), {
    code: 0,
    stdout: "/run/netns/c2\nc1\n",
    stderr: "",
  });
  t.deepEqual(ops.calls, [
    { op: "addBackend", ref: "web10", container: "pid:42" },
    { op: "addBackend", ref: "web10", container: "ghost" },
    { op: "addBackend", ref: "web10", container: "c1" },
    { op: "removeBackend", ref: "web10", container: "/run/netns/c2" },
    { op: "removeBackend", ref: "web10", container: "c1" },
  ]);
  t.deepEqual(await cli("service", "add-backend", "nosvc", "c1"), {
    code: 1,
    stdout: "",
    stderr: "Error: service nosvc not found\n",
  });
  t.deepEqual(await cli("service", "add-backend", "web10", "c1", ""), {
    code: 1,
    stdout: "",
    stderr: 'trellis: invalid CONTAINER "": must not be empty\n',
  });
  t.deepEqual(await cli("service", "remove-backend", "web10"), {
    code: 1,
    stdout: "",
    stderr: `trellis: "trellis service remove-backend" requires at least 2 arguments, got 1 (see 'trellis service remove-backend --help')\n`,
  });
});

test("network connect --service: connect, then add the container as a backend", async (t) => {
  const { ops, net, cli } = await populated(t);
  await ops.removeBackend("web10", "pid:42");
  ops.calls.length = 0;
  t.deepEqual(await cli("network", "connect", "--service", "web10", "front", "pid:42"), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  t.deepEqual(
    net.map((c) => [c.op, c.network]),
    [["connect", "front"]],
  );
  t.deepEqual(ops.calls, [{ op: "addBackend", ref: "web10", container: "pid:42" }]);
});

test("network connect --service: a refused backend rolls the connect back and reports why", async (t) => {
  const { ops, net, cli } = await populated(t);
  t.deepEqual(await cli("network", "connect", "--service", "nosvc", "front", "c1"), {
    code: 1,
    stdout: "",
    stderr: "Error: service nosvc not found\n",
  });
  t.deepEqual(net, [
    { op: "connect", network: "front", body: net[0]!.body },
    { op: "disconnect", network: "front", body: { Container: "c1", Force: false } },
  ]);
  t.deepEqual(ops.calls, [{ op: "addBackend", ref: "nosvc", container: "c1" }]);
});

test("network connect --service: a failed rollback is reported too; a failed connect adds nothing", async (t) => {
  const { ops, net, cli } = await daemon(t, { failDisconnect: true });
  t.deepEqual(await cli("network", "connect", "--service", "nosvc", "front", "c1"), {
    code: 1,
    stdout: "",
    stderr: "trellis: c1 stays connected to front: endpoint is busy\nError: service nosvc not found\n",
  });
  t.deepEqual(
    net.map((c) => c.op),
    ["connect", "disconnect"],
  );
  t.deepEqual(await cli("network", "connect", "--service", "web", "nonet", "c1"), {
    code: 1,
    stdout: "",
    stderr: "Error: network nonet not found\n",
  });
  t.is(ops.calls.length, 1, "no add-backend after a failed connect");
  t.deepEqual(await cli("network", "connect", "--service", "", "front", "c1"), {
    code: 1,
    stdout: "",
    stderr: 'trellis: invalid --service "": must not be empty\n',
  });
  t.is(net.length, 3, "an empty --service is refused before connecting");
});

test("help: the service group and each verb", async (t) => {
  const group = await run(["service", "--help"]);
  t.is(group.code, 0);
  for (const verb of ["add-backend", "create", "inspect", "ls", "remove-backend", "rm"]) {
    t.regex(group.stdout, new RegExp(`\\n  ${verb} +\\S`), verb);
    const help = await run(["service", verb, "--help"]);
    t.is(help.code, 0, verb);
    t.regex(help.stdout, new RegExp(`^Usage: {2}trellis service ${verb} `), verb);
  }
  t.regex((await run(["--help"])).stdout, /\n {2}service +Manage services/);
  const create = (await run(["service", "create", "-h"])).stdout;
  t.regex(create, /-p, --publish \[mode=ingress\|host,\]PUBLISHED:TARGET\[\/tcp\|udp\] +Publish a port/);
  t.regex(create, / {4}--port TARGET\[\/tcp\|udp\] +A port served at the VIP only/);
  t.regex(create, /--endpoint-mode vip\|dnsrr .*\(default "vip"\)/);
  t.regex(
    (await run(["network", "connect", "-h"])).stdout,
    /--service SERVICE +Then make the container a backend/,
  );
  t.deepEqual(await run(["service", "scale"]), {
    code: 1,
    stdout: "",
    stderr: "trellis: unknown command \"trellis service scale\" (see 'trellis service --help')\n",
  });
});
