/**
 * The service routes through serve() on a temp unix socket against a fake ServiceOperations:
 * status codes, the mapping of bodies to CreateServiceInput, every validation error (and that
 * nothing reached the daemon then), error mapping from the operations, and the /v1.NN prefix.
 * The body parser alone, under fast-check: service-validate.test.ts.
 */
import { request as httpRequest } from "node:http";
import test from "ava";
import { forbidden } from "../../lib/common/errors.js";
import type { CreateServiceInput, ServiceView } from "../../lib/ingress/spec.js";
import { FakeServices, serveServices, viewOf } from "../helpers/fake-services.js";

interface HttpResult {
  status: number;
  body: unknown;
}

function call(socketPath: string, method: string, path: string, body?: unknown): Promise<HttpResult> {
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const r = httpRequest({ socketPath, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, body: text === "" ? undefined : JSON.parse(text) });
      });
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(payload);
  });
}

const CONTAINERS = [
  { ref: "c1", name: "web-1", addr: "10.0.1.3", health: "healthy" as const },
  { ref: "/run/netns/c2", name: "web-2", addr: "10.0.1.4" },
];

async function setup(t: Parameters<typeof serveServices>[0]) {
  const ops = new FakeServices(CONTAINERS);
  const socket = await serveServices(t, ops);
  return {
    ops,
    socket,
    call: (method: string, path: string, body?: unknown) => call(socket, method, path, body),
  };
}

test("create: full body mapped to CreateServiceInput, 201 with the view", async (t) => {
  const { ops, call } = await setup(t);
  const r = await call("POST", "/trellis/services/create", {
    Name: "web",
    Networks: ["front", "back"],
    EndpointMode: "vip",
    Ports: [
      { Protocol: "udp", TargetPort: 53, PublishedPort: 5353, PublishMode: "host" },
      { TargetPort: 80, PublishedPort: 8080 },
      { TargetPort: 9000 },
    ],
    Affinity: "client-ip",
    HealthTcp: 80,
    Labels: { team: "web" },
  });
  const input: CreateServiceInput = {
    name: "web",
    networks: ["front", "back"],
    endpointMode: "vip",
    ports: [
      { proto: "udp", target: 53, published: 5353, mode: "host" },
      { proto: "tcp", target: 80, published: 8080, mode: "ingress" },
      { proto: "tcp", target: 9000, mode: "ingress" },
    ],
    affinity: "client-ip",
    healthTcp: 80,
    labels: { team: "web" },
  };
  t.deepEqual(ops.calls, [{ op: "createService", input }]);
  t.deepEqual(r, { status: 201, body: viewOf(input, 1) });
});

test("create: defaults for every optional field; null counts as absent", async (t) => {
  const { ops, call } = await setup(t);
  t.is((await call("POST", "/trellis/services/create", { Name: "a", Networks: ["n"] })).status, 201);
  const nulls = {
    Name: "b",
    Networks: ["n"],
    EndpointMode: null,
    Ports: null,
    Affinity: null,
    HealthTcp: null,
  };
  t.is((await call("POST", "/trellis/services/create", { ...nulls, Labels: null })).status, 201);
  const defaults = { networks: ["n"], endpointMode: "vip", ports: [], affinity: "none", labels: {} };
  t.deepEqual(ops.calls, [
    { op: "createService", input: { name: "a", ...defaults } },
    { op: "createService", input: { name: "b", ...defaults } },
  ]);
});

test("create: dnsrr accepts host-mode and VIP-only ports", async (t) => {
  const { ops, call } = await setup(t);
  const r = await call("POST", "/trellis/services/create", {
    Name: "db",
    Networks: ["n"],
    EndpointMode: "dnsrr",
    Ports: [{ TargetPort: 5432, PublishedPort: 5432, PublishMode: "host" }, { TargetPort: 5433 }],
  });
  t.is(r.status, 201);
  t.deepEqual(
    (r.body as ServiceView).VirtualIPs.map((v) => v.Addr),
    [undefined],
    "no VIP in dnsrr mode",
  );
  t.is(ops.calls.length, 1);
});

