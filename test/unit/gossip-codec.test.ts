/**
 * The gossip wire codec and seal layer: round trips for every message type, and hostile input
 * (random bytes, mutated valid packets, lying length fields) that must only ever produce a typed
 * GossipDecodeError, never another exception and never a large allocation.
 */
import test from "ava";
import fc from "fast-check";
import { Reader, Writer } from "../../lib/overlay/gossip/bytes.js";
import {
  decodeEnvelope,
  decodeMessage,
  decodeValue,
  encodeEnvelope,
  encodeMessage,
  encodeValue,
  WIRE_VERSION,
} from "../../lib/overlay/gossip/codec.js";
import { type DecodeFailure, GossipDecodeError, Keyring } from "../../lib/overlay/gossip/index.js";
import type { Envelope, MemberSnapshot, Message, WireRecord } from "../../lib/overlay/gossip/messages.js";
import { seal, unseal } from "../../lib/overlay/gossip/seal.js";

const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 65535 });
const big = fc.maxSafeNat();
const state = fc.constantFrom("alive" as const, "suspect" as const, "dead" as const, "left" as const);

/** A record as the codec produces it: value normalised through its own encoding. */
const record: fc.Arbitrary<WireRecord> = fc
  .record({
    keyspace: name,
    key: name,
    owner: name,
    lamport: big,
    deleted: fc.boolean(),
    raw: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.jsonValue({ maxDepth: 3 })),
  })
  .map(({ raw, deleted, ...rest }) => {
    const valueBytes = deleted ? new Uint8Array(0) : encodeValue(raw as Uint8Array);
    return { ...rest, deleted, valueBytes, value: deleted ? undefined : decodeValue(valueBytes) };
  });

const member: fc.Arbitrary<MemberSnapshot> = fc.record({ name, addr: name, port, incarnation: big, state });

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant("ping" as const), seq: u32, target: name }),
  fc.record({
    type: fc.constant("indirect-ping" as const),
    seq: u32,
    target: name,
    addr: name,
    port,
    nack: fc.boolean(),
  }),
  fc.record({ type: fc.constantFrom("ack" as const, "nack" as const), seq: u32 }),
  fc.record({ type: fc.constant("alive" as const), name, incarnation: big, addr: name, port }),
  fc.record({
    type: fc.constantFrom("suspect" as const, "dead" as const),
    name,
    incarnation: big,
    from: name,
  }),
  fc.record({ type: fc.constant("entry" as const), record }),
  fc.record({
    type: fc.constant("push-pull" as const),
    phase: fc.constantFrom("request" as const, "response" as const, "entries" as const),
    join: fc.boolean(),
    members: fc.array(member, { maxLength: 5 }),
    buckets: fc
      .integer({ min: 0, max: 4 })
      .chain((n) => fc.uint8Array({ minLength: n * 8, maxLength: n * 8 })),
    records: fc.array(record, { maxLength: 4 }),
  }),
);

const envelope: fc.Arbitrary<Envelope> = fc.record({
  from: name,
  messages: fc.array(message, { maxLength: 6 }),
});

/** Runs `fn`; passes when it returns or throws a GossipDecodeError, fails on anything else. */
function onlyDecodeErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (err instanceof GossipDecodeError) return true;
    throw err;
  }
}

test("every message type survives encode → decode", (t) => {
  fc.assert(
    fc.property(message, (m) => {
      t.deepEqual(decodeMessage(encodeMessage(m)), m);
    }),
    { numRuns: 500 },
  );
});

test("envelopes survive encode → decode", (t) => {
  fc.assert(
    fc.property(envelope, (env) => {
      t.deepEqual(decodeEnvelope(encodeEnvelope(env)), { ...env, skipped: 0 });
    }),
    { numRuns: 300 },
  );
});

test("random bytes only ever fail with GossipDecodeError", (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
      t.true(onlyDecodeErrors(() => decodeEnvelope(bytes)));
      t.true(onlyDecodeErrors(() => decodeMessage(bytes)));
      t.true(onlyDecodeErrors(() => unseal(bytes, undefined)));
    }),
    { numRuns: 2000 },
  );
});

test("random bytes behind a valid version byte only ever fail with GossipDecodeError", (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (tail) => {
      const bytes = new Uint8Array([WIRE_VERSION, ...tail]);
      t.true(onlyDecodeErrors(() => decodeEnvelope(bytes)));
      for (let type = 0; type < 12; type++)
        t.true(onlyDecodeErrors(() => decodeMessage(new Uint8Array([type, ...tail]))));
    }),
    { numRuns: 1000 },
  );
});

test("mutated valid envelopes (flipped, truncated, extended) decode or fail with GossipDecodeError", (t) => {
  const mutation = fc.record({
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
    cut: fc.nat(),
    extra: fc.uint8Array({ maxLength: 8 }),
  });
  fc.assert(
    fc.property(envelope, fc.array(mutation, { minLength: 1, maxLength: 4 }), (env, mutations) => {
      const bytes = encodeEnvelope(env);
      for (const m of mutations) {
        const flipped = bytes.slice();
        flipped[m.at % bytes.length]! ^= m.xor;
        t.true(onlyDecodeErrors(() => decodeEnvelope(flipped)));
        t.true(onlyDecodeErrors(() => decodeEnvelope(bytes.subarray(0, m.cut % bytes.length))));
        t.true(onlyDecodeErrors(() => decodeEnvelope(new Uint8Array([...bytes, ...m.extra]))));
      }
    }),
    { numRuns: 300 },
  );
});

