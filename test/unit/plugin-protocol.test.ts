/**
 * The Docker plugin protocol's handlers against fake backends: the shapes the engine sends (empty
 * bodies, trailing newline, no Content-Type, PascalCase matched case-insensitively), the replies it
 * needs (always a JSON object, status 200), and the two error keys (`Err` for NetworkDriver,
 * `Error` for IpamDriver). See docker-engine-notes.md §1.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import type { Server } from "node:http";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { pino } from "pino";
import { serve } from "../../lib/api/http.js";
import { conflict, exhausted, invalid, notFound } from "../../lib/common/errors.js";
import type {
  CreateEndpointResult,
  IpamBackend,
  JoinResult,
  NetworkDriverBackend,
} from "../../lib/plugin/backend.js";
import { DRIVER_CAPABILITIES } from "../../lib/plugin/driver.js";
import { GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE } from "../../lib/plugin/ipam.js";
import {
  parseCreateEndpoint,
  parseCreateNetwork,
  parseRequestAddress,
  parseRequestPool,
} from "../../lib/plugin/protocol.js";
import { PluginRouter, pluginErrorReply } from "../../lib/plugin/routes.js";

const log = pino({ level: "silent" });
const NET = "a".repeat(64);
const EP = "b".repeat(64);

/** Records every call; throws what `fail` holds for the named method. */
class FakeDriver implements NetworkDriverBackend {
  calls: Array<[string, unknown]> = [];
  fail = new Map<string, Error>();
  private note(method: string, arg: unknown) {
    this.calls.push([method, arg]);
    const err = this.fail.get(method);
    if (err) throw err;
  }
  capabilities() {
    return DRIVER_CAPABILITIES;
  }
  async createNetwork(req: unknown) {
    this.note("createNetwork", req);
  }
  async deleteNetwork(id: string) {
    this.note("deleteNetwork", id);
  }
  async createEndpoint(req: unknown): Promise<CreateEndpointResult> {
    this.note("createEndpoint", req);
    return { Interface: { MacAddress: "02:42:0a:00:00:02" } };
  }
  endpointOperInfo(ref: unknown) {
    this.note("endpointOperInfo", ref);
    return { name: "web" };
  }
  async deleteEndpoint(ref: unknown) {
    this.note("deleteEndpoint", ref);
  }
  async join(req: unknown): Promise<JoinResult> {
    this.note("join", req);
    return {
      InterfaceName: { SrcName: "vdkbbbbbbbbbbbb", DstPrefix: "eth" },
      Gateway: "10.0.0.1",
      DisableGatewayService: true,
    };
  }
  async leave(ref: unknown) {
    this.note("leave", ref);
  }
  async programExternalConnectivity(req: unknown) {
    this.note("program", req);
  }
  async revokeExternalConnectivity(ref: unknown) {
    this.note("revoke", ref);
  }
}