const INVALID: Array<[string, unknown, string]> = [
  ["no body", undefined, "request body must be a JSON object"],
  ["array body", [], "request body must be a JSON object"],
  [
    "unknown field",
    { Name: "a", Networks: ["n"], Mode: "vip" },
    'unknown field "Mode" (expected Name, Networks, EndpointMode, Ports, Affinity, HealthTcp, Labels)',
  ],
  ["no name", { Networks: ["n"] }, "Name is required"],
  ["empty name", { Name: "", Networks: ["n"] }, "Name is required"],
  ["name not a string", { Name: 7, Networks: ["n"] }, "Name must be a string"],
  [
    "bad name",
    { Name: "-web", Networks: ["n"] },
    `invalid service name "-web": 1 to 63 letters, digits, '_', '.', '-', starting with a letter or digit`,
  ],
  [
    "long name",
    { Name: "a".repeat(64), Networks: ["n"] },
    `invalid service name "${"a".repeat(64)}": 1 to 63 letters, digits, '_', '.', '-', starting with a letter or digit`,
  ],
  ["no networks", { Name: "a" }, "Networks must be a non-empty list of network names or ids"],
  [
    "empty networks",
    { Name: "a", Networks: [] },
    "Networks must be a non-empty list of network names or ids",
  ],
  [
    "networks not a list",
    { Name: "a", Networks: "n" },
    "Networks must be a non-empty list of network names or ids",
  ],
  ["empty network", { Name: "a", Networks: ["n", " "] }, "Networks[1] must be a non-empty string"],
  ["network not a string", { Name: "a", Networks: [3] }, "Networks[0] must be a non-empty string"],
  ["duplicate network", { Name: "a", Networks: ["n", "m", "n"] }, 'Networks[2]: network "n" is listed twice'],
  [
    "bad endpoint mode",
    { Name: "a", Networks: ["n"], EndpointMode: "VIP" },
    "EndpointMode must be vip or dnsrr",
  ],
  ["bad affinity", { Name: "a", Networks: ["n"], Affinity: "source" }, "Affinity must be none or client-ip"],
  ["ports not a list", { Name: "a", Networks: ["n"], Ports: {} }, "Ports must be a list"],
  ["port not an object", { Name: "a", Networks: ["n"], Ports: [80] }, "Ports[0] must be a JSON object"],
  [
    "unknown port field",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80, Published: 8080 }] },
    'unknown field "Published" in Ports[0] (expected Protocol, TargetPort, PublishedPort, PublishMode)',
  ],
  [
    "no target",
    { Name: "a", Networks: ["n"], Ports: [{ PublishedPort: 80 }] },
    "Ports[0].TargetPort must be a port number from 1 to 65535",
  ],
  [
    "target 0",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 0 }] },
    "Ports[0].TargetPort must be a port number from 1 to 65535",
  ],
  [
    "target too big",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 65536 }] },
    "Ports[0].TargetPort must be a port number from 1 to 65535",
  ],
  [
    "target fraction",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80.5 }] },
    "Ports[0].TargetPort must be a port number from 1 to 65535",
  ],
  [
    "target string",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: "80" }] },
    "Ports[0].TargetPort must be a port number from 1 to 65535",
  ],
  [
    "published 0",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80 }, { TargetPort: 81, PublishedPort: 0 }] },
    "Ports[1].PublishedPort must be a port number from 1 to 65535",
  ],
  [
    "bad protocol",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80, Protocol: "sctp" }] },
    "Ports[0].Protocol must be tcp or udp",
  ],
  [
    "bad publish mode",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80, PublishedPort: 80, PublishMode: "global" }] },
    "Ports[0].PublishMode must be ingress or host",
  ],
  [
    "mode without published",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80, PublishMode: "host" }] },
    "Ports[0]: PublishMode needs a PublishedPort (a port without one is served at the VIP only)",
  ],
  [
    "published twice",
    {
      Name: "a",
      Networks: ["n"],
      Ports: [
        { TargetPort: 80, PublishedPort: 8080 },
        { TargetPort: 81, PublishedPort: 8080, PublishMode: "host" },
      ],
    },
    "Ports[1]: published port 8080/tcp is already used by Ports[0]",
  ],
  [
    "VIP-only port after a published one",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80, PublishedPort: 8080 }, { TargetPort: 80 }] },
    "Ports[1]: VIP-only target port 80/tcp duplicates Ports[0]",
  ],
  [
    "VIP-only port before a published one",
    { Name: "a", Networks: ["n"], Ports: [{ TargetPort: 80 }, { TargetPort: 80, PublishedPort: 8080 }] },
    "Ports[0]: VIP-only target port 80/tcp duplicates Ports[1]",
  ],
  [
    "VIP-only port twice",
    {
      Name: "a",
      Networks: ["n"],
      Ports: [
        { TargetPort: 80, Protocol: "udp" },
        { TargetPort: 80, Protocol: "udp" },
      ],
    },
    "Ports[0]: VIP-only target port 80/udp duplicates Ports[1]",
  ],
  [
    "dnsrr with ingress",
    {
      Name: "a",
      Networks: ["n"],
      EndpointMode: "dnsrr",
      Ports: [{ TargetPort: 81 }, { TargetPort: 80, PublishedPort: 8080 }],
    },
    "Ports[1]: port published with ingress mode can't be used with dnsrr mode",
  ],
  [
    "health 0",
    { Name: "a", Networks: ["n"], HealthTcp: 0 },
    "HealthTcp must be a port number from 1 to 65535",
  ],
  [
    "health string",
    { Name: "a", Networks: ["n"], HealthTcp: "80" },
    "HealthTcp must be a port number from 1 to 65535",
  ],
  ["labels a list", { Name: "a", Networks: ["n"], Labels: ["a=b"] }, "Labels must be a JSON object"],
  ["label not a string", { Name: "a", Networks: ["n"], Labels: { a: 1 } }, 'Labels["a"] must be a string'],
];

