/**
 * A real Docker engine (dockerd 20.10 inside a lab host namespace) with trellisd as its network and
 * IPAM driver: plain docker commands, real containers, real traffic. See test/helpers/docker-plugin.ts
 * for the set-up and docker-engine-notes.md for what the engine sends.
 */
import test from "ava";
import {
  type DockerHost,
  dexec,
  dget,
  dockerHost,
  dping,
  ipIn,
  nsGet,
  runSleeper,
  runWeb,
} from "../helpers/docker-plugin.js";
import { Lab, waitFor } from "../helpers/lab.js";
import { type NetworkJson, ping } from "../helpers/net.js";

/** waitFor for a value: resolves to the first defined result. */
async function until<T>(fn: () => Promise<T | undefined>, what: string): Promise<T> {
  return (await waitFor(fn, { timeoutMs: 10_000, what })) as T;
}

/** The trellis network's view, once the plugin named it after the engine's network. */
function trellisView(h: DockerHost, name: string): Promise<NetworkJson> {
  return until(async () => {
    const r = await h.daemon.api("GET", `/networks/${name}`);
    return r.status === 200 ? (r.body as NetworkJson) : undefined;
  }, `trellis network ${name}`);
}

/** Host-side links the plugin made (veth host ends and far ends) in the host namespace. */
async function pluginLinks(lab: Lab, h: DockerHost): Promise<string[]> {
  const r = await lab.exec(h.host.ns, ["ip", "-j", "link", "show"]);
  return (JSON.parse(r.stdout) as Array<{ ifname: string }>)
    .map((l) => l.ifname)
    .filter((n) => /^(veth|vdk)[0-9a-f]/.test(n));
}

test("trellis IPAM: docker run, ping and TCP by IP and by name, trellis sees it, connect/disconnect, rm", async (t) => {
  const lab = await Lab.create(t);
  const h = await dockerHost(t, lab, "h1");
  await h.docker([
    "network",
    "create",
    "-d",
    "trellis",
    "--ipam-driver",
    "trellis",
    "--subnet",
    "10.70.0.0/24",
    "--ip-range",
    "10.70.0.128/25",
    "tnet",
  ]);
  const view = await trellisView(h, "tnet");
  const dockerId = (await h.docker(["network", "inspect", "-f", "{{.Id}}", "tnet"])).stdout.trim();
  t.is(view.Id, dockerId, "the trellis network has the engine's id");

  const webIp = await runWeb(h, "tnet", "web");
  const clientIp = await runSleeper(h, "tnet", "client", ["--network-alias", "cli"]);
  t.regex(webIp, /^10\.70\.0\.(1[2-9][0-9]|2[0-5][0-9])$/, "from the --ip-range");
  t.not(webIp, clientIp);
  t.true(await dping(h, "client", webIp), "ping by IP");
  t.true(await dping(h, "client", "web"), "ping by name (the engine's DNS)");
  t.is(await dget(h, "client", "web"), "web", "TCP by name");
  t.true(await dping(h, "web", "cli"), "by --network-alias");
  const route = await dexec(h, "client", ["ip", "route"]);
  t.regex(route.stdout, /default via 10\.70\.0\.1 dev eth0/, "default route through trellis's gateway");

  // trellis knows the endpoints under the engine's names, and a namespace it attaches itself
  // reaches the Docker containers (and back) and resolves them through trellis's DNS.
  const named = await until(async () => {
    const v = await trellisView(h, "tnet");
    const names = Object.values(v.Containers).map((c) => c.Name);
    return names.includes("web") && names.includes("client") ? v : undefined;
  }, "engine names in trellis");
  const web = Object.values(named.Containers).find((c) => c.Name === "web")!;
  t.is(web.IPv4Address, `${webIp}/24`);
  const c1 = await lab.addContainer("c1");
  await h.daemon.cli(["network", "connect", "tnet", c1]);
  t.is(await nsGet(lab, c1, webIp), "web", "trellis-attached namespace → Docker container");
  const c1Ip = Object.values((await trellisView(h, "tnet")).Containers).find((c) => c.Name === c1)!;
  t.true(await dping(h, "client", c1Ip.IPv4Address.split("/")[0]!), "Docker container → trellis namespace");
  const dig = await lab.exec(c1, ["dig", "+short", "@127.0.0.11", "web"]);
  t.is(dig.stdout.trim(), webIp, "trellis DNS resolves the Docker container's name");
  // the other way: the engine's resolver forwards what it does not know to --dns, trellis's DNS on
  // the gateway, which knows the namespaces trellis attached
  await runSleeper(h, "tnet", "asker", ["--dns", "10.70.0.1"]);
  const c1Addr = c1Ip.IPv4Address.split("/")[0]!;
  t.regex((await dexec(h, "asker", ["nslookup", c1])).stdout, new RegExp(`Address: ${c1Addr}\\b`));

  // docker network connect / disconnect on a running container (second network, engine IPAM)
  await h.docker(["network", "create", "-d", "trellis", "--subnet", "10.70.1.0/24", "tnet2"]);
  const otherIp = await runSleeper(h, "tnet2", "other");
  await h.docker(["network", "connect", "tnet2", "client"]);
  const second = await ipIn(h, "client", "tnet2");
  t.regex(second, /^10\.70\.1\.\d+$/);
  t.regex((await dexec(h, "client", ["ip", "-o", "-4", "addr"])).stdout, /eth1\s+inet 10\.70\.1\./);
  t.true(await dping(h, "client", "other"), "reaches the second network by name");
  await h.docker(["network", "disconnect", "tnet2", "client"]);
  t.notRegex((await dexec(h, "client", ["ip", "-o", "link"])).stdout, /eth1/, "interface gone");
  t.false(await dping(h, "client", otherIp), "the second network is out of reach again");

  // trellis refuses to remove or prune what the engine owns
  const rm = await h.daemon.cli(["network", "rm", "tnet"], { allowFail: true });
  t.regex(rm.stderr, /belongs to a Docker engine/);

  await h.daemon.cli(["network", "disconnect", "tnet", c1]);
  await h.docker(["rm", "-f", "web", "client", "other", "asker"]);
  await h.docker(["network", "rm", "tnet", "tnet2"]);
  const ls = await h.daemon.cli(["network", "ls", "-q"]);
  t.is(ls.stdout.trim(), "", "both trellis networks went with the engine's");
  await waitFor(async () => (await pluginLinks(lab, h)).length === 0, { what: "no veths left" });
  t.pass();
});