class FakeIpam implements IpamBackend {
  calls: Array<[string, unknown]> = [];
  fail = new Map<string, Error>();
  private note(method: string, arg: unknown) {
    this.calls.push([method, arg]);
    const err = this.fail.get(method);
    if (err) throw err;
  }
  capabilities() {
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }
  addressSpaces() {
    return { LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
  }
  async requestPool(req: unknown) {
    this.note("requestPool", req);
    return { PoolID: "docker/1", Pool: "10.0.0.0/24", Data: {} };
  }
  async releasePool(id: string) {
    this.note("releasePool", id);
  }
  async requestAddress(req: unknown) {
    this.note("requestAddress", req);
    return { Address: "10.0.0.2/24", Data: {} };
  }
  async releaseAddress(req: unknown) {
    this.note("releaseAddress", req);
  }
}

function fixture() {
  const driver = new FakeDriver();
  const ipam = new FakeIpam();
  const router = new PluginRouter(driver, ipam, log);
  const post = (path: string, body?: unknown) =>
    router.dispatch({ method: "POST", path, query: new URLSearchParams(), body });
  return { driver, ipam, router, post };
}

test("Activate and the capability calls work with an empty body, as the engine sends them", async (t) => {
  const { post } = fixture();
  t.deepEqual((await post("/Plugin.Activate")).body, { Implements: ["NetworkDriver", "IpamDriver"] });
  t.deepEqual((await post("/NetworkDriver.GetCapabilities")).body, {
    Scope: "local",
    ConnectivityScope: "global",
  });
  t.deepEqual((await post("/IpamDriver.GetCapabilities")).body, {
    RequiresMACAddress: false,
    RequiresRequestReplay: false,
  });
  t.deepEqual((await post("/IpamDriver.GetDefaultAddressSpaces")).body, {
    LocalDefaultAddressSpace: "TrellisLocal",
    GlobalDefaultAddressSpace: "TrellisGlobal",
  });
  const reply = await post("/Plugin.Activate");
  t.is(reply.status, 200);
  t.is(reply.headers?.["Content-Type"], "application/vnd.docker.plugins.v1+json");
});

test("every NetworkDriver call answers a JSON object with status 200", async (t) => {
  const { post, driver } = fixture();
  const ref = { NetworkID: NET, EndpointID: EP };
  const expect: Array<[string, unknown, unknown]> = [
    ["CreateNetwork", { NetworkID: NET, Options: {}, IPv4Data: [], IPv6Data: [] }, {}],
    ["DeleteNetwork", { NetworkID: NET }, {}],
    [
      "CreateEndpoint",
      { ...ref, Interface: { Address: "10.0.0.2/24" } },
      { Interface: { MacAddress: "02:42:0a:00:00:02" } },
    ],
    ["EndpointOperInfo", ref, { Value: { name: "web" } }],
    [
      "Join",
      { ...ref, SandboxKey: "/var/run/docker/netns/1", Options: {} },
      {
        InterfaceName: { SrcName: "vdkbbbbbbbbbbbb", DstPrefix: "eth" },
        Gateway: "10.0.0.1",
        DisableGatewayService: true,
      },
    ],
    ["ProgramExternalConnectivity", { ...ref, Options: {} }, {}],
    ["RevokeExternalConnectivity", ref, {}],
    ["Leave", ref, {}],
    ["DeleteEndpoint", ref, {}],
    ["DiscoverNew", { DiscoveryType: 1, DiscoveryData: {} }, {}],
    ["DiscoverDelete", { DiscoveryType: 1, DiscoveryData: {} }, {}],
    ["AllocateNetwork", { NetworkID: NET, Options: {} }, { Options: {} }],
    ["FreeNetwork", { NetworkID: NET }, {}],
  ];
  for (const [method, body, want] of expect) {
    const reply = await post(`/NetworkDriver.${method}`, body);
    t.is(reply.status, 200, method);
    t.deepEqual(reply.body, want, method);
  }
  t.deepEqual(
    driver.calls.map(([m]) => m),
    [
      "createNetwork",
      "deleteNetwork",
      "createEndpoint",
      "endpointOperInfo",
      "join",
      "program",
      "revoke",
      "leave",
      "deleteEndpoint",
    ],
  );
});

test("every IpamDriver call answers a JSON object with status 200", async (t) => {
  const { post } = fixture();
  t.deepEqual((await post("/IpamDriver.RequestPool", { AddressSpace: "TrellisLocal", Pool: "" })).body, {
    PoolID: "docker/1",
    Pool: "10.0.0.0/24",
    Data: {},
  });
  t.deepEqual((await post("/IpamDriver.RequestAddress", { PoolID: "docker/1", Address: "" })).body, {
    Address: "10.0.0.2/24",
    Data: {},
  });
  t.deepEqual(
    (await post("/IpamDriver.ReleaseAddress", { PoolID: "docker/1", Address: "10.0.0.2" })).body,
    {},
  );
  t.deepEqual((await post("/IpamDriver.ReleasePool", { PoolID: "docker/1" })).body, {});
});

test("failures: {Err} for NetworkDriver, {Error} for IpamDriver, status 200, trellis's message", async (t) => {
  const { post, driver, ipam } = fixture();
  driver.fail.set("createNetwork", conflict("subnet 10.0.0.0/24 overlaps 10.0.0.0/16 of network mine"));
  const n = await post("/NetworkDriver.CreateNetwork", { NetworkID: NET });
  t.is(n.status, 200);
  t.deepEqual(n.body, { Err: "subnet 10.0.0.0/24 overlaps 10.0.0.0/16 of network mine" });
  ipam.fail.set("requestAddress", exhausted("no free address in 10.0.0.0/30"));
  const i = await post("/IpamDriver.RequestAddress", { PoolID: "p" });
  t.is(i.status, 200);
  t.deepEqual(i.body, { Error: "no free address in 10.0.0.0/30" });
  driver.fail.set("join", new Error("a bug"));
  t.deepEqual((await post("/NetworkDriver.Join", { NetworkID: NET, EndpointID: EP })).body, { Err: "a bug" });
  driver.fail.set("deleteEndpoint", notFound("gone"));
  t.deepEqual((await post("/NetworkDriver.DeleteEndpoint", {})).body, { Err: "gone" });
});

test("malformed fields are refused with the field's name; unknown calls get 404 with Err", async (t) => {
  const { post } = fixture();
  t.deepEqual((await post("/NetworkDriver.CreateNetwork", { NetworkID: 7 })).body, {
    Err: "NetworkID must be a string",
  });
  t.deepEqual((await post("/IpamDriver.RequestPool", { V6: "maybe" })).body, {
    Error: "V6 must be a boolean",
  });
  t.deepEqual((await post("/NetworkDriver.CreateNetwork", [1, 2])).body, {
    Err: "request body must be a JSON object",
  });
  const unknown = await post("/NetworkDriver.Frobnicate", {});
  t.is(unknown.status, 404);
  t.deepEqual(unknown.body, { Err: "unknown plugin call /NetworkDriver.Frobnicate" });
  t.is(pluginErrorReply(invalid("invalid JSON body")).status, 400);
});

test("parsers: Go's case-insensitive names, zero values for missing fields, the engine's option keys", (t) => {
  const net = parseCreateNetwork({
    networkid: NET,
    Options: {
      "com.docker.network.generic": { "trellis.name": "web" },
      "com.docker.network.internal": true,
      "com.docker.network.enable_ipv6": false,
    },
    IPv4Data: [{ AddressSpace: "TrellisLocal", Pool: "10.0.0.0/24", Gateway: "10.0.0.1/24" }],
    IPv6Data: null,
  });
  t.deepEqual(net, {
    networkId: NET,
    generic: { "trellis.name": "web" },
    internal: true,
    enableIPv6: false,
    ipv4: [{ addressSpace: "TrellisLocal", pool: "10.0.0.0/24", gateway: "10.0.0.1/24", auxAddresses: {} }],
    ipv6: [],
  });
  t.deepEqual(parseCreateNetwork(undefined).ipv4, []);
  const ep = parseCreateEndpoint({
    NetworkID: NET,
    EndpointID: EP,
    Interface: { Address: "10.0.0.2/24", AddressIPv6: "", MacAddress: "" },
    Options: {
      "com.docker.network.endpoint.exposedports": [{ Proto: 6, Port: 80 }],
      "com.docker.network.portmap": [
        { Proto: 6, IP: "", Port: 80, HostIP: "", HostPort: 8080, HostPortEnd: 8080 },
      ],
    },
  });
  t.deepEqual(ep.portmap, [{ proto: 6, port: 80, hostIp: "", hostPort: 8080, hostPortEnd: 8080 }]);
  t.deepEqual(parseCreateEndpoint({ NetworkID: NET, EndpointID: EP }).iface, {
    address: "",
    addressIPv6: "",
    macAddress: "",
  });
  const gw = parseRequestAddress({
    PoolID: "p",
    Address: "10.0.0.254",
    Options: { RequestAddressType: "com.docker.network.gateway" },
  });
  t.true(gw.gateway);
  t.false(parseRequestAddress({ PoolID: "p", Options: null }).gateway);
  t.deepEqual(
    parseRequestPool({
      AddressSpace: "TrellisLocal",
      Pool: "10.88.0.0/16",
      SubPool: "10.88.1.0/24",
      Options: { pk: "pv" },
      V6: false,
    }),
    {
      addressSpace: "TrellisLocal",
      pool: "10.88.0.0/16",
      subPool: "10.88.1.0/24",
      options: { pk: "pv" },
      v6: false,
    },
  );
});

// --- over a real unix socket, the way the engine talks -------------------------------------------

function engineCall(
  socketPath: string,
  path: string,
  body: string,
): Promise<{ status: number; type?: string; text: string }> {
  return new Promise((resolve, reject) => {
    // The engine's headers: no Content-Type; the body is JSON plus "\n", or empty.
    const headers = {
      Accept: "application/vnd.docker.plugins.v1.2+json",
      "Content-Length": Buffer.byteLength(body),
    };
    const r = request({ socketPath, method: "POST", path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers["content-type"],
          text: Buffer.concat(chunks).toString(),
        }),
      );
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(body);
  });
}

