/**
 * The Docker-compatible routes against a fake NetworkOperations: first in-process through
 * Router.dispatch (no socket), then through serve() on a temporary unix socket with real HTTP
 * requests, for what only the server does (prefix stripping, JSON bodies, HEAD, socket mode, errors).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import type { Server } from "node:http";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { pino } from "pino";
import { API_VERSION, dockerRoutes, MIN_API_VERSION } from "../../lib/api/docker-routes.js";
import { type Reply, type Request, Router, serve } from "../../lib/api/http.js";
import { networkJson } from "../../lib/api/shapes.js";
import { conflict, notFound, TrellisError } from "../../lib/common/errors.js";
import type {
  ConnectInput,
  CreateNetworkInput,
  DisconnectInput,
  NetworkOperations,
  NetworkView,
} from "../../lib/daemon/inputs.js";
import type { EndpointRecord, NetworkRecord } from "../../lib/store/records.js";

// --- a fake NetworkOperations --------------------------------------------------------------------

const hexId = (seed: string) => seed.padEnd(64, "0");

function networkRecord(name: string, id: string, labels: Record<string, string> = {}): NetworkRecord {
  return {
    id,
    name,
    driver: "bridge",
    created: "2024-01-01T00:00:00Z",
    internal: false,
    enableIPv6: false,
    options: {},
    labels,
    poolIds: [`${id}/v4/0`],
    bridge: { bridgeName: `br-${id.slice(0, 12)}`, mtu: 1500, icc: true, masquerade: true },
  };
}

function endpointRecord(networkId: string, name: string): EndpointRecord {
  return {
    id: hexId(`e${name}`),
    networkId,
    name,
    containerId: hexId(`c${name}`),
    netns: { path: `/run/netns/${name}`, dev: 4, ino: 1 },
    ifName: "eth0",
    hostIfName: `veth${name}`,
    mac: "02:42:ac:12:00:02",
    ipv4: "172.18.0.2/16",
    aliases: [],
    publish: [{ proto: "tcp", hostPort: 8080, containerPort: 80 }],
    gatewayEndpoint: true,
    state: "active",
    created: "2024-01-01T00:00:00Z",
  };
}

function view(net: NetworkRecord, endpoints: EndpointRecord[] = []): NetworkView {
  return {
    network: net,
    pools: [
      {
        id: `${net.id}/v4/0`,
        family: 4,
        subnet: "172.18.0.0/16",
        gateway: "172.18.0.1",
        cursor: "0",
        owner: net.id,
      },
    ],
    endpoints,
  };
}

type Call =
  | { op: "createNetwork"; input: CreateNetworkInput }
  | { op: "removeNetwork"; ref: string }
  | { op: "pruneNetworks" }
  | { op: "connect"; ref: string; input: ConnectInput }
  | { op: "disconnect"; ref: string; input: DisconnectInput };

/** Networks by id; references resolve like the daemon's: full id, exact name, unique id prefix. */
class FakeOps implements NetworkOperations {
  readonly calls: Call[] = [];
  /** thrown by the next mutating call, if set */
  failNext: unknown;

  constructor(readonly views: NetworkView[]) {}

  private maybeFail() {
    const err = this.failNext;
    this.failNext = undefined;
    if (err !== undefined) throw err;
  }

  async createNetwork(input: CreateNetworkInput): Promise<NetworkView> {
    this.calls.push({ op: "createNetwork", input });
    this.maybeFail();
    const v = view(networkRecord(input.name, hexId(`f${this.views.length}`), input.labels));
    this.views.push(v);
    return v;
  }

  listNetworks(): NetworkView[] {
    return this.views;
  }

  getNetwork(ref: string): NetworkView {
    const found =
      this.views.find((v) => v.network.id === ref || v.network.name === ref) ??
      this.views.find((v) => v.network.id.startsWith(ref));
    if (!found) throw notFound(`network ${ref} not found`);
    return found;
  }

