/**
 * Services on one host and a bridge network, through the daemon's API: 1 000 services created then
 * removed leave no VIP element, address or set element behind; a restart keeps services and their
 * data plane; bad input is refused without a trace; a network with a service cannot be removed.
 */
import test from "ava";
import type { ServiceView } from "../../lib/ingress/spec.js";
import { Lab, waitFor } from "../helpers/lab.js";
import { ipOf } from "../helpers/net.js";
import { connections, startBackend } from "../helpers/svc-traffic.js";

async function nftJson(lab: Lab, ns: string, args: string[]): Promise<unknown | undefined> {
  const r = await lab.exec(ns, ["nft", "-j", ...args], { allowFail: true });
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

async function setElements(lab: Lab, ns: string, set: string): Promise<number> {
  const body = (await nftJson(lab, ns, ["list", "set", "inet", "trellis", set])) as
    | { nftables: Array<{ set?: { elem?: unknown[] } }> }
    | undefined;
  return body?.nftables.find((o) => o.set)?.set?.elem?.length ?? 0;
}

async function vip32s(lab: Lab, ns: string): Promise<string[]> {
  const out = (await lab.exec(ns, ["ip", "-4", "-o", "addr", "show"])).stdout;
  return out.split("\n").filter((l) => / inet \S+\/32 /.test(l));
}

test("1 000 services created then removed leave nothing behind; the VIPs worked meanwhile", async (t) => {
  t.timeout(10 * 60_000);
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await d.cli(["network", "create", "--subnet", "10.150.0.0/20", "big"]);
  const be = await lab.addContainer("be");
  const client = await lab.addContainer("cl");
  await d.cli(["network", "connect", "big", be]);
  await d.cli(["network", "connect", "big", client]);
  await startBackend(lab, be, "be", 80);
  const ids: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = await d.api("POST", "/trellis/services/create", {
      Name: `s${i}`,
      Networks: ["big"],
      Ports: [{ Protocol: "tcp", TargetPort: 80 }],
    });
    t.is(r.status, 201, JSON.stringify(r.body));
    ids.push((r.body as ServiceView).ID);
    if (i % 100 === 0) {
      const add = await d.api("POST", `/trellis/services/s${i}/backends`, { Container: be });
      t.is(add.status, 200, JSON.stringify(add.body));
    }
  }
  t.is((await vip32s(lab, host.ns)).length, 1000);
  t.is(await setElements(lab, host.ns, "svc_vips"), 1000);
  // a sample of VIPs works: with its backend, or refused at once without one
  for (const i of [0, 500, 900]) {
    const vip = (
      (await d.api("GET", `/trellis/services/s${i}`)).body as ServiceView
    ).VirtualIPs[0]!.Addr!.split("/")[0]!;
    const r = await connections(lab, client, { ip: vip, port: 80, count: 5, conc: 1 });
    t.deepEqual(r.markers, { be: 5 }, `s${i}`);
    const empty = ((await d.api("GET", `/trellis/services/s${i + 1}`)).body as ServiceView).VirtualIPs[0]!
      .Addr!;
    const refused = await connections(lab, client, { ip: empty.split("/")[0]!, port: 80, count: 3, conc: 1 });
    t.deepEqual(refused.errors, { ECONNREFUSED: 3 }, `s${i + 1}`);
  }
  for (const id of ids) {
    const r = await d.api("DELETE", `/trellis/services/${id}`);
    t.is(r.status, 204, JSON.stringify(r.body));
  }
  t.deepEqual((await d.api("GET", "/trellis/services")).body, []);
  t.deepEqual(await vip32s(lab, host.ns), []);
  t.is(
    await nftJson(lab, host.ns, ["list", "table", "ip", "trellis_svc"]),
    undefined,
    "service table deleted",
  );
  t.is(await setElements(lab, host.ns, "svc_vips"), 0);
  t.is(await setElements(lab, host.ns, "svc_backends"), 0);
});

