/**
 * The bridge driver's desired state: pure functions from records to kernel objects, tested with
 * golden values and fast-check properties.
 */
import test from "ava";
import fc from "fast-check";
import {
  bridgeMac,
  desiredBridge,
  desiredEndpoint,
  ENDPOINT_ALIAS_PREFIX,
  endpointMac,
  hostIfNameOf,
  NETWORK_ALIAS_PREFIX,
} from "../../lib/bridge/desired.js";
import type { EndpointRecord, NetworkRecord, PoolRecord } from "../../lib/store/records.js";

const NET_ID = "a".repeat(8) + "0123456789abcdef".repeat(3) + "b".repeat(8);
const EP_ID = "e".repeat(8) + "fedcba9876543210".repeat(3) + "f".repeat(8);

function network(over: Partial<NetworkRecord> = {}, bridge: Partial<NetworkRecord["bridge"]> = {}) {
  const net: NetworkRecord = {
    id: NET_ID,
    name: "web",
    driver: "bridge",
    created: "2024-01-01T00:00:00Z",
    internal: false,
    enableIPv6: true,
    options: {},
    labels: {},
    poolIds: [`${NET_ID}/v4/0`, `${NET_ID}/v6/0`],
    bridge: { bridgeName: "br-web", mtu: 1500, icc: true, masquerade: true, ...bridge },
    ...over,
  };
  return net;
}

const POOL4: PoolRecord = {
  id: `${NET_ID}/v4/0`,
  family: 4,
  subnet: "172.18.0.0/16",
  gateway: "172.18.0.1",
  cursor: "0",
  owner: NET_ID,
};
const POOL6: PoolRecord = {
  id: `${NET_ID}/v6/0`,
  family: 6,
  subnet: "fd00:1::/64",
  gateway: "fd00:1::1",
  cursor: "0",
  owner: NET_ID,
};

function endpoint(over: Partial<EndpointRecord> = {}): EndpointRecord {
  return {
    id: EP_ID,
    networkId: NET_ID,
    name: "c1",
    containerId: "c".repeat(64),
    netns: { path: "/run/netns/c1", dev: 4, ino: 4026532000 },
    ifName: "eth0",
    hostIfName: hostIfNameOf(EP_ID),
    mac: "02:42:ac:12:00:02",
    ipv4: "172.18.0.2/16",
    ipv6: "fd00:1::2/64",
    aliases: [],
    publish: [],
    gatewayEndpoint: true,
    state: "active",
    created: "2024-01-01T00:00:00Z",
    ...over,
  };
}

// --- MACs and names ------------------------------------------------------------------------------

test("endpointMac: 02:42 followed by the IPv4 octets in hex", (t) => {
  t.is(endpointMac(EP_ID, "172.18.0.2/16"), "02:42:ac:12:00:02");
  t.is(endpointMac(EP_ID, "10.255.1.254/8"), "02:42:0a:ff:01:fe");
  t.is(endpointMac("other-id", "10.255.1.254/8"), "02:42:0a:ff:01:fe", "depends on the address only");
});

test("property: endpointMac of an IPv4 CIDR is 02:42 + the octets, whatever the prefix", (t) => {
  const octet = fc.integer({ min: 0, max: 255 });
  fc.assert(
    fc.property(fc.tuple(octet, octet, octet, octet), fc.integer({ min: 0, max: 32 }), (o, len) => {
      const mac = endpointMac(EP_ID, `${o.join(".")}/${len}`);
      const want = ["02", "42", ...o.map((x) => x.toString(16).padStart(2, "0"))].join(":");
      return mac === want;
    }),
  );
  t.pass();
});

test("endpointMac without IPv4: a stable hash of the endpoint id, locally administered, not 02:42", (t) => {
  const a = endpointMac(EP_ID);
  t.regex(a, /^02:43(:[0-9a-f]{2}){4}$/);
  t.is(endpointMac(EP_ID), a, "stable");
  t.is(endpointMac(EP_ID, ""), a, "an empty address counts as none");
  t.not(endpointMac(`${EP_ID.slice(1)}0`), a);
});

test("bridgeMac: stable per network, 02:b7 prefix, distinct from endpoint MACs", (t) => {
  const mac = bridgeMac(NET_ID);
  t.regex(mac, /^02:b7(:[0-9a-f]{2}){4}$/);
  t.is(bridgeMac(NET_ID), mac);
  t.not(bridgeMac(`${NET_ID.slice(1)}0`), mac);
  fc.assert(fc.property(fc.string(), fc.string(), (netId, epId) => bridgeMac(netId) !== endpointMac(epId)));
});

test("hostIfNameOf: veth + the first 11 characters of the id (15 = the Linux limit)", (t) => {
  t.is(hostIfNameOf(EP_ID), `veth${EP_ID.slice(0, 11)}`);
  t.is(hostIfNameOf(EP_ID).length, 15);
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9a-f]{64}$/), (id) => {
      const name = hostIfNameOf(id);
      return name.length <= 15 && /^veth[0-9a-f]{11}$/.test(name);
    }),
  );
});

// --- desiredBridge -------------------------------------------------------------------------------

