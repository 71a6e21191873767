/**
 * Listener lifecycle: up on a container's first connect, down on its last disconnect, down when its
 * namespace dies (the periodic sweep), and back after a daemon restart (clean or SIGKILL).
 */
import test from "ava";
import { waitFor } from "../helpers/lab.js";
import { createNetwork } from "../helpers/net.js";
import { run } from "../helpers/proc.js";
import { dig, digShort, dnsLab, FAKE_UPSTREAM } from "./dns-lab.js";

test("listeners: up on first connect, still up while one endpoint remains, gone on the last disconnect", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "a", ["--subnet", "10.45.1.0/24"]);
  await createNetwork(d, "b", ["--subnet", "10.45.2.0/24"]);
  const c1 = await lab.addContainer("c1");
  t.is((await dig(lab, c1, ["c1"])).status, "NONE", "nothing listens before a connect");
  await d.cli(["network", "connect", "--name", "c1", "a", c1]);
  await d.cli(["network", "connect", "--name", "c1", "b", c1]);
  t.is((await digShort(lab, c1, ["c1"])).length, 2);
  await d.cli(["network", "disconnect", "a", c1]);
  t.deepEqual(await digShort(lab, c1, ["c1"]), ["10.45.2.2"]);
  await d.cli(["network", "disconnect", "b", c1]);
  const gone = await lab.exec(c1, ["dig", "@127.0.0.11", "+tries=1", "+time=1", "c1"], { allowFail: true });
  t.not(gone.code, 0);
  t.regex(gone.stdout + gone.stderr, /refused|no servers|timed out/);
  await d.cli(["network", "connect", "--name", "again", "a", c1]);
  t.deepEqual(await digShort(lab, c1, ["again"]), ["10.45.1.3"]);
});

test("a daemon restart (SIGTERM, then SIGKILL) brings the listeners back", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "net1", ["--subnet", "10.46.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "--name", "one", "--alias", "uno", "net1", c1]);
  await d.cli(["network", "connect", "--name", "two", "net1", c2]);
  t.deepEqual(await digShort(lab, c1, ["two"]), ["10.46.0.3"]);
  await d.restart();
  t.deepEqual(await digShort(lab, c1, ["two"]), ["10.46.0.3"], "after SIGTERM + start");
  t.deepEqual(await digShort(lab, c2, ["uno"]), ["10.46.0.2"]);
  t.deepEqual(await digShort(lab, c2, ["+tcp", "one"]), ["10.46.0.2"]);
  await d.kill("SIGKILL");
  await d.start();
  t.deepEqual(await digShort(lab, c1, ["two"]), ["10.46.0.3"], "after SIGKILL + start");
  t.deepEqual(await digShort(lab, c1, ["+tcp", "two"]), ["10.46.0.3"], "TCP rebinds despite TIME_WAIT");
});

test("a namespace that dies loses its listeners and its names at the next sweep", async (t) => {
  const { lab, d } = await dnsLab(t, { daemonArgs: ["--sweep-interval", "200"] });
  await createNetwork(d, "net1", ["--subnet", "10.47.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "--name", "one", "net1", c1]);
  await d.cli(["network", "connect", "--name", "two", "net1", c2]);
  t.deepEqual(await digShort(lab, c1, ["two"]), ["10.47.0.3"]);
  const del = await run(["ip", "netns", "del", c2]);
  t.is(del.code, 0, del.stderr);
  await waitFor(() => d.logs().includes('"DNS listeners closed"'), {
    timeoutMs: 5000,
    what: "listeners closed",
  });
  t.is((await dig(lab, c1, ["two"])).status, "NXDOMAIN");
  t.deepEqual(await digShort(lab, c1, ["one"]), ["10.47.0.2"]);
});

test("a container keeps port 53 for itself: 127.0.0.11:53 is redirected inside its namespace, removed on the last disconnect", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "net1", ["--subnet", "10.49.0.0/24"]);
  const srv = await lab.addContainer("srv");
  const client = await lab.addContainer("client");
  await d.cli(["network", "connect", "--name", "srv", "--ip", "10.49.0.10", "net1", srv]);
  await d.cli(["network", "connect", "--name", "client", "net1", client]);
  // The container's own DNS server on 0.0.0.0:53 (UDP and TCP) binds despite trellis's listeners.
  const own = lab.spawnIn(srv, [process.execPath, FAKE_UPSTREAM, "53"]);
  await waitFor(() => lab.output(own).includes("ready"), {
    timeoutMs: 10_000,
    what: "the container's server",
  });
  t.deepEqual(await digShort(lab, srv, ["client"]), ["10.49.0.2"], "127.0.0.11 is still trellis");
  const viaOwn = await lab.exec(client, [
    "dig",
    "@10.49.0.10",
    "+short",
    "+tries=1",
    "+time=3",
    "mine.example.test",
  ]);
  t.is(viaOwn.stdout.trim(), "192.0.2.1", "the container's server answers on its address");
  const rules = await lab.exec(srv, ["nft", "list", "table", "ip", "trellis_dns"]);
  t.regex(rules.stdout, /ip daddr 127\.0\.0\.11 udp dport 53 notrack udp dport set \d+/);
  await d.cli(["network", "disconnect", "net1", srv]);
  await waitFor(
    async () =>
      (await lab.exec(srv, ["nft", "list", "table", "ip", "trellis_dns"], { allowFail: true })).code !== 0,
    { timeoutMs: 5000, what: "the redirect table to go" },
  );
  t.pass();
});