  async removeNetwork(ref: string): Promise<void> {
    this.calls.push({ op: "removeNetwork", ref });
    this.maybeFail();
    this.getNetwork(ref);
  }

  async pruneNetworks(): Promise<string[]> {
    this.calls.push({ op: "pruneNetworks" });
    return this.views.filter((v) => v.endpoints.length === 0).map((v) => v.network.name);
  }

  async connect(ref: string, input: ConnectInput): Promise<EndpointRecord> {
    this.calls.push({ op: "connect", ref, input });
    this.maybeFail();
    return endpointRecord(this.getNetwork(ref).network.id, input.container);
  }

  async disconnect(ref: string, input: DisconnectInput): Promise<void> {
    this.calls.push({ op: "disconnect", ref, input });
    this.maybeFail();
    this.getNetwork(ref);
  }
}

const INFO = { version: "0.1.0-test", kernelVersion: "6.1.0-test" };

function fixture() {
  const web = view(networkRecord("web", hexId("aa11"), { team: "a", tier: "front" }), [
    endpointRecord(hexId("aa11"), "c1"),
  ]);
  const webdb = view(networkRecord("web-db", hexId("aa22"), { team: "b" }));
  const cache = view(networkRecord("cache", hexId("bb33"), { "com.example.eq": "x=y" }));
  const ops = new FakeOps([web, webdb, cache]);
  return { ops, router: dockerRoutes(ops, INFO), web, webdb, cache };
}

const req = (method: string, path: string, body?: unknown, query = ""): Request => ({
  method,
  path,
  query: new URLSearchParams(query),
  body,
});

const filtersQuery = (filters: Record<string, unknown>) =>
  `filters=${encodeURIComponent(JSON.stringify(filters))}`;

async function names(router: Router, filters: Record<string, unknown>): Promise<string[]> {
  const reply = await router.dispatch(req("GET", "/networks", undefined, filtersQuery(filters)));
  return (reply.body as Array<{ Name: string }>).map((n) => n.Name);
}

// --- in-process ---------------------------------------------------------------------------------

test("POST /networks/create: 201 with {Id, Warning}, the body parsed into a typed input", async (t) => {
  const { ops, router } = fixture();
  const reply = await router.dispatch(
    req("POST", "/networks/create", { Name: "new", Internal: true, Labels: { a: "b" } }),
  );
  t.is(reply.status, 201);
  t.deepEqual(reply.body, { Id: hexId("f3"), Warning: "" });
  t.deepEqual(ops.calls, [
    {
      op: "createNetwork",
      input: {
        name: "new",
        driver: "bridge",
        internal: true,
        enableIPv6: false,
        ipamDriver: "default",
        ipamConfigs: [],
        options: {},
        labels: { a: "b" },
      },
    },
  ]);
});

test("POST /networks/create: a bad body is INVALID_ARGUMENT before the daemon is called", async (t) => {
  const { ops, router } = fixture();
  await t.throwsAsync(router.dispatch(req("POST", "/networks/create", { Name: 5 })), {
    instanceOf: TrellisError,
    code: "INVALID_ARGUMENT",
    message: "Name must be a string",
  });
  t.deepEqual(ops.calls, []);
});

test("DELETE /networks/{ref}: 204 without a body; the ref is URI-decoded", async (t) => {
  const { ops, router } = fixture();
  const reply = await router.dispatch(req("DELETE", "/networks/web"));
  t.deepEqual(reply, { status: 204 });
  await router.dispatch(req("DELETE", "/networks/web%2Ddb"));
  t.deepEqual(ops.calls, [
    { op: "removeNetwork", ref: "web" },
    { op: "removeNetwork", ref: "web-db" },
  ]);
});

