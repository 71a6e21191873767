/**
 * The API's body and query validation: good bodies become typed inputs; every malformed field is a
 * TrellisError INVALID_ARGUMENT whose message names the field; arbitrary JSON never throws anything else.
 */
import test, { type ExecutionContext } from "ava";
import fc from "fast-check";
import { parseConnect, parseCreateNetwork, parseDisconnect, parseFilters } from "../../lib/api/validate.js";
import { TrellisError } from "../../lib/common/errors.js";

/** Asserts `fn` throws INVALID_ARGUMENT and the message contains every one of `mentions`. */
function refuses(t: ExecutionContext, fn: () => unknown, ...mentions: string[]) {
  const err = t.throws(fn, { instanceOf: TrellisError });
  t.is(err?.code, "INVALID_ARGUMENT", err?.message);
  for (const m of mentions) t.true(err?.message.includes(m), `"${err?.message}" should mention ${m}`);
}

// --- parseCreateNetwork --------------------------------------------------------------------------

test("parseCreateNetwork: a minimal body gets the defaults", (t) => {
  t.deepEqual(parseCreateNetwork({ Name: "web" }), {
    name: "web",
    driver: "bridge",
    internal: false,
    enableIPv6: false,
    ipamDriver: "default",
    ipamConfigs: [],
    options: {},
    labels: {},
  });
  t.deepEqual(
    parseCreateNetwork({ Name: "web", Driver: "", IPAM: null, Options: null, Internal: null }),
    parseCreateNetwork({ Name: "web" }),
    "null and empty strings count as absent",
  );
});

test("parseCreateNetwork: a full Docker body", (t) => {
  t.deepEqual(
    parseCreateNetwork({
      Name: "back_end.1-x",
      Driver: "bridge",
      Internal: true,
      EnableIPv6: true,
      CheckDuplicate: true,
      Attachable: false,
      IPAM: {
        Driver: "default",
        Config: [
          { Subnet: "172.30.0.0/16", Gateway: "172.30.0.254", IPRange: "172.30.5.0/24" },
          { Subnet: "fd00:30::/64" },
          {},
        ],
        Options: {},
      },
      Options: { "com.docker.network.bridge.name": "br-back" },
      Labels: { team: "a", "com.example.empty": "" },
    }),
    {
      name: "back_end.1-x",
      driver: "bridge",
      internal: true,
      enableIPv6: true,
      ipamDriver: "default",
      ipamConfigs: [
        { subnet: "172.30.0.0/16", gateway: "172.30.0.254", ipRange: "172.30.5.0/24" },
        { subnet: "fd00:30::/64" },
        {},
      ],
      options: { "com.docker.network.bridge.name": "br-back" },
      labels: { team: "a", "com.example.empty": "" },
    },
  );
});

test("parseCreateNetwork: every malformed field is INVALID_ARGUMENT naming the field", (t) => {
  const c = (body: unknown) => () => parseCreateNetwork(body);
  refuses(t, c([]), "request body");
  refuses(t, c("web"), "request body");
  refuses(t, c(5), "request body");
  refuses(t, c({}), "Name is required");
  refuses(t, c({ Name: "" }), "Name is required");
  refuses(t, c({ Name: 5 }), "Name must be a string");
  refuses(t, c({ Name: "-web" }), 'invalid network name "-web"');
  refuses(t, c({ Name: "we b" }), 'invalid network name "we b"');
  refuses(t, c({ Name: "web/1" }), 'invalid network name "web/1"');
  refuses(t, c({ Name: "a".repeat(129) }), `invalid network name "${"a".repeat(129)}"`);
  t.is(parseCreateNetwork({ Name: "a".repeat(128) }).name.length, 128);
  refuses(t, c({ Name: "web", Driver: 1 }), "Driver must be a string");
  refuses(t, c({ Name: "web", Internal: "true" }), "Internal must be true or false");
  refuses(t, c({ Name: "web", EnableIPv6: 1 }), "EnableIPv6 must be true or false");
  refuses(t, c({ Name: "web", IPAM: [] }), "IPAM must be a JSON object");
  refuses(t, c({ Name: "web", IPAM: "default" }), "IPAM must be a JSON object");
  refuses(t, c({ Name: "web", IPAM: { Driver: 7 } }), "IPAM.Driver must be a string");
  refuses(t, c({ Name: "web", IPAM: { Config: {} } }), "IPAM.Config must be a list");
  refuses(t, c({ Name: "web", IPAM: { Config: [{}, 5] } }), "IPAM.Config[1] must be a JSON object");
  refuses(
    t,
    c({ Name: "web", IPAM: { Config: [{ Subnet: 10 }] } }),
    "IPAM.Config[0].Subnet must be a string",
  );
  refuses(
    t,
    c({ Name: "web", IPAM: { Config: [{ Subnet: "10.0.0.0/8", Gateway: false }] } }),
    "IPAM.Config[0].Gateway must be a string",
  );
  refuses(
    t,
    c({ Name: "web", IPAM: { Config: [{ Subnet: "10.0.0.0/8", IPRange: [] }] } }),
    "IPAM.Config[0].IPRange must be a string",
  );
  refuses(
    t,
    c({ Name: "web", IPAM: { Config: [{}, { Gateway: "10.0.0.1" }] } }),
    "IPAM.Config[1]: a gateway or ip-range needs a subnet",
  );
  refuses(
    t,
    c({ Name: "web", IPAM: { Config: [{ IPRange: "10.0.0.0/24" }] } }),
    "IPAM.Config[0]: a gateway or ip-range needs a subnet",
  );
  refuses(t, c({ Name: "web", Options: [] }), "Options must be a JSON object");
  refuses(t, c({ Name: "web", Options: { mtu: 1500 } }), 'Options["mtu"] must be a string');
  refuses(t, c({ Name: "web", Labels: "a=b" }), "Labels must be a JSON object");
  refuses(t, c({ Name: "web", Labels: { a: null } }), 'Labels["a"] must be a string');
});

