import test from "ava";
import fc from "fast-check";
import { parseArgs, parseKeyValues, type Spec } from "../../lib/cli/args.js";
import { UsageError } from "../../lib/cli/errors.js";
import { parseCidr, parseIPv6, parseIp } from "../../lib/cli/ip.js";
import { pairIpamConfig } from "../../lib/cli/ipam.js";
import { formatJson, formatTable, naturalCompare } from "../../lib/cli/output.js";
import { formatPublish, type PublishSpec, parsePublish, parsePublishFlags } from "../../lib/cli/publish.js";

const spec = {
  driver: { kind: "string", short: "d", help: "", default: "bridge" },
  subnet: { kind: "list", help: "" },
  ipRange: { kind: "list", long: "ip-range", help: "" },
  internal: { kind: "bool", help: "" },
  force: { kind: "bool", short: "f", help: "" },
  quiet: { kind: "bool", short: "q", help: "" },
  ip: { kind: "string", help: "" },
} satisfies Spec;

const usageMessage = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error("expected a UsageError");
};

test("parser: defaults when nothing is given", (t) => {
  const { values, positionals } = parseArgs(spec, []);
  t.deepEqual(values, {
    driver: "bridge",
    subnet: [],
    ipRange: [],
    internal: false,
    force: false,
    quiet: false,
    ip: undefined,
  });
  t.deepEqual(positionals, []);
});

test("parser: long, short, =value, attached short value, repeats, interleaved positionals", (t) => {
  const { values, positionals } = parseArgs(spec, [
    "a",
    "--subnet",
    "10.0.0.0/24",
    "--subnet=10.1.0.0/24",
    "-dmacvlan",
    "b",
    "--ip-range=10.0.0.0/25",
    "--internal",
    "-fq",
    "--ip",
    "10.0.0.9",
    "--ip=10.0.0.10",
  ]);
  t.deepEqual(values.subnet, ["10.0.0.0/24", "10.1.0.0/24"]);
  t.deepEqual(values.ipRange, ["10.0.0.0/25"]);
  t.is(values.driver, "macvlan");
  t.true(values.internal && values.force && values.quiet);
  t.is(values.ip, "10.0.0.10", "the last value of a string flag wins");
  t.deepEqual(positionals, ["a", "b"]);
});

test("parser: a cluster ends at the first flag taking a value, which may take the next arg", (t) => {
  t.is(parseArgs(spec, ["-fd", "overlay"]).values.driver, "overlay");
  t.is(parseArgs(spec, ["-fdoverlay"]).values.driver, "overlay");
  t.is(parseArgs(spec, ["--ip", "--not-a-flag"]).values.ip, "--not-a-flag");
});

test("parser: -- ends options; a lone - is a positional", (t) => {
  const { values, positionals } = parseArgs(spec, ["-f", "--", "--internal", "-q", "-"]);
  t.true(values.force);
  t.false(values.internal);
  t.deepEqual(positionals, ["--internal", "-q", "-"]);
  t.deepEqual(parseArgs(spec, ["-"]).positionals, ["-"]);
});

test("parser: booleans accept =true/=false only", (t) => {
  t.false(parseArgs(spec, ["--internal", "--internal=false"]).values.internal);
  t.true(parseArgs(spec, ["--internal=true"]).values.internal);
  t.is(
    usageMessage(() => parseArgs(spec, ["--internal=yes"])),
    'invalid value "yes" for --internal: must be true or false',
  );
});

test("parser: unknown flags and missing values are user errors naming the flag", (t) => {
  t.is(
    usageMessage(() => parseArgs(spec, ["--nope"])),
    "unknown flag: --nope",
  );
  t.is(
    usageMessage(() => parseArgs(spec, ["--nope=1"])),
    "unknown flag: --nope",
  );
  t.is(
    usageMessage(() => parseArgs(spec, ["-x"])),
    "unknown flag: -x",
  );
  t.is(
    usageMessage(() => parseArgs(spec, ["-fx"])),
    "unknown shorthand flag: 'x' in -fx",
  );
  t.is(
    usageMessage(() => parseArgs(spec, ["--subnet"])),
    "flag needs an argument: --subnet",
  );
  t.is(
    usageMessage(() => parseArgs(spec, ["-d"])),
    "flag needs an argument: -d",
  );
});