test("create: each invalid body is a 400 naming the field, and nothing reaches the daemon", async (t) => {
  const { ops, call } = await setup(t);
  for (const [what, body, message] of INVALID) {
    t.deepEqual(
      await call("POST", "/trellis/services/create", body),
      { status: 400, body: { message } },
      what,
    );
  }
  const notJson = await call("POST", "/trellis/services/create", "{not json");
  t.is(notJson.status, 400);
  t.regex((notJson.body as { message: string }).message, /^invalid JSON body: /);
  t.deepEqual(ops.calls, []);
});

test("same ports on different protocols, and one target behind two published ports, are fine", async (t) => {
  const { ops, call } = await setup(t);
  const r = await call("POST", "/trellis/services/create", {
    Name: "dns",
    Networks: ["n"],
    Ports: [
      { TargetPort: 53, PublishedPort: 53 },
      { TargetPort: 53, PublishedPort: 53, Protocol: "udp" },
      { TargetPort: 53, PublishedPort: 5353 },
      { TargetPort: 80 },
      { TargetPort: 80, Protocol: "udp" },
    ],
  });
  t.is(r.status, 201);
  t.is(ops.calls.length, 1);
});

test("list, get by name / id / prefix, delete; errors keep their status", async (t) => {
  const { ops, call } = await setup(t);
  t.deepEqual(await call("GET", "/trellis/services"), { status: 200, body: [] });
  const created = (await call("POST", "/trellis/services/create", { Name: "web", Networks: ["n"] }))
    .body as ServiceView;
  t.deepEqual(await call("GET", "/trellis/services/"), { status: 200, body: [created] });
  t.deepEqual(await call("GET", "/trellis/services/web"), { status: 200, body: created });
  t.deepEqual(await call("GET", `/trellis/services/${created.ID}`), { status: 200, body: created });
  t.deepEqual(await call("GET", `/trellis/services/${created.ID.slice(0, 6)}`), {
    status: 200,
    body: created,
  });
  t.deepEqual(await call("GET", "/trellis/services/nope"), {
    status: 404,
    body: { message: "service nope not found" },
  });
  t.deepEqual(await call("POST", "/trellis/services/create", { Name: "web", Networks: ["n"] }), {
    status: 409,
    body: { message: "service with name web already exists" },
  });
  ops.failNext = forbidden("service web has backends on node2");
  t.deepEqual(await call("DELETE", "/trellis/services/web"), {
    status: 403,
    body: { message: "service web has backends on node2" },
  });
  t.deepEqual(await call("DELETE", "/trellis/services/web"), { status: 204, body: undefined });
  t.deepEqual(await call("DELETE", "/trellis/services/web"), {
    status: 404,
    body: { message: "service web not found" },
  });
  t.deepEqual(await call("PUT", "/trellis/services/web"), {
    status: 405,
    body: { message: "method PUT not allowed on /trellis/services/web" },
  });
});

