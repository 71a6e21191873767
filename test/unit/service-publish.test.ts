/** The port flags of `service create` and the PORTS column of `service ls`. */
import assert from "node:assert/strict";
import test from "ava";
import fc from "fast-check";
import { UsageError } from "../../lib/cli/errors.js";
import {
  formatServicePort,
  parseServicePortFlags,
  parseServicePublish,
  parseVipPort,
} from "../../lib/cli/service-publish.js";

test("-p short form: PUBLISHED:TARGET, protocol and mode prefix", (t) => {
  t.deepEqual(parseServicePublish("8080:80"), {
    Protocol: "tcp",
    TargetPort: 80,
    PublishedPort: 8080,
    PublishMode: "ingress",
  });
  t.deepEqual(parseServicePublish("5353:53/udp"), {
    Protocol: "udp",
    TargetPort: 53,
    PublishedPort: 5353,
    PublishMode: "ingress",
  });
  t.deepEqual(parseServicePublish("mode=host,8443:443/tcp"), {
    Protocol: "tcp",
    TargetPort: 443,
    PublishedPort: 8443,
    PublishMode: "host",
  });
  t.deepEqual(parseServicePublish("8443:443,mode=ingress").PublishMode, "ingress");
});

test("-p long form: Docker's published=,target=,protocol=,mode= in any order", (t) => {
  t.deepEqual(parseServicePublish("published=8080,target=80,protocol=udp,mode=host"), {
    Protocol: "udp",
    TargetPort: 80,
    PublishedPort: 8080,
    PublishMode: "host",
  });
  t.deepEqual(parseServicePublish("target=80,published=8080"), {
    Protocol: "tcp",
    TargetPort: 80,
    PublishedPort: 8080,
    PublishMode: "ingress",
  });
  t.is(parseServicePublish("Target=80,PUBLISHED=81").PublishedPort, 81, "keys are case-insensitive");
});

test("-p refuses malformed values with the reason", (t) => {
  const cases: Array<[string, string]> = [
    [
      "80",
      "expected [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp] (use --port TARGET for a port served at the VIP only)",
    ],
    [
      "",
      "expected [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp] (use --port TARGET for a port served at the VIP only)",
    ],
    ["1.2.3.4:8080:80", "expected [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp]"],
    ["8080:80/sctp", 'protocol "sctp" must be tcp or udp'],
    ["0:80", 'published port "0" must be a number from 1 to 65535'],
    ["8080:65536", 'target port "65536" must be a number from 1 to 65535'],
    ["8080:0x50", 'target port "0x50" must be a number from 1 to 65535'],
    ["mode=global,8080:80", 'mode "global" must be ingress or host'],
    ["8080:80,9090:90", "expected one [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp]"],
    ["protocol=udp,8080:80", "protocol= cannot be combined with PUBLISHED:TARGET"],
    ["published=8080", "missing field target="],
    ["target=80", "missing field published= (use --port TARGET for a port served at the VIP only)"],
    ["target=80,mode=host", "missing field published= (use --port TARGET for a port served at the VIP only)"],
    ["target=80,published=81,target=82", 'field "target" given twice'],
    ["target=80,src=81", 'unknown field "src" (expected published, target, protocol, mode)'],
    ["target=80,published=81,protocol=icmp", 'protocol "icmp" must be tcp or udp'],
    ["target=80,published=", 'published port "" must be a number from 1 to 65535'],
  ];
  for (const [text, message] of cases) {
    t.throws(() => parseServicePublish(text), { message }, text);
  }
});

test("--port: TARGET[/proto], nothing published", (t) => {
  t.deepEqual(parseVipPort("80"), { Protocol: "tcp", TargetPort: 80 });
  t.deepEqual(parseVipPort("53/udp"), { Protocol: "udp", TargetPort: 53 });
  t.throws(() => parseVipPort("8080:80"), {
    message: "expected TARGET[/tcp|udp] (use --publish to publish a port)",
  });
  t.throws(() => parseVipPort("80/"), { message: 'protocol "" must be tcp or udp' });
  t.throws(() => parseVipPort("abc"), { message: 'target port "abc" must be a number from 1 to 65535' });
});

test("all port flags: -p first, then --port; clashes named by flag", (t) => {
  t.deepEqual(parseServicePortFlags(["8080:80", "53:53/udp"], ["9000", "53/tcp"]), [
    { Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" },
    { Protocol: "udp", TargetPort: 53, PublishedPort: 53, PublishMode: "ingress" },
    { Protocol: "tcp", TargetPort: 9000 },
    { Protocol: "tcp", TargetPort: 53 },
  ]);
  t.is(parseServicePortFlags(["8080:80", "8081:80"], []).length, 2, "one target behind two published ports");
  const fails: Array<[string[], string[], string]> = [
    [
      ["8080:80", "mode=host,8080:81"],
      [],
      'invalid --publish "mode=host,8080:81": published port 8080/tcp already used by --publish "8080:80"',
    ],
    [["8080:80"], ["80"], 'invalid --port "80": VIP-only target port 80/tcp duplicates --publish "8080:80"'],
    [
      [],
      ["53/udp", "53/udp"],
      'invalid --port "53/udp": VIP-only target port 53/udp duplicates --port "53/udp"',
    ],
    [
      ["x"],
      [],
      'invalid --publish "x": expected [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp] (use --port TARGET for a port served at the VIP only)',
    ],
    [[], ["0"], 'invalid --port "0": target port "0" must be a number from 1 to 65535'],
  ];
  for (const [publish, ports, message] of fails) {
    t.throws(() => parseServicePortFlags(publish, ports), { instanceOf: UsageError, message });
  }
});

test("PORTS column: ingress as *:P->T, host as host:P->T, VIP-only as T", (t) => {
  t.is(
    formatServicePort({ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" }),
    "*:8080->80/tcp",
  );
  t.is(
    formatServicePort({ Protocol: "udp", TargetPort: 53, PublishedPort: 5353, PublishMode: "host" }),
    "host:5353->53/udp",
  );
  t.is(formatServicePort({ Protocol: "tcp", TargetPort: 9000, PublishMode: "ingress" }), "9000/tcp");
});

test("property: short and long forms of the same port parse alike, and ls shows it", (t) => {
  const port = fc.integer({ min: 1, max: 65535 });
  const arb = fc.record({
    published: port,
    target: port,
    proto: fc.constantFrom("tcp" as const, "udp" as const),
    mode: fc.constantFrom("ingress" as const, "host" as const),
  });
  fc.assert(
    fc.property(arb, ({ published, target, proto, mode }) => {
      const short = parseServicePublish(`mode=${mode},${published}:${target}/${proto}`);
      const long = parseServicePublish(
        `mode=${mode},target=${target},protocol=${proto},published=${published}`,
      );
      assert.deepEqual(short, long);
      assert.deepEqual(short, {
        Protocol: proto,
        TargetPort: target,
        PublishedPort: published,
        PublishMode: mode,
      });
      assert.equal(
        formatServicePort(short),
        `${mode === "host" ? "host" : "*"}:${published}->${target}/${proto}`,
      );
    }),
  );
  t.pass();
});