test("parser: stopAtPositional leaves the command and its flags untouched", (t) => {
  const { values, positionals } = parseArgs(spec, ["-f", "network", "ls", "--nope"], {
    stopAtPositional: true,
  });
  t.true(values.force);
  t.deepEqual(positionals, ["network", "ls", "--nope"]);
});

test("KEY=VALUE lists: bare key is empty, later duplicate wins, empty key refused", (t) => {
  t.deepEqual(parseKeyValues("--opt", ["a=1", "b", "c=x=y", "a=2"]), { a: "2", b: "", c: "x=y" });
  t.is(
    usageMessage(() => parseKeyValues("--label", ["=v"])),
    'invalid --label "=v": expected KEY=VALUE with a non-empty KEY',
  );
});

test("ip: IPv4 and IPv6 syntax", (t) => {
  t.is(parseIp("10.1.2.3").value, 0x0a010203n);
  t.is(parseIPv6("::"), 0n);
  t.is(parseIPv6("::1"), 1n);
  t.is(parseIPv6("2001:db8::1"), 0x20010db8000000000000000000000001n);
  t.is(parseIPv6("::ffff:1.2.3.4"), 0xffff01020304n);
  t.is(parseIPv6("1:2:3:4:5:6:7:8"), 0x00010002000300040005000600070008n);
  for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "fe80::1%eth0", "1.2.3.4::", ":1::"]) {
    t.throws(() => parseIPv6(bad), undefined, bad);
  }
  for (const bad of ["10.0.0", "10.0.0.256", "010.0.0.1", "a.b.c.d", ""]) {
    t.throws(() => parseIp(bad), undefined, bad);
  }
  t.deepEqual(parseCidr("10.1.2.3/16"), { family: 4, base: 0x0a010000n, prefix: 16 });
  t.throws(() => parseCidr("10.0.0.0/33"), { message: "prefix length must be between 0 and 32" });
  t.throws(() => parseCidr("10.0.0.0"), { message: "expected ADDRESS/PREFIX" });
});

test("ipam: gateways and ranges go to the subnet that contains them, in --subnet order", (t) => {
  const config = pairIpamConfig({
    subnets: ["10.1.0.0/16", "fd00:1::/64", "10.2.0.0/16"],
    gateways: ["10.2.0.1", "fd00:1::1", "10.1.0.254"],
    ipRanges: ["10.2.128.0/17"],
  });
  t.deepEqual(config, [
    { Subnet: "10.1.0.0/16", Gateway: "10.1.0.254" },
    { Subnet: "fd00:1::/64", Gateway: "fd00:1::1" },
    { Subnet: "10.2.0.0/16", IPRange: "10.2.128.0/17", Gateway: "10.2.0.1" },
  ]);
  t.deepEqual(pairIpamConfig({ subnets: [], gateways: [], ipRanges: [] }), []);
});

test("ipam: each mismatch is a one-line error naming the value", (t) => {
  const err = (subnets: string[], gateways: string[], ipRanges: string[] = []) =>
    usageMessage(() => pairIpamConfig({ subnets, gateways, ipRanges }));
  t.is(err(["10.0.0.0/33"], []), 'invalid --subnet "10.0.0.0/33": prefix length must be between 0 and 32');
  t.is(err(["10.0.0.0/24"], ["10.9.0.1"]), 'invalid --gateway "10.9.0.1": not inside any --subnet');
  t.is(err(["10.0.0.0/24"], ["fd00::1"]), 'invalid --gateway "fd00::1": not inside any --subnet');
  t.is(
    err(["10.0.0.0/24"], ["10.0.0.1", "10.0.0.2"]),
    'invalid --gateway "10.0.0.2": more --gateway values (2) than --subnet values (1)',
  );
  t.is(
    err(["10.0.0.0/24", "10.1.0.0/24"], ["10.0.0.1", "10.0.0.2"]),
    'invalid --gateway "10.0.0.2": --subnet "10.0.0.0/24" already has --gateway "10.0.0.1"',
  );
  t.is(
    err([], ["10.0.0.1"]),
    'invalid --gateway "10.0.0.1": more --gateway values (1) than --subnet values (0)',
  );
  t.is(
    err(["10.0.0.0/24"], [], ["10.0.0.0/23"]),
    'invalid --ip-range "10.0.0.0/23": not inside any --subnet',
  );
  t.is(
    err(["10.0.0.0/16", "10.0.1.0/24"], []),
    'invalid --subnet "10.0.1.0/24": overlaps --subnet "10.0.0.0/16"',
  );
  t.is(err(["10.0.0.0/24"], ["10.0.0.1/24"]), 'invalid --gateway "10.0.0.1/24": not an IP address');
});