// --- parseConnect --------------------------------------------------------------------------------

test("parseConnect: a minimal body", (t) => {
  t.deepEqual(parseConnect({ Container: "c1" }), { container: "c1", aliases: [], publish: [] });
});

test("parseConnect: a full body with static addresses, aliases, name and published ports", (t) => {
  t.deepEqual(
    parseConnect({
      Container: "pid:1234",
      EndpointConfig: {
        IPAMConfig: { IPv4Address: "172.18.0.9", IPv6Address: "fd00::9" },
        Aliases: ["web", "www"],
      },
      Trellis: {
        Name: "web-1",
        Publish: [
          { HostPort: 8080, ContainerPort: 80 },
          { Proto: "udp", HostIp: "127.0.0.1", HostPort: 5353, ContainerPort: 53 },
          { Proto: "tcp", HostIp: "0.0.0.0", HostPort: 65535, ContainerPort: 1 },
        ],
      },
    }),
    {
      container: "pid:1234",
      ipv4: "172.18.0.9",
      ipv6: "fd00::9",
      aliases: ["web", "www"],
      name: "web-1",
      publish: [
        { proto: "tcp", hostPort: 8080, containerPort: 80 },
        { proto: "udp", hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53 },
        { proto: "tcp", hostPort: 65535, containerPort: 1 },
      ],
    },
  );
});

