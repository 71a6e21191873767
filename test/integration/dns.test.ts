/**
 * Embedded DNS at 127.0.0.11 in real namespaces, asked by real clients (dig, busybox nslookup):
 * names and aliases (A, AAAA, PTR), case, trailing dot and search domain, scope and isolation,
 * changes on connect/disconnect, the lookup API/CLI and `network inspect`'s DNSNames.
 */
import test from "ava";
import { createNetwork } from "../helpers/net.js";
import { dig, digShort, dnsLab, nslookup } from "./dns-lab.js";

test("names and aliases resolve to A, AAAA and back (PTR), whatever the case, trailing dot or search domain", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "net1", ["--subnet", "10.40.0.0/24", "--ipv6", "--subnet", "fd00:40::/64"]);
  const web = await lab.addContainer("web");
  const client = await lab.addContainer("client");
  await d.cli([
    "network",
    "connect",
    "--name",
    "web",
    "--alias",
    "www",
    "--alias",
    "Api",
    "--ip",
    "10.40.0.10",
    "--ip6",
    "fd00:40::10",
    "net1",
    web,
  ]);
  await d.cli(["network", "connect", "--name", "client", "net1", client]);

  t.deepEqual(await digShort(lab, client, ["web", "A"]), ["10.40.0.10"]);
  t.deepEqual(await digShort(lab, client, ["web", "AAAA"]), ["fd00:40::10"]);
  for (const name of ["www", "api", "API.", "WeB", "web.", "web.corp.test", "WWW.Corp.Test."]) {
    t.deepEqual(await digShort(lab, client, [name, "A"]), ["10.40.0.10"], name);
  }
  t.deepEqual(await digShort(lab, client, ["-x", "10.40.0.10"]), ["web."]);
  t.deepEqual(await digShort(lab, client, ["-x", "fd00:40::10"]), ["web."]);
  const own = await digShort(lab, web, ["client"]);
  t.is(own.length, 1, "the asker's own network peers resolve from the other side too");

  const full = await dig(lab, client, ["Web", "A"]);
  t.is(full.status, "NOERROR");
  t.true(full.flags.includes("aa") && full.flags.includes("ra"), full.flags.join(" "));
  t.regex(full.answers[0] ?? "", /^Web\. 5 IN A 10\.40\.0\.10$/, "owner name echoes the question as asked");

  const ns = await nslookup(lab, client, "www");
  t.is(ns.code, 0, ns.raw);
  t.deepEqual(ns.addresses.sort(), ["10.40.0.10", "fd00:40::10"], ns.raw);

  t.is((await dig(lab, client, ["nosuch", "A"])).status, "NXDOMAIN");
  t.is(
    (await dig(lab, client, ["-x", "10.40.0.99"])).status,
    "NXDOMAIN",
    "an unused address of the asker's subnet",
  );
  const tcp = await dig(lab, client, ["+tcp", "www", "A"]);
  t.deepEqual([tcp.status, tcp.answers.length], ["NOERROR", 1], tcp.raw);
  const mx = await dig(lab, client, ["web", "MX"]);
  t.deepEqual([mx.status, mx.answers], ["NOERROR", []], "a known name without that record type: NODATA");
});

test("isolation: a container sees only its networks' names; on two networks it sees both; the scope is the asker's", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "a", ["--subnet", "10.41.1.0/24"]);
  await createNetwork(d, "b", ["--subnet", "10.41.2.0/24"]);
  const ca = await lab.addContainer("ca");
  const cb = await lab.addContainer("cb");
  const cab = await lab.addContainer("cab");
  await d.cli(["network", "connect", "--name", "alpha", "--alias", "x.svc", "--ip", "10.41.1.10", "a", ca]);
  await d.cli(["network", "connect", "--name", "beta", "--ip", "10.41.2.10", "b", cb]);
  await d.cli(["network", "connect", "--name", "both", "a", cab]);
  await d.cli(["network", "connect", "--name", "both", "b", cab]);

  t.deepEqual(await digShort(lab, cab, ["alpha"]), ["10.41.1.10"]);
  t.deepEqual(await digShort(lab, cab, ["beta"]), ["10.41.2.10"]);
  t.deepEqual(await digShort(lab, cab, ["x.svc"]), ["10.41.1.10"], "a dotted alias");
  t.deepEqual((await digShort(lab, cab, ["both"])).sort(), ["10.41.1.2", "10.41.2.2"]);

  t.is((await dig(lab, ca, ["beta"])).status, "NXDOMAIN", "a name of another network");
  t.is((await dig(lab, cb, ["alpha"])).status, "NXDOMAIN");
  t.deepEqual(await digShort(lab, cb, ["both"]), ["10.41.2.2"], "only the address on the shared network");
  t.is((await dig(lab, ca, ["-x", "10.41.2.10"])).answers.length, 0, "no PTR across networks");
  // x.svc on network a is not a name cb may see: it goes upstream like any other dotted name,
  // exactly as if it did not exist (the fake upstream refuses names outside example.test).
  const leak = await dig(lab, cb, ["x.svc"]);
  t.deepEqual(leak.answers, [], leak.raw);
  t.not(leak.status, "NOERROR");
});

