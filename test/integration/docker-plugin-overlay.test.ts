/**
 * Two Docker engines on two lab hosts, each with its own trellisd as network plugin, the two
 * trellisd joined in a cluster: `docker network create -d trellis -o trellis.mode=overlay` on each
 * engine gives one overlay, and containers run by different engines reach each other by address
 * and, through the engine's resolver forwarding to trellis's DNS on the gateway (`--dns`), by name.
 */
import test from "ava";
import { dget, dockerHost, dping, runSleeper, runWeb } from "../helpers/docker-plugin.js";
import { Lab, type LabDaemon, waitFor } from "../helpers/lab.js";

const SUBNET = "10.60.0.0/24";
const GATEWAY = "10.60.0.1";

async function networkNames(d: LabDaemon): Promise<string[]> {
  return ((await d.api("GET", "/networks")).body as Array<{ Name: string }>).map((n) => n.Name);
}

test("an overlay across two engines: containers on different hosts reach each other by IP and by name", async (t) => {
  const lab = await Lab.create(t);
  const cluster = (name: string, join?: string) => (h: { underlayIp: string }) => [
    "--advertise-addr",
    h.underlayIp,
    "--gossip-profile",
    "test",
    "--node-name",
    name,
    ...(join ? ["--join", join] : []),
  ];
  const a = await dockerHost(t, lab, "h1", { daemonArgs: cluster("node1") });
  const b = await dockerHost(t, lab, "h2", { daemonArgs: cluster("node2", a.host.underlayIp) });
  await waitFor(
    async () => {
      const nodes = (await b.daemon.api("GET", "/trellis/nodes")).body as Array<{ State: string }>;
      return nodes.filter((n) => n.State === "alive").length === 2;
    },
    { timeoutMs: 15_000, what: "the two trellisd see each other" },
  );
  const create = (name: string) => [
    "network",
    "create",
    "-d",
    "trellis",
    "--ipam-driver",
    "trellis",
    "-o",
    "trellis.mode=overlay",
    "-o",
    "trellis.name=ovl",
    "--subnet",
    SUBNET,
    "--gateway",
    GATEWAY,
    name,
  ];
  await a.docker(create("ovl"));
  await waitFor(async () => (await networkNames(b.daemon)).includes("ovl"), {
    what: "the overlay reaches h2's trellisd",
  });
  await b.docker(create("ovl")); // joins the cluster's overlay of that name

  const dns = ["--dns", GATEWAY];
  const ipA = await runWeb(a, "ovl", "ca", dns);
  const ipB = await runSleeper(b, "ovl", "cb", dns);
  t.not(ipA, ipB, "each host hands out addresses from its own blocks");
  t.true(await dping(b, "cb", ipA), "h2 → h1 by IP");
  t.true(await dping(a, "ca", ipB), "h1 → h2 by IP");
  t.is(await dget(b, "cb", ipA), "ca", "TCP across hosts");

  // by name: the engine's resolver does not know the other engine's containers and forwards the
  // query to --dns, trellis's DNS on the gateway, which knows them from the cluster
  await waitFor(async () => dping(b, "cb", "ca"), { timeoutMs: 15_000, what: "cb resolves ca" });
  t.is(await dget(b, "cb", "ca"), "ca", "TCP by name across hosts");
  t.true(await dping(a, "ca", "cb"), "h1 → h2 by name");
  const lookup = await b.docker(["exec", "cb", "nslookup", "ca"], { allowFail: true });
  t.regex(lookup.stdout, new RegExp(ipA.replaceAll(".", "\\.")));

  // each engine's network maps onto the one overlay; removing it on one engine leaves the other
  await b.docker(["rm", "-f", "cb"]);
  await b.docker(["network", "rm", "ovl"]);
  t.true((await networkNames(b.daemon)).includes("ovl"), "the cluster's overlay stays");
  t.true(await dping(a, "ca", GATEWAY), "h1's containers are untouched");
});
