/**
 * Keyring rotation rules and the gossip configuration: validation at the edge, profiles as deltas.
 */
import test from "ava";
import {
  DEFAULTS,
  Keyring,
  lanProfile,
  parseAddress,
  resolveConfig,
  testProfile,
} from "../../lib/overlay/gossip/index.js";

const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

test("keyring: first key is primary; add, use, remove rotate without losing decryption", (t) => {
  const ring = new Keyring([key(1)]);
  ring.add(key(2));
  ring.add(key(2)); // idempotent
  t.deepEqual(ring.list(), [key(1), key(2)]);
  t.deepEqual(ring.primary().key, key(1));
  ring.use(key(2));
  t.deepEqual(ring.primary().key, key(2));
  t.truthy(ring.byId(new Keyring([key(1)]).primary().id), "the old key still decrypts");
  ring.remove(key(1));
  t.deepEqual(ring.list(), [key(2)]);
  ring.remove(key(9)); // absent: no-op
});

test("keyring: refuses bad keys, using an absent key, removing the primary", (t) => {
  t.throws(() => new Keyring([]), { message: /at least one key/ });
  t.throws(() => new Keyring([new Uint8Array(16)]), { message: /32 bytes, got 16/ });
  const ring = new Keyring([key(1)]);
  t.throws(() => ring.use(key(2)), { message: /not installed/ });
  t.throws(() => ring.remove(key(1)), { message: /cannot remove the primary/ });
});

test("keyring: parses base64 key files", (t) => {
  const b64 = Buffer.from(key(7)).toString("base64");
  t.deepEqual(Keyring.parseKey(`${b64}\n`), key(7));
  t.throws(() => Keyring.parseKey("c2hvcnQ="), { message: /32 bytes/ });
});

test("config: defaults filled in, bindAddr defaults to advertiseAddr, port to 7946", (t) => {
  const c = resolveConfig({ name: "h1", advertiseAddr: "10.0.0.1" });
  t.like(c, { ...DEFAULTS, name: "h1", bindAddr: "10.0.0.1", port: 7946 });
  t.true(Object.isFrozen(c));
  t.is(resolveConfig({ name: "h1", advertiseAddr: "10.0.0.1", probeInterval: undefined }).probeInterval, 250);
});

test("config: invalid values are refused with the field named", (t) => {
  const base = { name: "h1", advertiseAddr: "10.0.0.1" };
  t.throws(() => resolveConfig({ ...base, name: "" }), { message: /name/ });
  t.throws(() => resolveConfig({ ...base, port: 70000 }), { message: /port/ });
  t.throws(() => resolveConfig({ ...base, probeInterval: -1 }), { message: /probeInterval/ });
  t.throws(() => resolveConfig({ ...base, probeTimeout: 0 }), { message: /probeTimeout/ });
  t.throws(() => resolveConfig({ ...base, probeTimeout: 300 }), { message: /less than probeInterval/ });
  t.throws(() => resolveConfig({ ...base, udpBufferSize: 100 }), { message: /udpBufferSize/ });
  t.throws(() => resolveConfig({ ...base, suspicionMaxTimeoutMult: 0.5 }), {
    message: /suspicionMaxTimeoutMult/,
  });
  t.notThrows(() => resolveConfig({ ...base, probeInterval: 0, gossipInterval: 0, pushPullInterval: 0 }));
});

test("profiles are deltas from the defaults", (t) => {
  t.deepEqual(lanProfile(), { ...DEFAULTS });
  const fast = testProfile();
  const changed = Object.keys(fast).filter(
    (k) => fast[k as keyof typeof fast] !== DEFAULTS[k as keyof typeof DEFAULTS],
  );
  t.true(changed.length > 0 && changed.length < Object.keys(DEFAULTS).length);
  t.true(fast.probeInterval < DEFAULTS.probeInterval);
  t.notThrows(() => resolveConfig({ name: "n", advertiseAddr: "127.0.0.1", ...fast }));
});

test("addresses: host:port, [v6]:port, default port, bad ports refused", (t) => {
  t.deepEqual(parseAddress("10.0.0.1:7946"), { host: "10.0.0.1", port: 7946 });
  t.deepEqual(parseAddress("[fd00::1]:80"), { host: "fd00::1", port: 80 });
  t.deepEqual(parseAddress("fd00::1", 7946), { host: "fd00::1", port: 7946 });
  t.deepEqual(parseAddress("h1", 7946), { host: "h1", port: 7946 });
  t.throws(() => parseAddress("h1:0"), { message: /port/ });
  t.throws(() => parseAddress("h1"), { message: /port/ });
});