test("publish: accepted forms", (t) => {
  t.deepEqual(parsePublish("8080:80"), { proto: "tcp", hostPort: 8080, containerPort: 80 });
  t.deepEqual(parsePublish("127.0.0.1:53:53/udp"), {
    proto: "udp",
    hostIp: "127.0.0.1",
    hostPort: 53,
    containerPort: 53,
  });
  t.deepEqual(parsePublishFlags(["1.2.3.4:80:8080/tcp", "443:443"]), [
    { Proto: "tcp", HostIp: "1.2.3.4", HostPort: 80, ContainerPort: 8080 },
    { Proto: "tcp", HostPort: 443, ContainerPort: 443 },
  ]);
});

test("publish: rejected forms name the value and the reason", (t) => {
  const cases: Array<[string, string]> = [
    ["80", "expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]"],
    ["0:80", 'host port "0" must be a number from 1 to 65535'],
    ["80:65536", 'container port "65536" must be a number from 1 to 65535'],
    ["80:0x50", 'container port "0x50" must be a number from 1 to 65535'],
    ["80:80/sctp", 'protocol "sctp" must be tcp or udp'],
    ["80:80/TCP", 'protocol "TCP" must be tcp or udp'],
    ["localhost:80:80", 'host IP "localhost" must be an IPv4 address'],
    ["::1:80:80", "host IP must be an IPv4 address; expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]"],
    [":80:80", 'host IP "" must be an IPv4 address'],
  ];
  for (const [text, reason] of cases) {
    t.is(
      usageMessage(() => parsePublishFlags([text])),
      `invalid --publish "${text}": ${reason}`,
      text,
    );
  }
  t.is(
    usageMessage(() => parsePublishFlags(["80:80", "80:81/tcp"])),
    'invalid --publish "80:81/tcp": host port already published by --publish "80:80"',
  );
  t.notThrows(() => parsePublishFlags(["80:80", "80:80/udp", "1.2.3.4:80:80"]));
});

test("publish: format and parse round-trip (property)", (t) => {
  const port = fc.integer({ min: 1, max: 65535 });
  const spec = fc.record(
    {
      proto: fc.constantFrom("tcp" as const, "udp" as const),
      hostIp: fc.ipV4(),
      hostPort: port,
      containerPort: port,
    },
    { requiredKeys: ["proto", "hostPort", "containerPort"] },
  );
  fc.assert(
    fc.property(spec, (p: PublishSpec) => {
      const text = formatPublish(p);
      t.deepEqual(parsePublish(text), p);
      t.is(formatPublish(parsePublish(text)), text);
    }),
  );
});

test("output: docker-style table widths and natural name order", (t) => {
  const table = formatTable(
    ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
    [
      ["0123456789ab", "bridge", "bridge", "local"],
      ["abcdef012345", "a-very-long-name", "bridge", "local"],
    ],
  );
  t.is(
    table,
    "NETWORK ID     NAME               DRIVER    SCOPE\n" +
      "0123456789ab   bridge             bridge    local\n" +
      "abcdef012345   a-very-long-name   bridge    local\n",
  );
  t.deepEqual(["net10", "net2", "a", "net1", "b"].sort(naturalCompare), ["a", "b", "net1", "net2", "net10"]);
  t.is(formatJson([{ a: {} }]), '[\n    {\n        "a": {}\n    }\n]\n');
});