test("connect and disconnect change answers at once", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "net1", ["--subnet", "10.42.0.0/24"]);
  const client = await lab.addContainer("client");
  const svc = await lab.addContainer("svc");
  await d.cli(["network", "connect", "--name", "client", "net1", client]);
  t.is((await dig(lab, client, ["svc"])).status, "NXDOMAIN");
  await d.cli([
    "network",
    "connect",
    "--name",
    "svc",
    "--alias",
    "svc-alias",
    "--ip",
    "10.42.0.20",
    "net1",
    svc,
  ]);
  t.deepEqual(await digShort(lab, client, ["svc"]), ["10.42.0.20"]);
  t.deepEqual(await digShort(lab, client, ["svc-alias"]), ["10.42.0.20"]);
  await d.cli(["network", "disconnect", "net1", svc]);
  t.is((await dig(lab, client, ["svc"])).status, "NXDOMAIN");
  t.is((await dig(lab, client, ["svc-alias"])).status, "NXDOMAIN");
  t.is((await dig(lab, client, ["-x", "10.42.0.20"])).status, "NXDOMAIN");
  await d.cli(["network", "connect", "--name", "svc", "--ip", "10.42.0.21", "net1", svc]);
  t.deepEqual(await digShort(lab, client, ["svc"]), ["10.42.0.21"], "reconnected with a new address");
});

test("trellis dns lookup and network inspect's DNSNames", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "a", ["--subnet", "10.43.1.0/24"]);
  await createNetwork(d, "b", ["--subnet", "10.43.2.0/24"]);
  const ca = await lab.addContainer("ca");
  const cb = await lab.addContainer("cb");
  await d.cli(["network", "connect", "--name", "alpha", "--alias", "al", "--ip", "10.43.1.10", "a", ca]);
  await d.cli(["network", "connect", "--name", "beta", "--ip", "10.43.2.10", "b", cb]);

  const ok = await d.cli(["dns", "lookup", "--from", ca, "AL"]);
  t.regex(ok.stdout, /AL\s+5\s+A\s+10\.43\.1\.10/);
  const ptr = await d.cli(["dns", "lookup", "--from", "alpha", "--type", "ptr", "10.1.43.10.in-addr.arpa"]);
  t.regex(ptr.stdout, /PTR\s+alpha/);
  const hidden = await d.cli(["dns", "lookup", "--from", cb, "alpha"], { allowFail: true });
  t.is(hidden.code, 1);
  t.regex(hidden.stderr, /alpha: NXDOMAIN/);
  const admin = await d.cli(["dns", "lookup", "--json", "beta"]);
  t.like(JSON.parse(admin.stdout), {
    Rcode: "NOERROR",
    Source: "trellis",
    From: null,
    Answers: [{ Data: "10.43.2.10" }],
  });
  const unknownFrom = await d.cli(["dns", "lookup", "--from", "nobody", "alpha"], { allowFail: true });
  t.is(unknownFrom.code, 1);
  t.regex(unknownFrom.stderr, /not attached/);

  const api = await d.api("GET", `/trellis/dns/lookup?name=beta&type=A&from=${encodeURIComponent(cb)}`);
  t.is(api.status, 200);
  t.is(api.body.Answers[0].Data, "10.43.2.10");
  t.is((await d.api("GET", "/trellis/dns/lookup?type=A")).status, 400);

  const inspect = JSON.parse((await d.cli(["network", "inspect", "a"])).stdout)[0];
  const ep = Object.values(inspect.Containers as Record<string, { Name: string; DNSNames: string[] }>)[0]!;
  t.deepEqual(ep.DNSNames, ["alpha", "al"]);
});
