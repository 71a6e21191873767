/**
 * Bad input gets a clear error and changes nothing: malformed JSON, unknown network, invalid CIDR,
 * overlapping subnet, duplicate name, unknown option, nonexistent netns; exit codes from the CLI.
 */
import test from "ava";
import { Lab } from "../helpers/lab.js";
import { kernelInventory } from "../helpers/leaks.js";
import { createNetwork } from "../helpers/net.js";

test("bad input: clear errors, right status codes, and no state change", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "base", ["--subnet", "10.70.0.0/16"]);
  const c1 = await lab.addContainer("c1");
  await d.cli(["network", "connect", "base", c1]);
  const before = {
    nets: (await d.api("GET", "/networks")).body,
    kernel: await kernelInventory(lab, host.ns),
  };

  const malformed = await d.api("POST", "/networks/create", undefined, { rawBody: '{"Name": "x",' });
  t.is(malformed.status, 400);
  t.regex(malformed.body.message, /invalid JSON/);

  const cases: Array<[string[], RegExp]> = [
    [["network", "create", "--subnet", "10.0.0.0/33", "bad1"], /10\.0\.0\.0\/33/],
    [["network", "create", "--subnet", "10.70.5.0/24", "bad2"], /overlaps.*base/],
    [["network", "create", "--subnet", "10.71.0.0/24", "base"], /already exists/],
    [["network", "create", "--subnet", "10.72.0.0/24", "--gateway", "10.73.0.1", "bad3"], /10\.73\.0\.1/],
    [["network", "create", "-o", "com.docker.network.bridge.nope=1", "bad4"], /unknown option/],
    [["network", "create", "-d", "macvlan", "bad5"], /unknown network driver "macvlan"/],
    [["network", "connect", "nosuchnet", c1], /nosuchnet/],
    [["network", "connect", "base", `${lab.prefix}-nosuchns`], /nosuchns/],
    [["network", "connect", "base", c1], /already connected/],
    [["network", "disconnect", "base", `${lab.prefix}-nosuchns`], /nosuchns/],
    [["network", "rm", "nosuchnet"], /nosuchnet/],
    [["network", "inspect", "nosuchnet"], /nosuchnet/i],
  ];
  for (const [args, message] of cases) {
    const r = await d.cli(args, { allowFail: true });
    t.is(r.code, 1, `${args.join(" ")} → exit 1`);
    t.regex(r.stderr, message, args.join(" "));
    t.is(r.stderr.trim().split("\n").length, 1, `one-line error for ${args.join(" ")}`);
  }
  const statuses: Array<[string, string, unknown, number]> = [
    ["POST", "/networks/create", { Name: "x", IPAM: { Config: "no" } }, 400],
    ["POST", "/networks/create", { Name: "dup", IPAM: { Config: [{ Subnet: "10.70.9.0/24" }] } }, 409],
    ["POST", "/networks/create", { Name: "base" }, 409],
    ["GET", "/networks/nosuchnet", undefined, 404],
    ["DELETE", "/networks/base", undefined, 403],
    ["POST", "/networks/base/connect", { Container: "" }, 400],
    ["POST", "/v1.41/networks/nosuchnet/connect", { Container: c1 }, 404],
    ["GET", "/nope", undefined, 404],
  ];
  for (const [method, path, body, status] of statuses) {
    const r = await d.api(method, path, body);
    t.is(r.status, status, `${method} ${path} ${JSON.stringify(r.body)}`);
    t.is(typeof r.body.message, "string");
  }
  const after = { nets: (await d.api("GET", "/networks")).body, kernel: await kernelInventory(lab, host.ns) };
  t.deepEqual(after, before, "failed operations changed state");

  const unreachable = await d.cli(["--socket", `${lab.dir}/nobody.sock`, "network", "ls"], {
    allowFail: true,
  });
  t.is(unreachable.code, 2);
});