test("engine IPAM, a published port from another host, an internal network", async (t) => {
  const lab = await Lab.create(t);
  const h = await dockerHost(t, lab, "h1");
  const outside = await lab.addHost("outside");
  await h.docker(["network", "create", "-d", "trellis", "--subnet", "10.71.0.0/24", "enet"]);
  const webIp = await runWeb(h, "enet", "web", ["-p", "8080:80"]);
  t.is(webIp, "10.71.0.2", "the engine's own IPAM assigned it");
  const view = await trellisView(h, "enet");
  t.true(
    Object.values(view.Containers).some((c) => c.IPv4Address === "10.71.0.2/24"),
    "trellis recorded the engine's address",
  );
  t.is(await nsGet(lab, outside.ns, h.host.underlayIp, 8080), "web", "published port from another host");
  t.is(await nsGet(lab, outside.ns, h.host.underlayIp, 8081), "", "nothing else is published");
  t.true(await dping(h, "web", outside.underlayIp), "egress through trellis's gateway (masquerade)");

  // a second `-p 8080` on the same host is refused with trellis's message
  const clash = await h.docker(
    ["run", "-d", "--name", "web2", "--network", "enet", "-p", "8080:80", "bb:latest", "sleep", "60"],
    { allowFail: true },
  );
  t.not(clash.code, 0);
  t.regex(clash.stderr, /host port 0\.0\.0\.0:8080\/tcp is already published/);
  await h.docker(["rm", "-f", "web2"], { allowFail: true });

  await h.docker(["network", "create", "-d", "trellis", "--internal", "--subnet", "10.71.1.0/24", "inet"]);
  const aIp = await runSleeper(h, "inet", "ia");
  await runSleeper(h, "inet", "ib");
  t.true(await dping(h, "ib", aIp), "inside an internal network");
  t.true(await dping(h, "ib", "ia"), "by name");
  t.false(await dping(h, "ib", outside.underlayIp), "no way out of an internal network");
  t.notRegex((await dexec(h, "ib", ["ip", "route"])).stdout, /default/, "no default route");
  t.false(await ping(lab, outside.ns, aIp), "no way in either");

  await h.docker(["rm", "-f", "web"]);
  t.is(await nsGet(lab, outside.ns, h.host.underlayIp, 8080), "", "the port went with the container");

  // IPv6 with the engine's IPAM: both families recorded, a v6 default route through trellis
  await h.docker([
    "network",
    "create",
    "-d",
    "trellis",
    "--ipv6",
    "--subnet",
    "10.71.2.0/24",
    "--subnet",
    "fd00:71:2::/64",
    "v6net",
  ]);
  await runSleeper(h, "v6net", "s6");
  await runSleeper(h, "v6net", "t6");
  const v6 = (
    await h.docker(["inspect", "-f", '{{(index .NetworkSettings.Networks "v6net").GlobalIPv6Address}}', "s6"])
  ).stdout.trim();
  t.regex(v6, /^fd00:71:2::/);
  t.is((await dexec(h, "t6", ["ping", "-6", "-c", "1", "-W", "2", v6])).code, 0, "ping over IPv6");
  t.regex((await dexec(h, "t6", ["ip", "-6", "route"])).stdout, /default via fd00:71:2::1/);
});