test("POST connect / disconnect: 200, typed inputs, the network ref passed through", async (t) => {
  const { ops, router } = fixture();
  const c = await router.dispatch(
    req("POST", "/networks/web/connect", {
      Container: "c2",
      EndpointConfig: { Aliases: ["x"] },
      Trellis: { Publish: [{ HostPort: 80, ContainerPort: 8080 }] },
    }),
  );
  t.deepEqual(c, { status: 200 });
  const d = await router.dispatch(req("POST", "/networks/aa22/disconnect", { Container: "c2", Force: true }));
  t.deepEqual(d, { status: 200 });
  t.deepEqual(ops.calls, [
    {
      op: "connect",
      ref: "web",
      input: {
        container: "c2",
        aliases: ["x"],
        publish: [{ proto: "tcp", hostPort: 80, containerPort: 8080 }],
      },
    },
    { op: "disconnect", ref: "aa22", input: { container: "c2", force: true } },
  ]);
});

test("GET /networks/{ref}: the Docker shape of the view; an unknown ref is NOT_FOUND", async (t) => {
  const { router, web } = fixture();
  const reply = await router.dispatch(req("GET", "/networks/web"));
  t.is(reply.status, 200);
  t.deepEqual(reply.body, networkJson(web));
  const body = reply.body as { Id: string; Containers: Record<string, { Name: string; Ports: string[] }> };
  t.is(body.Id, web.network.id);
  t.deepEqual(
    Object.values(body.Containers).map((c) => [c.Name, c.Ports]),
    [["c1", ["0.0.0.0:8080->80/tcp"]]],
  );
  await t.throwsAsync(router.dispatch(req("GET", "/networks/nope")), { code: "NOT_FOUND" });
});

test("an unknown route throws TrellisError NOT_FOUND", async (t) => {
  const { router } = fixture();
  for (const path of ["/", "/containers/json", "/networks/web/inspect", "/_pingx"]) {
    const err = await t.throwsAsync(router.dispatch(req("GET", path)), { instanceOf: TrellisError });
    t.is(err?.code, "NOT_FOUND", path);
    t.is(err?.httpStatus, 404);
    t.is(err?.message, "page not found");
  }
});

test("a known path with the wrong method is 405 naming method and path", async (t) => {
  const { ops, router } = fixture();
  t.deepEqual(await router.dispatch(req("PUT", "/networks/web")), {
    status: 405,
    body: { message: "method PUT not allowed on /networks/web" },
  });
  t.is((await router.dispatch(req("DELETE", "/_ping"))).status, 405);
  t.is((await router.dispatch(req("POST", "/version"))).status, 405);
  t.is((await router.dispatch(req("GET", "/networks/web/connect"))).status, 405);
  t.is((await router.dispatch(req("DELETE", "/networks"))).status, 405);
  t.deepEqual(ops.calls, []);
});

test("GET /_ping and HEAD /_ping: 200 OK, not cached", async (t) => {
  const { router } = fixture();
  for (const method of ["GET", "HEAD"]) {
    t.deepEqual(await router.dispatch(req(method, "/_ping")), {
      status: 200,
      body: "OK",
      headers: { "Cache-Control": "no-cache, no-store, must-revalidate" },
    });
  }
});

test("GET /version: the fields the docker CLI reads", async (t) => {
  const { router } = fixture();
  const reply = await router.dispatch(req("GET", "/version"));
  t.is(reply.status, 200);
  const body = reply.body as Record<string, unknown>;
  t.is(body["Version"], "0.1.0-test");
  t.is(body["ApiVersion"], API_VERSION);
  t.is(body["ApiVersion"], "1.41");
  t.is(body["MinAPIVersion"], MIN_API_VERSION);
  t.is(body["KernelVersion"], "6.1.0-test");
  t.is(body["Os"], "linux");
  t.is(body["Arch"], process.arch === "x64" ? "amd64" : process.arch);
  t.deepEqual(body["Platform"], { Name: "trellis" });
  t.deepEqual(body["Components"], [{ Name: "trellis", Version: "0.1.0-test", Details: {} }]);
});