test("over a unix socket: empty bodies, JSON with a trailing newline, a stale socket file replaced", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-plugin-"));
  const socketPath = join(dir, "plugins", "trellis.sock");
  const { router, driver } = fixture();
  const open = () => serve({ socketPath, router, log, errorReply: pluginErrorReply });
  let server: Server = await open();
  t.teardown(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  const activate = await engineCall(socketPath, "/Plugin.Activate", "");
  t.is(activate.status, 200);
  t.is(activate.type, "application/vnd.docker.plugins.v1+json");
  t.deepEqual(JSON.parse(activate.text), { Implements: ["NetworkDriver", "IpamDriver"] });
  const create = await engineCall(
    socketPath,
    "/NetworkDriver.CreateNetwork",
    `${JSON.stringify({ NetworkID: NET })}\n`,
  );
  t.deepEqual(JSON.parse(create.text), {});
  t.is(driver.calls.length, 1);
  const bad = await engineCall(socketPath, "/NetworkDriver.CreateNetwork", "{not json");
  t.is(bad.status, 400);
  t.regex(JSON.parse(bad.text).Err, /invalid JSON body/);
  // A crashed plugin leaves its socket file behind: the next start replaces it.
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const crash = `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`;
  spawnSync(process.execPath, ["-e", crash]);
  t.true(statSync(socketPath).isSocket(), "a stale socket file");
  server = await open();
  t.true(statSync(socketPath).isSocket());
  t.is((await engineCall(socketPath, "/Plugin.Activate", "")).status, 200);
});