test("lying length and count fields are refused before anything is allocated", (t) => {
  const huge = 2 ** 52;
  const cases: Array<[string, Uint8Array, DecodeFailure]> = [
    ["message count", new Writer().u8(WIRE_VERSION).string("a").varint(huge).finish(), "too-long"],
    [
      "message length",
      new Writer().u8(WIRE_VERSION).string("a").varint(1).varint(huge).finish(),
      "truncated",
    ],
    ["name length", new Writer().u8(WIRE_VERSION).varint(huge).finish(), "too-long"],
    ["push-pull member count", new Writer().u8(9).u8(0).u8(0).varint(huge).finish(), "too-long"],
    [
      "push-pull record count",
      new Writer().u8(9).u8(0).u8(0).varint(0).varint(0).varint(huge).finish(),
      "too-long",
    ],
    [
      "value length",
      new Writer().u8(8).string("k").string("k").string("o").varint(1).u8(0).varint(huge).finish(),
      "truncated",
    ],
  ];
  for (const [what, bytes, reason] of cases) {
    const decode = what.startsWith("push") || what === "value length" ? decodeMessage : decodeEnvelope;
    const before = process.memoryUsage().arrayBuffers;
    const err = t.throws(() => decode(bytes), { instanceOf: GossipDecodeError }, what);
    t.is(err?.reason, reason, what);
    t.true(process.memoryUsage().arrayBuffers - before < 1024 * 1024, `${what}: no large allocation`);
  }
});

test("varints: round trip up to 2^53-1, overflow and overlong input rejected", (t) => {
  fc.assert(
    fc.property(fc.maxSafeNat(), (v) => {
      t.is(new Reader(new Writer().varint(v).finish()).varint(), v);
    }),
  );
  const nineBytes = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  t.throws(() => new Reader(nineBytes).varint(), { instanceOf: GossipDecodeError });
  const tooBig = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]); // 2^56-1
  t.is(t.throws(() => new Reader(tooBig).varint(), { instanceOf: GossipDecodeError })?.reason, "bad-value");
});

test("unknown message types inside an envelope are skipped and counted", (t) => {
  const known = encodeMessage({ type: "ack", seq: 7 });
  const unknown = new Uint8Array([200, 1, 2, 3]);
  const bytes = new Writer().u8(WIRE_VERSION).string("n").varint(2).bytes(unknown).bytes(known).finish();
  t.deepEqual(decodeEnvelope(bytes), { from: "n", messages: [{ type: "ack", seq: 7 }], skipped: 1 });
});

test("a different wire version is refused", (t) => {
  const bytes = encodeEnvelope({ from: "n", messages: [] });
  bytes[0] = WIRE_VERSION + 1;
  t.is(t.throws(() => decodeEnvelope(bytes), { instanceOf: GossipDecodeError })?.reason, "bad-version");
});

const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

test("sealed packets round trip and every tampered byte is caught", (t) => {
  const ring = new Keyring([key(1)]);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (plain, at, xor) => {
        const sealed = seal(plain, ring);
        t.deepEqual(new Uint8Array(unseal(sealed, ring)), plain);
        const tampered = sealed.slice();
        tampered[at % sealed.length]! ^= xor;
        t.throws(() => unseal(tampered, ring), { instanceOf: GossipDecodeError });
      },
    ),
    { numRuns: 300 },
  );
});

test("seal: nonces differ, wrong keys and plaintext are unauthenticated", (t) => {
  const ring = new Keyring([key(1)]);
  const plain = new Uint8Array([1, 2, 3]);
  t.notDeepEqual(seal(plain, ring), seal(plain, ring));
  const reason = (bytes: Uint8Array, r: Keyring | undefined) =>
    t.throws(() => unseal(bytes, r), { instanceOf: GossipDecodeError })?.reason;
  t.is(reason(seal(plain, ring), new Keyring([key(2)])), "unauthenticated");
  t.is(reason(seal(plain, undefined), ring), "unauthenticated");
  t.is(reason(seal(plain, ring), undefined), "unauthenticated");
  // A secondary key still decrypts: the middle of a rotation.
  const both = new Keyring([key(2), key(1)]);
  t.deepEqual(new Uint8Array(unseal(seal(plain, ring), both)), plain);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      t.true(onlyDecodeErrors(() => unseal(bytes, ring)));
    }),
    { numRuns: 500 },
  );
});

test("table values: bytes and JSON round trip; junk is a decode error", (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array(), fc.jsonValue()), (v) => {
      const once = decodeValue(encodeValue(v as Uint8Array));
      t.deepEqual(decodeValue(encodeValue(once)), once);
    }),
  );
  t.deepEqual(decodeValue(encodeValue({ a: [1, "x", null] })), { a: [1, "x", null] });
  t.deepEqual(decodeValue(encodeValue(new Uint8Array([9, 8]))), new Uint8Array([9, 8]));
  t.is(
    t.throws(() => decodeValue(new Uint8Array([1, 0x7b])), { instanceOf: GossipDecodeError })?.reason,
    "bad-value",
  );
  t.is(
    t.throws(() => decodeValue(new Uint8Array([7])), { instanceOf: GossipDecodeError })?.reason,
    "bad-type",
  );
  t.throws(() => encodeValue(10n as unknown as Uint8Array), { instanceOf: TypeError });
});
