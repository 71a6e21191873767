/** The bridge driver's `-o KEY=VALUE` options: defaults, each option, and error texts naming the bad value. */
import test from "ava";
import {
  defaultBridgeName,
  OPT_BRIDGE_NAME,
  OPT_HOST_BINDING,
  OPT_ICC,
  OPT_MASQUERADE,
  OPT_MTU,
  parseBridgeOptions,
} from "../../lib/bridge/options.js";
import { TrellisError } from "../../lib/common/errors.js";

const NET_ID = "0123456789abcdef".repeat(4);

// --- parseBridgeOptions --------------------------------------------------------------------------

const DEFAULTS = { networkId: NET_ID, hostMtu: 1450 };

test("parseBridgeOptions: defaults", (t) => {
  t.deepEqual(parseBridgeOptions({}, DEFAULTS), {
    bridgeName: `br-${NET_ID.slice(0, 12)}`,
    mtu: 1450,
    icc: true,
    masquerade: true,
  });
  t.is(defaultBridgeName(NET_ID), `br-${NET_ID.slice(0, 12)}`);
  t.is(defaultBridgeName(NET_ID).length, 15);
});

test("parseBridgeOptions: each known option", (t) => {
  const parse = (o: Record<string, string>) => parseBridgeOptions(o, DEFAULTS);
  t.is(parse({ [OPT_BRIDGE_NAME]: "my_br.0-x" }).bridgeName, "my_br.0-x");
  t.is(parse({ [OPT_MTU]: "9000" }).mtu, 9000);
  t.is(parse({ [OPT_MTU]: "68" }).mtu, 68);
  t.is(parse({ [OPT_MTU]: "65535" }).mtu, 65535);
  for (const [text, value] of [
    ["true", true],
    ["TRUE", true],
    ["1", true],
    ["false", false],
    ["False", false],
    ["0", false],
  ] as const) {
    t.is(parse({ [OPT_ICC]: text }).icc, value, `icc ${text}`);
    t.is(parse({ [OPT_MASQUERADE]: text }).masquerade, value, `masquerade ${text}`);
  }
  t.is(parse({ [OPT_HOST_BINDING]: "127.0.0.1" }).defaultHostIp, "127.0.0.1");
  t.false("defaultHostIp" in parse({ [OPT_HOST_BINDING]: "0.0.0.0" }), "0.0.0.0 means every address");
});

test("parseBridgeOptions: an unknown option is refused, naming it and the supported ones", (t) => {
  const err = t.throws(
    () => parseBridgeOptions({ "com.docker.network.bridge.enable_icx": "true" }, DEFAULTS),
    {
      instanceOf: TrellisError,
    },
  );
  t.is(err?.code, "INVALID_ARGUMENT");
  t.is(
    err?.message,
    'unknown option "com.docker.network.bridge.enable_icx" for the bridge driver (supported: ' +
      `${OPT_BRIDGE_NAME}, ${OPT_MTU}, ${OPT_ICC}, ${OPT_MASQUERADE}, ${OPT_HOST_BINDING})`,
  );
});

test("parseBridgeOptions: a bad MTU is refused, naming the value and the range", (t) => {
  for (const bad of ["67", "65536", "1500.5", "-1", "", " 1500", "1e3", "0x5dc", "abc"]) {
    const err = t.throws(() => parseBridgeOptions({ [OPT_MTU]: bad }, DEFAULTS), {
      instanceOf: TrellisError,
    });
    t.is(err?.code, "INVALID_ARGUMENT");
    t.is(
      err?.message,
      `invalid value "${bad}" for option ${OPT_MTU}: expected an integer from 68 to 65535`,
      `mtu ${JSON.stringify(bad)}`,
    );
  }
});

test("parseBridgeOptions: a bad boolean is refused, naming the option and the value", (t) => {
  for (const key of [OPT_ICC, OPT_MASQUERADE]) {
    for (const bad of ["yes", "on", "", "2", "tru"]) {
      const err = t.throws(() => parseBridgeOptions({ [key]: bad }, DEFAULTS), { instanceOf: TrellisError });
      t.is(err?.code, "INVALID_ARGUMENT");
      t.is(err?.message, `invalid value "${bad}" for option ${key}: expected true or false`);
    }
  }
});

test("parseBridgeOptions: a bad bridge name is refused, naming the value", (t) => {
  for (const bad of ["", "a".repeat(16), "br/0", "br:0", "br 0", ".", "..", "brü"]) {
    const err = t.throws(() => parseBridgeOptions({ [OPT_BRIDGE_NAME]: bad }, DEFAULTS), {
      instanceOf: TrellisError,
    });
    t.is(err?.code, "INVALID_ARGUMENT");
    t.true(
      err?.message.startsWith(`invalid value "${bad}" for option ${OPT_BRIDGE_NAME}: an interface name is`),
      err?.message,
    );
  }
  t.is(parseBridgeOptions({ [OPT_BRIDGE_NAME]: "a".repeat(15) }, DEFAULTS).bridgeName, "a".repeat(15));
});

test("parseBridgeOptions: a bad host binding is refused, naming the value", (t) => {
  for (const bad of ["localhost", "::1", "1.2.3", "1.2.3.4/32"]) {
    const err = t.throws(() => parseBridgeOptions({ [OPT_HOST_BINDING]: bad }, DEFAULTS), {
      instanceOf: TrellisError,
    });
    t.is(err?.message, `invalid value "${bad}" for option ${OPT_HOST_BINDING}: expected an IPv4 address`);
  }
});

// 300.1.1.1 passes the shape check; it would only fail later, in nft, as a kernel error (500).
test("parseBridgeOptions: a host binding with an octet above 255 is refused", (t) => {
  t.throws(() => parseBridgeOptions({ [OPT_HOST_BINDING]: "300.1.1.1" }, DEFAULTS), {
    code: "INVALID_ARGUMENT",
  });
});