test("bad options and conflicts: the engine shows trellis's messages", async (t) => {
  const lab = await Lab.create(t);
  const h = await dockerHost(t, lab, "h1");
  const fails = async (args: string[], message: RegExp, what: string) => {
    const r = await h.docker(args, { allowFail: true });
    t.not(r.code, 0, what);
    t.regex(r.stderr, message, what);
  };
  const create = ["network", "create", "-d", "trellis"];
  await fails(
    [...create, "-o", "trellis.bogus=1", "n1"],
    /remote: unknown option "trellis\.bogus"/,
    "option",
  );
  await fails(
    [...create, "-o", "com.docker.network.bridge.nonsense=1", "n1"],
    /unknown option "com\.docker\.network\.bridge\.nonsense" for the bridge driver/,
    "bridge option",
  );
  await fails(
    [...create, "-o", "trellis.mode=overlay", "-o", "trellis.name=o1", "--ipam-driver", "trellis", "n1"],
    /overlay networks need a cluster/,
    "overlay without a cluster",
  );
  await fails(
    [...create, "-o", "trellis.mode=overlay", "n1"],
    /needs -o trellis\.name=NAME/,
    "unnamed overlay",
  );
  await fails(
    [...create, "--ipam-driver", "trellis", "--ipam-opt", "color=blue", "n1"],
    /unknown IPAM option "color"/,
    "IPAM option",
  );
  await h.daemon.cli(["network", "create", "--subnet", "10.72.0.0/24", "mine"]);
  await fails(
    [...create, "--ipam-driver", "trellis", "--subnet", "10.72.0.0/25", "n2"],
    /subnet 10\.72\.0\.0\/25 overlaps/,
    "overlap, trellis IPAM",
  );
  await fails([...create, "--subnet", "10.72.0.128/25", "n2"], /overlaps/, "overlap, engine IPAM");
  // exhausted: a /29 with a 2-address range holds two containers, the third gets trellis's message
  await h.docker([
    ...create,
    "--ipam-driver",
    "trellis",
    "--subnet",
    "10.73.0.0/29",
    "--ip-range",
    "10.73.0.4/31",
    "tiny",
  ]);
  await runSleeper(h, "tiny", "x1");
  await runSleeper(h, "tiny", "x2");
  const third = await h.docker(
    ["run", "-d", "--name", "x3", "--network", "tiny", "bb:latest", "sleep", "60"],
    {
      allowFail: true,
    },
  );
  t.not(third.code, 0);
  t.regex(third.stderr, /no free address in 10\.73\.0\.0\/29 \(range 10\.73\.0\.4\/31\)/);
  const ls = (await h.docker(["network", "ls", "--format", "{{.Name}}"])).stdout;
  t.notRegex(ls, /\bn1\b|\bn2\b/, "no failed network was left in the engine");
  const trellis = await until(async () => {
    const body = (await h.daemon.api("GET", "/networks")).body as Array<{ Name: string }>;
    const names = body.map((n) => n.Name);
    return names.includes("tiny") ? names : undefined;
  }, "the engine's name for tiny");
  t.deepEqual(trellis.sort(), ["mine", "tiny"], "nor in trellis");
});