test("GET /networks: every network without filters, in the daemon's order", async (t) => {
  const { router } = fixture();
  t.deepEqual(await names(router, {}), ["web", "web-db", "cache"]);
  const plain = await router.dispatch(req("GET", "/networks/"));
  t.is((plain.body as unknown[]).length, 3, "trailing slash");
});

test("GET /networks filters: name (substring), id (prefix), driver, scope, type", async (t) => {
  const { router } = fixture();
  t.deepEqual(await names(router, { name: ["web"] }), ["web", "web-db"]);
  t.deepEqual(await names(router, { name: { "-db": true } }), ["web-db"]);
  t.deepEqual(await names(router, { name: ["cache", "db"] }), ["web-db", "cache"], "values are OR-ed");
  t.deepEqual(await names(router, { id: ["aa"] }), ["web", "web-db"]);
  t.deepEqual(await names(router, { id: ["a11"] }), [], "id is a prefix, not a substring");
  t.deepEqual(await names(router, { driver: ["bridge"] }), ["web", "web-db", "cache"]);
  t.deepEqual(await names(router, { driver: ["overlay"] }), []);
  t.deepEqual(await names(router, { scope: ["local"] }), ["web", "web-db", "cache"]);
  t.deepEqual(await names(router, { type: ["builtin"] }), []);
  t.deepEqual(await names(router, { name: ["web"], id: ["aa22"] }), ["web-db"], "keys are AND-ed");
  t.deepEqual(await names(router, { name: [] }), ["web", "web-db", "cache"], "an empty list is no filter");
});

test("GET /networks filters: label (key, key=value) and dangling", async (t) => {
  const { router } = fixture();
  t.deepEqual(await names(router, { label: ["team"] }), ["web", "web-db"]);
  t.deepEqual(await names(router, { label: ["team=b"] }), ["web-db"]);
  t.deepEqual(await names(router, { label: ["team=c"] }), []);
  t.deepEqual(await names(router, { label: ["team=a", "team=b"] }), ["web", "web-db"]);
  t.deepEqual(await names(router, { dangling: ["true"] }), ["web-db", "cache"]);
  t.deepEqual(await names(router, { dangling: ["1"] }), ["web-db", "cache"]);
  t.deepEqual(await names(router, { dangling: ["false"] }), ["web"]);
});

test("GET /networks filters: an unknown filter or bad JSON is INVALID_ARGUMENT", async (t) => {
  const { router } = fixture();
  await t.throwsAsync(
    router.dispatch(req("GET", "/networks", undefined, filtersQuery({ colour: ["red"] }))),
    {
      code: "INVALID_ARGUMENT",
      message: "invalid filter 'colour' (supported: name, id, driver, scope, type, dangling, label)",
    },
  );
  await t.throwsAsync(router.dispatch(req("GET", "/networks", undefined, "filters=%7Bname")), {
    code: "INVALID_ARGUMENT",
    message: "invalid filters: {name",
  });
});

// Docker splits label filters at the FIRST '=' (strings.SplitN(v, "=", 2)); JS's split("=", 2)
// drops everything after the second '=', so "com.example.eq=x=y" compares the value "x".
test("label filter: a value containing '=' is compared whole", async (t) => {
  const { router } = fixture();
  t.deepEqual(await names(router, { label: ["com.example.eq=x=y"] }), ["cache"]);
  t.deepEqual(await names(router, { label: ["com.example.eq=x"] }), []);
});

// `k in net.labels` looks through the prototype chain: every network "has" the label toString.
test("label filter: inherited Object properties are not labels", async (t) => {
  const { router } = fixture();
  t.deepEqual(await names(router, { label: ["toString"] }), []);
  t.deepEqual(await names(router, { label: ["constructor"] }), []);
});

// Filter keys are only checked while matching a network, so with no networks (or an empty value
// list) a misspelt filter is silently accepted; Docker refuses it up front.
test("unknown filter: refused even when there is no network to match", async (t) => {
  const ops = new FakeOps([]);
  await t.throwsAsync(
    dockerRoutes(ops, INFO).dispatch(req("GET", "/networks", undefined, filtersQuery({ colour: ["red"] }))),
    { code: "INVALID_ARGUMENT" },
  );
});