test("desiredBridge: name, MTU, MAC, alias and one gateway address per pool with a gateway", (t) => {
  const { gateway: _, ...noGateway } = { ...POOL4, id: "x", subnet: "172.30.0.0/24" };
  t.deepEqual(desiredBridge(network({}, { mtu: 9000 }), [POOL4, POOL6, noGateway]), {
    networkId: NET_ID,
    name: "br-web",
    mtu: 9000,
    mac: bridgeMac(NET_ID),
    alias: `${NETWORK_ALIAS_PREFIX}${NET_ID}`,
    addresses: [
      { address: "172.18.0.1", prefixLen: 16 },
      { address: "fd00:1::1", prefixLen: 64 },
    ],
  });
});

// --- desiredEndpoint -----------------------------------------------------------------------------

test("desiredEndpoint: a gateway endpoint on a normal network", (t) => {
  t.deepEqual(desiredEndpoint(network(), [POOL4, POOL6], endpoint()), {
    endpointId: EP_ID,
    bridgeName: "br-web",
    hostIfName: hostIfNameOf(EP_ID),
    mtu: 1500,
    alias: `${ENDPOINT_ALIAS_PREFIX}${EP_ID}`,
    isolated: false,
    hairpin: false,
    container: {
      ifName: "eth0",
      mac: "02:42:ac:12:00:02",
      addresses: [
        { address: "172.18.0.2", prefixLen: 16 },
        { address: "fd00:1::2", prefixLen: 64 },
      ],
      routes: [
        { family: 4, gateway: "172.18.0.1" },
        { family: 6, gateway: "fd00:1::1" },
      ],
    },
  });
});

test("desiredEndpoint: default routes only for gateway endpoints on non-internal networks", (t) => {
  const routes = (net: NetworkRecord, ep: EndpointRecord) =>
    desiredEndpoint(net, [POOL4, POOL6], ep).container.routes;
  t.is(routes(network(), endpoint()).length, 2);
  t.deepEqual(routes(network(), endpoint({ gatewayEndpoint: false })), []);
  t.deepEqual(routes(network({ internal: true }), endpoint()), []);
  t.deepEqual(routes(network({ internal: true }), endpoint({ gatewayEndpoint: false })), []);
});

test("desiredEndpoint: a default route per family only when the endpoint has an address of it", (t) => {
  const { ipv6: _, ...v4only } = endpoint();
  t.deepEqual(desiredEndpoint(network(), [POOL4, POOL6], v4only).container.routes, [
    { family: 4, gateway: "172.18.0.1" },
  ]);
  t.deepEqual(desiredEndpoint(network(), [POOL4, POOL6], v4only).container.addresses, [
    { address: "172.18.0.2", prefixLen: 16 },
  ]);
  const { gateway: _g, ...pool4NoGateway } = POOL4;
  t.deepEqual(desiredEndpoint(network(), [pool4NoGateway, POOL6], endpoint()).container.routes, [
    { family: 6, gateway: "fd00:1::1" },
  ]);
});

test("desiredEndpoint: hairpin only when the endpoint publishes (and never on internal networks)", (t) => {
  const publish = [{ proto: "tcp" as const, hostPort: 8080, containerPort: 80 }];
  t.false(desiredEndpoint(network(), [POOL4], endpoint()).hairpin);
  t.true(desiredEndpoint(network(), [POOL4], endpoint({ publish })).hairpin);
  t.false(desiredEndpoint(network({ internal: true }), [POOL4], endpoint({ publish })).hairpin);
});

test("desiredEndpoint: isolated iff ICC is off", (t) => {
  t.false(desiredEndpoint(network({}, { icc: true }), [POOL4], endpoint()).isolated);
  t.true(desiredEndpoint(network({}, { icc: false }), [POOL4], endpoint()).isolated);
});

test("property: desiredEndpoint's flags follow the records", (t) => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      (internal, icc, gatewayEndpoint, publishes) => {
        const publish = publishes ? [{ proto: "udp" as const, hostPort: 53, containerPort: 53 }] : [];
        const d = desiredEndpoint(
          network({ internal }, { icc }),
          [POOL4, POOL6],
          endpoint({ gatewayEndpoint, publish }),
        );
        return (
          d.isolated === !icc &&
          d.hairpin === (publishes && !internal) &&
          d.container.routes.length === (gatewayEndpoint && !internal ? 2 : 0)
        );
      },
    ),
  );
  t.pass();
});

// A network may have several IPv4 pools (IPAM.Config with two subnets). The endpoint's address is in
// one of them; a default route through another pool's gateway is off-link, and the kernel refuses it
// (ENETUNREACH), which would fail the connect.
test("desiredEndpoint: default route only through the gateway of the endpoint's own pool", (t) => {
  const second: PoolRecord = {
    ...POOL4,
    id: `${NET_ID}/v4/1`,
    subnet: "10.99.0.0/24",
    gateway: "10.99.0.1",
  };
  const { ipv6: _, ...v4only } = endpoint();
  // The daemon allocates from the first IPv4 pool, so [POOL4, second] is what a connect sees.
  for (const pools of [
    [POOL4, second],
    [second, POOL4],
  ]) {
    t.deepEqual(desiredEndpoint(network(), pools, v4only).container.routes, [
      { family: 4, gateway: "172.18.0.1" },
    ]);
  }
});
