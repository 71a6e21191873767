/** What the Docker plugin makes of `-o` options and of `-p` port bindings. */
import test from "ava";
import { TrellisError } from "../../lib/common/errors.js";
import { parseDaemonArgs } from "../../lib/daemon/config.js";
import { parseDockerNetworkOptions } from "../../lib/plugin/options.js";
import { assignPorts, samePorts } from "../../lib/plugin/ports.js";

const ID = "0123456789ab".padEnd(64, "f");

test("network options: a bridge by default, named after the engine's id; trellis.* parsed, the rest for the driver", (t) => {
  t.deepEqual(parseDockerNetworkOptions({}, ID), {
    mode: "bridge",
    name: "docker-0123456789ab",
    driverOptions: {},
  });
  t.deepEqual(
    parseDockerNetworkOptions({ "trellis.name": "web", "com.docker.network.driver.mtu": "1400" }, ID),
    { mode: "bridge", name: "web", driverOptions: { "com.docker.network.driver.mtu": "1400" } },
  );
  t.deepEqual(parseDockerNetworkOptions({ "trellis.mode": "overlay", "trellis.name": "ovl" }, ID), {
    mode: "overlay",
    name: "ovl",
    driverOptions: {},
  });
});

test("network options: clear refusals", (t) => {
  const refuses = (opts: Record<string, string>, message: RegExp) => {
    const err = t.throws(() => parseDockerNetworkOptions(opts, ID), { instanceOf: TrellisError });
    t.regex(err?.message ?? "", message);
  };
  refuses(
    { "trellis.nmae": "x" },
    /unknown option "trellis\.nmae" \(trellis options: trellis\.mode, trellis\.name\)/,
  );
  refuses({ "trellis.mode": "macvlan" }, /invalid value "macvlan" for option trellis\.mode/);
  refuses({ "trellis.name": "-bad" }, /invalid value "-bad" for option trellis\.name/);
  refuses({ "trellis.mode": "overlay" }, /an overlay network needs -o trellis\.name=NAME/);
  refuses(
    { "trellis.mode": "overlay", "trellis.name": "o", mtu: "1" },
    /unknown option "mtu" for an overlay network/,
  );
});

test("ports: explicit, range, any (ephemeral), per address, IPv6 skipped, clashes", (t) => {
  const b = (hostPort: number, hostPortEnd = 0, hostIp = "", proto = 6) => ({
    proto,
    port: 80,
    hostIp,
    hostPort,
    hostPortEnd,
  });
  t.deepEqual(assignPorts([b(8080, 8080)], []), [{ proto: "tcp", hostPort: 8080, containerPort: 80 }]);
  const taken = [{ proto: "tcp" as const, hostPort: 8080, containerPort: 1 }];
  t.deepEqual(assignPorts([b(8080, 8082)], taken), [{ proto: "tcp", hostPort: 8081, containerPort: 80 }]);
  t.is(assignPorts([b(0)], [])[0]?.hostPort, 49153);
  t.deepEqual(assignPorts([b(53, 0, "10.0.0.1", 17), b(53, 0, "::", 17)], []), [
    { proto: "udp", hostPort: 53, containerPort: 80, hostIp: "10.0.0.1" },
  ]);
  t.deepEqual(assignPorts([b(8080, 0, "0.0.0.0")], [])[0], {
    proto: "tcp",
    hostPort: 8080,
    containerPort: 80,
  });
  t.throws(() => assignPorts([b(8080)], taken), {
    message: "host port 0.0.0.0:8080/tcp is already published on this host",
  });
  t.throws(() => assignPorts([b(8080, 8080), b(8080, 8080)], []), { message: /already published/ });
  const both = [...taken, { ...taken[0]!, hostPort: 8081 }];
  t.throws(() => assignPorts([b(8080, 8081)], both), {
    message: "no free host port in 0.0.0.0:8080-8081/tcp",
  });
  t.throws(() => assignPorts([b(80, 0, "", 132)], []), { message: /cannot publish protocol 132/ });
  t.true(samePorts(assignPorts([b(1), b(2)], []), assignPorts([b(2), b(1)], [])));
});

test("trellisd flags: --docker-plugin and its sockets; off by default", (t) => {
  const plugin = (argv: string[]) => {
    const parsed = parseDaemonArgs(argv);
    return parsed.kind === "run" ? parsed.config.dockerPlugin : undefined;
  };
  t.is(plugin([]), undefined);
  t.deepEqual(plugin(["--docker-plugin"]), {
    socket: "/run/docker/plugins/trellis.sock",
    engineSocket: "/run/docker.sock",
  });
  t.deepEqual(
    plugin(["--docker-plugin-socket=/lab/p/trellis.sock", "--docker-engine-socket", "/lab/d.sock"]),
    {
      socket: "/lab/p/trellis.sock",
      engineSocket: "/lab/d.sock",
    },
  );
  t.throws(() => parseDaemonArgs(["--docker-plugin-socket"]), {
    message: "flag --docker-plugin-socket needs a value",
  });
});