test("a network made with trellis, used by the engine through -o trellis.name: shared by both kinds of container", async (t) => {
  const lab = await Lab.create(t);
  const h = await dockerHost(t, lab, "h1");
  await h.daemon.cli(["network", "create", "--subnet", "10.76.0.0/24", "shared"]);
  const c1 = await lab.addContainer("c1");
  await h.daemon.cli(["network", "connect", "--ip", "10.76.0.50", "shared", c1]);
  const create = [
    "network",
    "create",
    "-d",
    "trellis",
    "--ipam-driver",
    "trellis",
    "-o",
    "trellis.name=shared",
  ];
  const wrong = await h.docker([...create, "--subnet", "10.76.9.0/24", "dshared"], { allowFail: true });
  t.regex(
    wrong.stderr,
    /network shared already exists with other addresses: create it on this engine with --subnet 10\.76\.0\.0\/24 --gateway 10\.76\.0\.1/,
  );
  const unnamed = await h.docker(
    ["network", "create", "-d", "trellis", "--ipam-driver", "trellis", "--subnet", "10.76.0.0/24", "other"],
    { allowFail: true },
  );
  t.regex(unnamed.stderr, /subnet 10\.76\.0\.0\/24 is trellis network shared's: add -o trellis\.name=shared/);
  await h.docker([...create, "--subnet", "10.76.0.0/24", "dshared"]);
  const ip = await runSleeper(h, "dshared", "dc");
  t.not(ip, "10.76.0.50", "one allocator for both kinds of container");
  t.true(await dping(h, "dc", "10.76.0.50"), "Docker container → trellis namespace");
  t.true(await ping(lab, c1, ip), "trellis namespace → Docker container");
  const view = await trellisView(h, "shared");
  t.deepEqual(
    Object.values(view.Containers)
      .map((c) => c.IPv4Address)
      .sort(),
    [`${ip}/24`, "10.76.0.50/24"].sort(),
  );
  await h.docker(["rm", "-f", "dc"]);
  await h.docker(["network", "rm", "dshared"]);
  const after = await trellisView(h, "shared");
  t.deepEqual(
    Object.values(after.Containers).map((c) => c.Name),
    [c1],
    "trellis's network stays, with its namespace",
  );
  t.true(await ping(lab, c1, "10.76.0.1"));
});

test("trellisd killed (SIGKILL) and restarted under running containers: they keep working, new runs work", async (t) => {
  const lab = await Lab.create(t);
  const h = await dockerHost(t, lab, "h1");
  const outside = await lab.addHost("outside");
  await h.docker([
    "network",
    "create",
    "-d",
    "trellis",
    "--ipam-driver",
    "trellis",
    "--subnet",
    "10.74.0.0/24",
    "rnet",
  ]);
  const webIp = await runWeb(h, "rnet", "web", ["-p", "8080:80"]);
  await runSleeper(h, "rnet", "client");
  t.is(await dget(h, "client", "web"), "web");

  await h.daemon.kill("SIGKILL");
  t.is(await dget(h, "client", "web"), "web", "data plane up while trellisd is down");
  t.is(await nsGet(lab, outside.ns, h.host.underlayIp, 8080), "web", "published port too");
  // A docker run while trellisd is down: the engine retries the refused calls (1, 2, 4, 8 s) and
  // goes on once trellisd is back.
  const during = h.docker(
    ["run", "-d", "--name", "during", "--network", "rnet", "bb:latest", "sleep", "600"],
    {
      allowFail: true,
    },
  );
  await new Promise((r) => setTimeout(r, 1500));
  await h.daemon.start();
  const duringRun = await during;
  t.is(duringRun.code, 0, `a docker run that hit the restart: ${duringRun.stderr}`);
  t.true(await dping(h, "during", "web"), "and its container is on the network");

  t.is(await dget(h, "client", webIp), "web", "after the restart");
  t.is(await nsGet(lab, outside.ns, h.host.underlayIp, 8080), "web");
  const newIp = await runSleeper(h, "rnet", "late");
  t.not(newIp, webIp);
  t.true(await dping(h, "late", "web"), "a container started after the restart reaches the old ones");
  await h.docker(["rm", "-f", "client"]); // Leave/DeleteEndpoint for an endpoint made before the kill
  const view = await trellisView(h, "rnet");
  const names = Object.values(view.Containers)
    .map((c) => c.Name)
    .sort();
  t.deepEqual(names, ["during", "late", "web"], "the removed container's endpoint went");
  const again = await runSleeper(h, "rnet", "client");
  t.true(await dping(h, "client", "late"), "and its name can be used again");
  t.not(again, "");
});
