/**
 * trellis works beside a Docker engine's iptables rules: FORWARD policy DROP with Docker's chains
 * (built here exactly as Docker 20.10 builds them, inside the lab host namespace) would drop trellis
 * traffic, including traffic inside one bridge when br_netfilter is on, unless trellis keeps its
 * exceptions in DOCKER-USER.
 */
import test from "ava";
import { Lab } from "../helpers/lab.js";
import { createNetwork, fetchMarker, ipOf, ping, startServer } from "../helpers/net.js";

const DOCKER_FORWARD_SETUP = [
  ["-N", "DOCKER"],
  ["-N", "DOCKER-ISOLATION-STAGE-1"],
  ["-N", "DOCKER-ISOLATION-STAGE-2"],
  ["-N", "DOCKER-USER"],
  ["-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"],
  ["-A", "DOCKER-ISOLATION-STAGE-2", "-j", "RETURN"],
  ["-A", "DOCKER-USER", "-j", "RETURN"],
  ["-A", "FORWARD", "-j", "DOCKER-USER"],
  ["-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"],
  ["-P", "FORWARD", "DROP"],
];

test("with Docker's FORWARD DROP present, trellis traffic flows; DOCKER-USER holds exactly trellis's exceptions", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const outside = await lab.addHost("outside");
  for (const args of DOCKER_FORWARD_SETUP) await lab.exec(host.ns, ["iptables", "-w", ...args]);
  const d = await lab.startDaemon(host, { args: ["--sweep-interval", "200"] });
  await createNetwork(d, "dk", ["--subnet", "10.95.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "dk", c1]);
  await d.cli(["network", "connect", "-p", "8080:80", "dk", c2]);
  const ip2 = await ipOf(d, "dk", c2);
  await startServer(lab, c2, 80, "behind-docker-rules");
  await startServer(lab, outside.ns, 9000, "outside");

  t.true(await ping(lab, c1, ip2), "inside one bridge");
  t.is(await fetchMarker(lab, c1, outside.underlayIp, 9000), "outside", "egress");
  t.is(await fetchMarker(lab, outside.ns, host.underlayIp, 8080), "behind-docker-rules", "published port");

  const rules = async () =>
    (await lab.exec(host.ns, ["iptables", "-w", "-S", "DOCKER-USER"])).stdout
      .split("\n")
      .filter((l) => l.includes("trellis"));
  t.is((await rules()).length, 2, "one -i and one -o rule for the bridge");

  const flush = async () => {
    await lab.exec(host.ns, ["iptables", "-w", "-F", "DOCKER-USER"]);
    await lab.exec(host.ns, ["iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN"]);
  };
  // Proof the exceptions are what makes it work: with the daemon stopped (data plane stays up) and
  // the exceptions gone, Docker's policy drops the traffic; the restarted daemon puts them back.
  t.is(await d.kill("SIGTERM"), 0);
  await flush();
  t.false(await ping(lab, c1, ip2), "Docker's DROP policy did not apply: this test proves nothing");
  await d.restart();
  t.is((await rules()).length, 2);
  t.true(await ping(lab, c1, ip2));
  // A Docker engine restarted under a running trellisd: the periodic sync restores them.
  await flush();
  let restored = false;
  for (let i = 0; i < 50 && !restored; i++) {
    await new Promise((r) => setTimeout(r, 100));
    restored = (await rules()).length === 2;
  }
  t.true(restored, "trellis restored its DOCKER-USER rules");
  t.true(await ping(lab, c1, ip2));

  await d.cli(["network", "disconnect", "dk", c1]);
  await d.cli(["network", "disconnect", "dk", c2]);
  await d.cli(["network", "rm", "dk"]);
  t.deepEqual(await rules(), [], "network rm removed its DOCKER-USER rules");
});
