/**
 * A "container" is any network namespace: an `ip netns` name, a path to a netns file such as
 * /proc/PID/ns/net, or pid:PID. The endpoint name defaults to the netns name (pid-N for a process).
 */
import test from "ava";
import { Lab } from "../helpers/lab.js";
import { createNetwork, inspect, ping } from "../helpers/net.js";

test("connect by /proc/PID/ns/net and by pid:PID; disconnect the same way", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "refs", ["--subnet", "10.46.0.0/24"]);
  const a = await lab.addContainer("a");
  const b = await lab.addContainer("b");
  // processes living in those namespaces: their /proc/PID/ns/net are the containers
  const pa = lab.spawnIn(a, ["sleep", "300"]);
  const pb = lab.spawnIn(b, ["sleep", "300"]);
  await new Promise((r) => setTimeout(r, 200));
  await d.cli(["network", "connect", "refs", `/proc/${pa.pid}/ns/net`]);
  await d.cli(["network", "connect", "--name", "bee", "refs", `pid:${pb.pid}`]);
  const names = Object.values((await inspect(d, "refs")).Containers)
    .map((c) => c.Name)
    .sort();
  t.deepEqual(names, ["bee", `pid-${pa.pid}`]);
  const ipOf = async (name: string) =>
    Object.values((await inspect(d, "refs")).Containers)
      .find((c) => c.Name === name)!
      .IPv4Address.split("/")[0]!;
  t.true(await ping(lab, a, await ipOf("bee")), "a reaches b: the interfaces landed in the right namespaces");
  // the same namespace by another reference is the same container
  const again = await d.cli(["network", "connect", "refs", a], { allowFail: true });
  t.is(again.code, 1);
  t.regex(again.stderr, /already connected/);
  await d.cli(["network", "disconnect", "refs", `pid:${pa.pid}`]);
  await d.cli(["network", "disconnect", "refs", b]);
  t.deepEqual((await inspect(d, "refs")).Containers, {});
});