test("POST /networks/prune: 200 with the names the daemon removed", async (t) => {
  const { ops, router } = fixture();
  const reply = await router.dispatch(req("POST", "/networks/prune"));
  t.deepEqual(reply, { status: 200, body: { NetworksDeleted: ["web-db", "cache"] } });
  t.deepEqual(ops.calls, [{ op: "pruneNetworks" }]);
});

// `docker network prune --filter label=tmp` must not delete every unused network: the route parses
// the filters and then ignores them. Either honour them or refuse them; here: refuse.
test("POST /networks/prune: filters are honoured or refused, never ignored", async (t) => {
  const { ops, router } = fixture();
  const reply = await router
    .dispatch(req("POST", "/networks/prune", undefined, filtersQuery({ label: ["tmp"] })))
    .catch((err: unknown) => err);
  const refused = reply instanceof TrellisError && reply.code === "INVALID_ARGUMENT";
  const honoured =
    !(reply instanceof Error) && JSON.stringify((reply as Reply).body) === '{"NetworksDeleted":[]}';
  t.true(refused || honoured, JSON.stringify(reply));
  if (refused) t.deepEqual(ops.calls, [], "nothing pruned");
});

test("daemon errors pass through dispatch unchanged (their status comes from the code)", async (t) => {
  const { ops, router } = fixture();
  ops.failNext = conflict('network with name "web" already exists');
  const err = await t.throwsAsync(router.dispatch(req("POST", "/networks/create", { Name: "web" })), {
    instanceOf: TrellisError,
  });
  t.is(err?.httpStatus, 409);
});

// A malformed %-escape makes decodeURIComponent throw URIError: the server answers 500 and logs an
// internal error for what is a bad request.
test("Router: a malformed %-escape in a path parameter is INVALID_ARGUMENT", async (t) => {
  const { router } = fixture();
  await t.throwsAsync(router.dispatch(req("GET", "/networks/%E0%A4%A")), {
    instanceOf: TrellisError,
    code: "INVALID_ARGUMENT",
  });
});

test("Router: HEAD is served by a GET route when no HEAD route exists", async (t) => {
  const router = new Router().add("GET", /^\/x\/([^/]+)$/, (r, [p]) => ({
    status: 200,
    body: `${r.method} ${p}`,
  }));
  t.deepEqual(await router.dispatch(req("HEAD", "/x/a%20b")), { status: 200, body: "HEAD a b" });
  t.is((await router.dispatch(req("POST", "/x/a"))).status, 405);
});

// --- over a real unix socket --------------------------------------------------------------------

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function call(socketPath: string, method: string, path: string, body?: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        socketPath,
        method,
        path,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    r.end(body);
  });
}

async function withServer(
  t: { teardown: (fn: () => void | Promise<void>) => void },
  ops: FakeOps,
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "trellis-api-"));
  const socketPath = join(dir, "api", "trellis.sock");
  const server: Server = await serve({
    socketPath,
    router: dockerRoutes(ops, INFO),
    log: pino({ level: "silent" }),
    versionedPaths: true,
    commonHeaders: { "Api-Version": "1.41" },
  });
  t.teardown(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  return socketPath;
}