test("backends: add and remove by container reference; bad bodies are 400 before the daemon", async (t) => {
  const { ops, call } = await setup(t);
  await call("POST", "/trellis/services/create", { Name: "web", Networks: ["n"] });
  const added = await call("POST", "/trellis/services/web/backends", { Container: "/run/netns/c2" });
  t.is(added.status, 200);
  t.deepEqual(
    (added.body as ServiceView).Backends.map((b) => [b.Name, b.Addr, b.Health]),
    [["web-2", "10.0.1.4", "unchecked"]],
  );
  const removed = await call("POST", "/trellis/services/web/backends/remove", { Container: "/run/netns/c2" });
  t.deepEqual([removed.status, (removed.body as ServiceView).Backends], [200, []]);
  t.deepEqual(await call("POST", "/trellis/services/web/backends", { Container: "ghost" }), {
    status: 404,
    body: { message: "container ghost not found" },
  });
  const before = ops.calls.length;
  const bad: Array<[unknown, string]> = [
    [undefined, "request body must be a JSON object"],
    [{}, "Container is required: a netns name, a netns path or pid:PID"],
    [{ Container: "" }, "Container is required: a netns name, a netns path or pid:PID"],
    [{ Container: 5 }, "Container is required: a netns name, a netns path or pid:PID"],
    [{ Container: "c1", Force: true }, 'unknown field "Force" (expected Container)'],
  ];
  for (const [body, message] of bad) {
    t.deepEqual(await call("POST", "/trellis/services/web/backends", body), {
      status: 400,
      body: { message },
    });
    t.deepEqual(await call("POST", "/trellis/services/web/backends/remove", body), {
      status: 400,
      body: { message },
    });
  }
  t.is(ops.calls.length, before);
});

test("the /v1.NN prefix works; escaped refs arrive decoded", async (t) => {
  const { ops, call } = await setup(t);
  const r = await call("POST", "/v1.41/trellis/services/create", { Name: "web", Networks: ["n"] });
  t.is(r.status, 201);
  t.is((await call("GET", "/v1.41/trellis/services/web")).status, 200);
  t.is((await call("POST", "/v1.24/trellis/services/web/backends", { Container: "c1" })).status, 200);
  t.deepEqual(await call("GET", "/trellis/services/a%2Fb"), {
    status: 404,
    body: { message: "service a/b not found" },
  });
  t.deepEqual(ops.calls.at(-1), { op: "addBackend", ref: "web", container: "c1" });
});

test("without ServiceOperations every route is a clear 400", async (t) => {
  const socket = await serveServices(t, undefined);
  const message = "this trellisd does not manage services";
  t.deepEqual(await call(socket, "GET", "/trellis/services"), { status: 400, body: { message } });
  t.deepEqual(await call(socket, "POST", "/trellis/services/create", { Name: "a", Networks: ["n"] }), {
    status: 400,
    body: { message },
  });
});