test("parseConnect: every malformed field is INVALID_ARGUMENT naming the field", (t) => {
  const c = (body: unknown) => () => parseConnect(body);
  refuses(t, c([]), "request body");
  refuses(t, c({}), "Container is required");
  refuses(t, c({ Container: "" }), "Container is required");
  refuses(t, c({ Container: 1 }), "Container must be a string");
  const base = { Container: "c1" };
  refuses(t, c({ ...base, EndpointConfig: 1 }), "EndpointConfig must be a JSON object");
  refuses(t, c({ ...base, EndpointConfig: { IPAMConfig: [] } }), "EndpointConfig.IPAMConfig must be");
  refuses(
    t,
    c({ ...base, EndpointConfig: { IPAMConfig: { IPv4Address: 1 } } }),
    "EndpointConfig.IPAMConfig.IPv4Address must be a string",
  );
  refuses(
    t,
    c({ ...base, EndpointConfig: { IPAMConfig: { IPv6Address: {} } } }),
    "EndpointConfig.IPAMConfig.IPv6Address must be a string",
  );
  refuses(t, c({ ...base, EndpointConfig: { Aliases: "web" } }), "EndpointConfig.Aliases must be a list");
  refuses(
    t,
    c({ ...base, EndpointConfig: { Aliases: ["web", 1] } }),
    "EndpointConfig.Aliases must be a list",
  );
  refuses(t, c({ ...base, Trellis: "x" }), "Trellis must be a JSON object");
  refuses(t, c({ ...base, Trellis: { Name: 1 } }), "Trellis.Name must be a string");
  refuses(t, c({ ...base, Trellis: { Publish: {} } }), "Trellis.Publish must be a list");
  const pub = (p: unknown) => c({ ...base, Trellis: { Publish: [{ HostPort: 1, ContainerPort: 1 }, p] } });
  refuses(t, pub(8080), "Trellis.Publish[1] must be a JSON object");
  refuses(t, pub({ Proto: 6, HostPort: 1, ContainerPort: 1 }), "Trellis.Publish[1].Proto must be a string");
  refuses(
    t,
    pub({ Proto: "sctp", HostPort: 1, ContainerPort: 1 }),
    "Trellis.Publish[1].Proto must be tcp or udp",
  );
  refuses(
    t,
    pub({ Proto: "TCP", HostPort: 1, ContainerPort: 1 }),
    "Trellis.Publish[1].Proto must be tcp or udp",
  );
  refuses(t, pub({ HostIp: 1, HostPort: 1, ContainerPort: 1 }), "Trellis.Publish[1].HostIp must be a string");
  refuses(
    t,
    pub({ HostIp: "localhost", HostPort: 1, ContainerPort: 1 }),
    'Trellis.Publish[1].HostIp "localhost" is not an IPv4 address',
  );
  refuses(t, pub({ HostIp: "::1", HostPort: 1, ContainerPort: 1 }), 'Trellis.Publish[1].HostIp "::1"');
  for (const bad of [undefined, 0, 65536, 1.5, "80", -1, null]) {
    refuses(t, pub({ HostPort: bad, ContainerPort: 1 }), "Trellis.Publish[1].HostPort must be a port number");
    refuses(t, pub({ HostPort: 1, ContainerPort: bad }), "Trellis.Publish[1].ContainerPort must be a port");
  }
});

// 300.1.1.1 has the shape of an IPv4 address but is not one: it gets past the API and fails later in
// nft as a kernel error (HTTP 500) instead of a 400 naming the field.
test("parseConnect: a HostIp with an octet above 255 is refused", (t) => {
  refuses(
    t,
    () =>
      parseConnect({
        Container: "c1",
        Trellis: { Publish: [{ HostIp: "300.1.1.1", HostPort: 80, ContainerPort: 80 }] },
      }),
    "Trellis.Publish[0].HostIp",
  );
});

// --- parseDisconnect -----------------------------------------------------------------------------

test("parseDisconnect: good bodies", (t) => {
  t.deepEqual(parseDisconnect({ Container: "c1" }), { container: "c1", force: false });
  t.deepEqual(parseDisconnect({ Container: "c1", Force: true }), { container: "c1", force: true });
  t.deepEqual(parseDisconnect({ Container: "c1", Force: null }), { container: "c1", force: false });
});

test("parseDisconnect: malformed fields", (t) => {
  refuses(t, () => parseDisconnect(undefined), "Container is required");
  refuses(t, () => parseDisconnect("c1"), "request body must be a JSON object");
  refuses(t, () => parseDisconnect({ Container: ["c1"] }), "Container must be a string");
  refuses(t, () => parseDisconnect({ Container: "c1", Force: "yes" }), "Force must be true or false");
});

// --- parseFilters --------------------------------------------------------------------------------

test("parseFilters: both Docker forms, and absent", (t) => {
  t.deepEqual(parseFilters(null), {});
  t.deepEqual(parseFilters(""), {});
  t.deepEqual(parseFilters("{}"), {});
  t.deepEqual(parseFilters('{"name":["web","db"],"label":{"a=b":true}}'), {
    name: ["web", "db"],
    label: ["a=b"],
  });
  t.deepEqual(parseFilters('{"dangling":{"true":true}}'), { dangling: ["true"] });
});

test("parseFilters: malformed filters are INVALID_ARGUMENT", (t) => {
  refuses(t, () => parseFilters("{name"), "invalid filters: {name");
  refuses(t, () => parseFilters('"name"'), "filters must be a JSON object");
  refuses(t, () => parseFilters("[1]"), "filters must be a JSON object");
  refuses(t, () => parseFilters('{"name":"web"}'), "invalid filter name");
  refuses(t, () => parseFilters('{"name":5}'), "invalid filter name");
});