test("serve: socket mode 0660, /v1.41 prefix stripped, common headers on every reply", async (t) => {
  const { ops } = fixture();
  const sock = await withServer(t, ops);
  t.is(statSync(sock).mode & 0o777, 0o660);
  t.true(statSync(sock).isSocket());
  const ping = await call(sock, "GET", "/v1.41/_ping");
  t.is(ping.status, 200);
  t.is(ping.text, "OK");
  t.is(ping.headers["content-type"], "text/plain; charset=utf-8");
  t.is(ping.headers["api-version"], "1.41");
  t.is(ping.headers["cache-control"], "no-cache, no-store, must-revalidate");
  const list = await call(sock, "GET", "/v1.41/networks?filters=%7B%22name%22%3A%5B%22cache%22%5D%7D");
  t.is(list.status, 200);
  t.is(list.headers["content-type"], "application/json");
  t.deepEqual(
    (JSON.parse(list.text) as Array<{ Name: string }>).map((n) => n.Name),
    ["cache"],
  );
  t.is((await call(sock, "GET", "/v1.12/version")).status, 200);
  t.is((await call(sock, "GET", "/networks")).status, 200, "unversioned paths work too");
});

test("serve: HEAD /_ping has the headers and no body", async (t) => {
  const { ops } = fixture();
  const sock = await withServer(t, ops);
  const head = await call(sock, "HEAD", "/_ping");
  t.is(head.status, 200);
  t.is(head.text, "");
  t.is(head.headers["content-length"], "2");
  t.is(head.headers["api-version"], "1.41");
});

test("serve: create is 201 with JSON, delete is 204 with an empty body", async (t) => {
  const { ops } = fixture();
  const sock = await withServer(t, ops);
  const created = await call(sock, "POST", "/v1.41/networks/create", JSON.stringify({ Name: "new" }));
  t.is(created.status, 201);
  t.deepEqual(JSON.parse(created.text), { Id: hexId("f3"), Warning: "" });
  const removed = await call(sock, "DELETE", "/v1.41/networks/web");
  t.is(removed.status, 204);
  t.is(removed.text, "");
  const connected = await call(sock, "POST", "/v1.41/networks/web/connect", '{"Container":"c9"}');
  t.is(connected.status, 200);
});

test("serve: malformed JSON is 400 {message: invalid JSON body: ...} and reaches no handler", async (t) => {
  const { ops } = fixture();
  const sock = await withServer(t, ops);
  const res = await call(sock, "POST", "/v1.41/networks/create", '{"Name": "x",');
  t.is(res.status, 400);
  t.is(res.headers["content-type"], "application/json");
  const body = JSON.parse(res.text) as { message: string };
  t.deepEqual(Object.keys(body), ["message"]);
  t.regex(body.message, /^invalid JSON body: /);
  t.deepEqual(ops.calls, []);
});

test("serve: errors are {message} with the TrellisError's status; others are 500", async (t) => {
  const { ops } = fixture();
  const sock = await withServer(t, ops);
  const expectError = async (res: HttpResult, status: number, message: string | RegExp) => {
    t.is(res.status, status);
    const body = JSON.parse(res.text) as { message: string };
    t.deepEqual(Object.keys(body), ["message"]);
    if (typeof message === "string") t.is(body.message, message);
    else t.regex(body.message, message);
  };
  await expectError(await call(sock, "GET", "/v1.41/networks/nope"), 404, "network nope not found");
  await expectError(await call(sock, "GET", "/v1.41/containers/json"), 404, "page not found");
  await expectError(
    await call(sock, "PUT", "/v1.41/networks/web"),
    405,
    "method PUT not allowed on /networks/web",
  );
  await expectError(
    await call(sock, "POST", "/v1.41/networks/create", '{"Name": ["x"]}'),
    400,
    "Name must be a string",
  );
  ops.failNext = conflict('network with name "web" already exists');
  await expectError(
    await call(sock, "POST", "/v1.41/networks/create", '{"Name": "web"}'),
    409,
    'network with name "web" already exists',
  );
  ops.failNext = new TrellisError("FORBIDDEN", "network web has active endpoints");
  await expectError(
    await call(sock, "DELETE", "/v1.41/networks/web"),
    403,
    "network web has active endpoints",
  );
  ops.failNext = new Error("boom");
  await expectError(
    await call(sock, "POST", "/v1.41/networks/web/disconnect", '{"Container":"c1"}'),
    500,
    "boom",
  );
});