test("a restart keeps services, VIPs and backends; bad input changes nothing; the network is held", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await d.cli(["network", "create", "--subnet", "10.151.0.0/24", "n1"]);
  const be = await lab.addContainer("be");
  const client = await lab.addContainer("cl");
  await d.cli(["network", "connect", "n1", be]);
  await d.cli(["network", "connect", "n1", client]);
  await startBackend(lab, be, "be", 80);
  await d.cli(["service", "create", "--name", "api", "--network", "n1", "-p", "8088:80"]);
  await d.cli(["service", "add-backend", "api", be]);
  const vip = ((await d.api("GET", "/trellis/services/api")).body as ServiceView).VirtualIPs[0]!.Addr!.split(
    "/",
  )[0]!;
  const before = await connections(lab, client, { ip: vip, port: 80, count: 10, conc: 2 });
  t.deepEqual(before.markers, { be: 10 });
  const clientIp = await ipOf(d, "n1", client);
  t.deepEqual(Object.keys(before.clients), [clientIp], "the backend sees the client, not the gateway");
  // on a bridge network the published port serves this host's backends, and keeps the client's address
  const outside = await lab.addHost("out");
  const published = await connections(lab, outside.ns, {
    ip: host.underlayIp,
    port: 8088,
    count: 6,
    conc: 2,
  });
  t.deepEqual(published.markers, { be: 6 });
  t.deepEqual(Object.keys(published.clients), [outside.underlayIp]);

  // a container on another network cannot use the VIP, though its host could route it there
  await d.cli(["network", "create", "--subnet", "10.152.0.0/24", "other"]);
  const stranger = await lab.addContainer("other");
  await d.cli(["network", "connect", "other", stranger]);
  const across = await connections(lab, stranger, { ip: vip, port: 80, count: 2, conc: 1, timeoutMs: 1000 });
  t.deepEqual(across.markers, {}, "the VIP serves its own network only");
  await d.cli(["network", "disconnect", "other", stranger]);

  // bad input: clear errors, no service, no address taken
  const bad = [
    { Name: "bad name!", Networks: ["n1"] },
    { Name: "x", Networks: [] },
    { Name: "x", Networks: ["nope"] },
    { Name: "x", Networks: ["n1"], Ports: [{ TargetPort: 0 }] },
    { Name: "x", Networks: ["n1"], EndpointMode: "dnsrr", Ports: [{ TargetPort: 80, PublishedPort: 8080 }] },
    { Name: "api", Networks: ["n1"] },
  ];
  for (const body of bad) {
    const r = await d.api("POST", "/trellis/services/create", body);
    t.true(r.status >= 400 && r.status < 500, `${JSON.stringify(body)} → ${r.status}`);
    t.truthy((r.body as { message?: string }).message);
  }
  t.is(((await d.api("GET", "/trellis/services")).body as unknown[]).length, 1);
  const notConnected = await lab.addContainer("stranger");
  const r = await d.cli(["service", "add-backend", "api", notConnected], { allowFail: true });
  t.not(r.code, 0);
  t.regex(r.stderr, /not connected to a network of service api/);
  const rm = await d.cli(["network", "rm", "n1"], { allowFail: true });
  t.not(rm.code, 0);

  await d.kill("SIGKILL");
  // the data plane outlives the daemon
  t.deepEqual((await connections(lab, client, { ip: vip, port: 80, count: 5, conc: 1 })).markers, { be: 5 });
  await d.restart();
  const after = (await d.api("GET", "/trellis/services/api")).body as ServiceView;
  t.is(after.VirtualIPs[0]!.Addr!.split("/")[0], vip);
  t.is(after.Backends.length, 1);
  await waitFor(async () => (await vip32s(lab, host.ns)).length === 1, { what: "VIP address after restart" });
  t.deepEqual((await connections(lab, client, { ip: vip, port: 80, count: 10, conc: 2 })).markers, {
    be: 10,
  });
  // `network connect --service` attaches and enrolls in one step
  const be2 = await lab.addContainer("be2");
  await startBackend(lab, be2, "be2", 80);
  await d.cli(["network", "connect", "--service", "api", "n1", be2]);
  t.deepEqual(
    ((await d.api("GET", "/trellis/services/api")).body as ServiceView).Backends.map((b) => b.Name).sort(),
    [be, be2].sort(),
  );
  await d.cli(["network", "disconnect", "n1", be2]);
  // disconnecting the backend removes it from the service at once
  await d.cli(["network", "disconnect", "n1", be]);
  t.deepEqual(((await d.api("GET", "/trellis/services/api")).body as ServiceView).Backends, []);
  const refused = await connections(lab, client, { ip: vip, port: 80, count: 3, conc: 1 });
  t.deepEqual(refused.errors, { ECONNREFUSED: 3 });
});