// String({toString: 1}) throws a TypeError: filter values that are objects with a non-callable
// toString (or valueOf) crash the parser, which the server answers with a 500.
test("parseFilters: a filter value that is an object is INVALID_ARGUMENT, not a TypeError", (t) => {
  refuses(t, () => parseFilters('{"name":[{"toString":1}]}'), "name");
});

// --- never anything but a TrellisError ----------------------------------------------------------

function onlyTrellisErrors(fn: () => unknown): boolean {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof TrellisError)) throw err;
    if (err.code !== "INVALID_ARGUMENT") throw err;
  }
  return true;
}

test("property: arbitrary JSON never makes the parsers throw anything but INVALID_ARGUMENT", (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) =>
      [
        () => parseCreateNetwork(v),
        () => parseConnect(v),
        () => parseDisconnect(v),
        () => parseFilters(JSON.stringify(v)),
      ].every(onlyTrellisErrors),
    ),
    { numRuns: 500 },
  );
  fc.assert(fc.property(fc.string(), (s) => onlyTrellisErrors(() => parseFilters(s))));
  t.pass();
});

/**
 * JSON shaped like the bodies: the fields the parsers read, at the places they read them, holding
 * arbitrary JSON, so generated values reach the deep fields (IPAM.Config[i].Subnet, Publish[i].HostPort).
 */
const shapedBody: fc.Arbitrary<unknown> = (() => {
  const any = fc.jsonValue({ maxDepth: 2 });
  const loose = <T>(a: fc.Arbitrary<T>) =>
    fc.oneof({ weight: 3, arbitrary: a }, { weight: 1, arbitrary: any });
  const port = loose(fc.integer({ min: -1, max: 70000 }));
  const publish = fc.record(
    { Proto: loose(fc.constantFrom("tcp", "udp", "")), HostIp: any, HostPort: port, ContainerPort: port },
    { requiredKeys: [] },
  );
  const config = fc.record(
    { Subnet: loose(fc.constant("10.0.0.0/8")), Gateway: any, IPRange: any },
    { requiredKeys: [] },
  );
  return fc.record(
    {
      Name: loose(fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,5}$/)),
      Container: loose(fc.constant("c1")),
      Driver: any,
      Internal: any,
      EnableIPv6: any,
      Force: any,
      IPAM: loose(fc.record({ Driver: any, Config: loose(fc.array(loose(config))) }, { requiredKeys: [] })),
      Options: loose(fc.dictionary(fc.string(), loose(fc.string()))),
      Labels: loose(fc.dictionary(fc.string(), loose(fc.string()))),
      EndpointConfig: loose(
        fc.record(
          {
            IPAMConfig: loose(fc.record({ IPv4Address: any, IPv6Address: any }, { requiredKeys: [] })),
            Aliases: loose(fc.array(loose(fc.string()))),
          },
          { requiredKeys: [] },
        ),
      ),
      Trellis: loose(
        fc.record({ Name: any, Publish: loose(fc.array(loose(publish))) }, { requiredKeys: [] }),
      ),
    },
    { requiredKeys: [] },
  );
})();

test("property: body-shaped arbitrary JSON never makes the body parsers throw anything but INVALID_ARGUMENT", (t) => {
  fc.assert(
    fc.property(shapedBody, (v) =>
      [() => parseCreateNetwork(v), () => parseConnect(v), () => parseDisconnect(v)].every(onlyTrellisErrors),
    ),
    { numRuns: 1000 },
  );
  t.pass();
});

test("property: a body parser's success is a well-typed input", (t) => {
  fc.assert(
    fc.property(shapedBody, (v) => {
      try {
        const c = parseConnect(v);
        if (typeof c.container !== "string" || !Array.isArray(c.aliases)) return false;
        for (const p of c.publish) {
          if (p.proto !== "tcp" && p.proto !== "udp") return false;
          for (const n of [p.hostPort, p.containerPort])
            if (!Number.isInteger(n) || n < 1 || n > 65535) return false;
          if (p.hostIp !== undefined && (typeof p.hostIp !== "string" || p.hostIp === "0.0.0.0"))
            return false;
        }
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
      }
      try {
        const n = parseCreateNetwork(v);
        if (typeof n.name !== "string" || n.name === "" || typeof n.internal !== "boolean") return false;
        if (Object.values(n.options).some((x) => typeof x !== "string")) return false;
        if (Object.values(n.labels).some((x) => typeof x !== "string")) return false;
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
      }
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});
