/**
 * The wire codec: pure functions from messages to bytes and back. Decoding checks every length
 * against the bytes present and throws only `GossipDecodeError`.
 *
 * Envelope (version 1):  u8 version | string from | varint count | count × (varint len | message)
 * Message:               u8 type | fields (see each encoder)
 * Strings are varint length + UTF-8; numbers are unsigned LEB128 varints; seq is a u32.
 * Each message is length-prefixed so a receiver skips types it does not know (forward
 * compatibility within a version); a new version byte is for incompatible changes.
 */
import { Reader, Writer } from "./bytes.js";
import { decodeError } from "./errors.js";
import type {
  Envelope,
  JsonValue,
  MemberSnapshot,
  MemberState,
  Message,
  PushPullMsg,
  TableValue,
  WireRecord,
} from "./messages.js";

export const WIRE_VERSION = 1;

/** Bounds on decoded fields; generous, but they cap what a hostile peer can make us hold. */
export const LIMITS = Object.freeze({ name: 255, address: 255, key: 1024 });

const TYPE = Object.freeze({
  ping: 1,
  "indirect-ping": 2,
  ack: 3,
  nack: 4,
  alive: 5,
  suspect: 6,
  dead: 7,
  entry: 8,
  "push-pull": 9,
});
const STATES: readonly MemberState[] = ["alive", "suspect", "dead", "left"];
const PHASES: readonly PushPullMsg["phase"][] = ["request", "response", "entries"];
const VALUE_BYTES = 0;
const VALUE_JSON = 1;

// ----------------------------------------------------------------------------------- values

/** Encodes a table value: kind byte + payload. Throws (TypeError, RangeError) for values JSON cannot carry. */
export function encodeValue(value: TableValue): Uint8Array {
  if (value instanceof Uint8Array) return new Writer(value.length + 1).u8(VALUE_BYTES).raw(value).finish();
  const text = JSON.stringify(value);
  if (text === undefined) throw new RangeError("table value is not JSON-serialisable");
  return new Writer(text.length + 8).u8(VALUE_JSON).raw(new TextEncoder().encode(text)).finish();
}

export function decodeValue(bytes: Uint8Array): TableValue {
  const r = new Reader(bytes);
  const kind = r.u8();
  const payload = r.raw(r.remaining);
  // A plain copy: never pin the packet buffer, never hand out a Buffer (whose slice() is a view).
  if (kind === VALUE_BYTES) return new Uint8Array(payload);
  if (kind !== VALUE_JSON) throw decodeError("bad-type", `unknown value kind ${kind}`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    throw decodeError("bad-value", "invalid UTF-8 in a JSON value");
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw decodeError("bad-value", "invalid JSON value");
  }
}

// ---------------------------------------------------------------------------------- records

function writeRecord(w: Writer, rec: WireRecord): void {
  w.string(rec.keyspace).string(rec.key).string(rec.owner).varint(rec.lamport);
  w.u8(rec.deleted ? 1 : 0).bytes(rec.deleted ? new Uint8Array(0) : rec.valueBytes);
}

function readRecord(r: Reader): WireRecord {
  const keyspace = r.string(LIMITS.key);
  const key = r.string(LIMITS.key);
  const owner = r.string(LIMITS.name);
  const lamport = r.varint();
  const flags = r.u8();
  if (flags > 1) throw decodeError("bad-value", `record flags ${flags}`);
  const deleted = flags === 1;
  const valueBytes = new Uint8Array(r.bytes());
  if (deleted !== (valueBytes.length === 0)) {
    throw decodeError("bad-value", deleted ? "tombstone with a value" : "live record without a value");
  }
  const value = deleted ? undefined : decodeValue(valueBytes);
  return { keyspace, key, owner, lamport, deleted, value, valueBytes };
}

// ---------------------------------------------------------------------------------- members

function writeMember(w: Writer, m: MemberSnapshot): void {
  w.string(m.name).string(m.addr).varint(m.port).varint(m.incarnation).u8(STATES.indexOf(m.state));
}

function readMember(r: Reader): MemberSnapshot {
  const name = r.string(LIMITS.name);
  const addr = r.string(LIMITS.address);
  const port = readPort(r);
  const incarnation = r.varint();
  const state = STATES[r.u8()];
  if (state === undefined) throw decodeError("bad-value", "unknown member state");
  return { name, addr, port, incarnation, state };
}

function readPort(r: Reader): number {
  const port = r.varint();
  if (port > 65535) throw decodeError("bad-value", `port ${port}`);
  return port;
}

// --------------------------------------------------------------------------------- messages

export function encodeMessage(msg: Message): Uint8Array {
  const w = new Writer(64).u8(TYPE[msg.type]);
  switch (msg.type) {
    case "ping":
      return w.u32(msg.seq).string(msg.target).finish();
    case "indirect-ping":
      w.u32(msg.seq).string(msg.target).string(msg.addr).varint(msg.port);
      return w.u8(msg.nack ? 1 : 0).finish();
    case "ack":
    case "nack":
      return w.u32(msg.seq).finish();
    case "alive":
      return w.string(msg.name).varint(msg.incarnation).string(msg.addr).varint(msg.port).finish();
    case "suspect":
    case "dead":
      return w.string(msg.name).varint(msg.incarnation).string(msg.from).finish();
    case "entry":
      writeRecord(w, msg.record);
      return w.finish();
    case "push-pull":
      return encodePushPull(w, msg);
  }
}

function encodePushPull(w: Writer, msg: PushPullMsg): Uint8Array {
  w.u8(PHASES.indexOf(msg.phase)).u8(msg.join ? 1 : 0);
  w.varint(msg.members.length);
  for (const m of msg.members) writeMember(w, m);
  w.bytes(msg.buckets);
  w.varint(msg.records.length);
  for (const rec of msg.records) writeRecord(w, rec);
  return w.finish();
}

/** Decodes one message; `undefined` for a type this version does not know (skip it). */
export function decodeMessage(bytes: Uint8Array): Message | undefined {
  const r = new Reader(bytes);
  const msg = readMessage(r);
  if (msg !== undefined) r.end(msg.type);
  return msg;
}

function readMessage(r: Reader): Message | undefined {
  const type = r.u8();
  switch (type) {
    case TYPE.ping:
      return { type: "ping", seq: r.u32(), target: r.string(LIMITS.name) };
    case TYPE["indirect-ping"]:
      return {
        type: "indirect-ping",
        seq: r.u32(),
        target: r.string(LIMITS.name),
        addr: r.string(LIMITS.address),
        port: readPort(r),
        nack: readBool(r),
      };
    case TYPE.ack:
      return { type: "ack", seq: r.u32() };
    case TYPE.nack:
      return { type: "nack", seq: r.u32() };
    case TYPE.alive:
      return {
        type: "alive",
        name: r.string(LIMITS.name),
        incarnation: r.varint(),
        addr: r.string(LIMITS.address),
        port: readPort(r),
      };
    case TYPE.suspect:
    case TYPE.dead:
      return {
        type: type === TYPE.suspect ? "suspect" : "dead",
        name: r.string(LIMITS.name),
        incarnation: r.varint(),
        from: r.string(LIMITS.name),
      };
    case TYPE.entry:
      return { type: "entry", record: readRecord(r) };
    case TYPE["push-pull"]:
      return readPushPull(r);
    default:
      return undefined;
  }
}

function readBool(r: Reader): boolean {
  const b = r.u8();
  if (b > 1) throw decodeError("bad-value", `boolean byte ${b}`);
  return b === 1;
}

function readPushPull(r: Reader): PushPullMsg {
  const phase = PHASES[r.u8()];
  if (phase === undefined) throw decodeError("bad-value", "unknown push-pull phase");
  const join = readBool(r);
  const memberCount = r.count(5, "member");
  const members: MemberSnapshot[] = [];
  for (let i = 0; i < memberCount; i++) members.push(readMember(r));
  const buckets = new Uint8Array(r.bytes());
  if (buckets.length % 8 !== 0) throw decodeError("bad-value", "bucket digests not a multiple of 8 bytes");
  const recordCount = r.count(7, "record");
  const records: WireRecord[] = [];
  for (let i = 0; i < recordCount; i++) records.push(readRecord(r));
  return { type: "push-pull", phase, join, members, buckets, records };
}

// -------------------------------------------------------------------------------- envelopes

/** Bytes an envelope adds around its messages, for packing datagrams. */
export function envelopeOverhead(from: string, count: number): number {
  const nameLen = new TextEncoder().encode(from).length;
  return 1 + varintSize(nameLen) + nameLen + varintSize(count);
}

/** Bytes one already-encoded message takes inside an envelope. */
export const framedSize = (encoded: Uint8Array): number => varintSize(encoded.length) + encoded.length;

export function varintSize(v: number): number {
  let n = 1;
  for (let rest = v; rest >= 0x80; rest = Math.floor(rest / 0x80)) n++;
  return n;
}

/** Builds an envelope from messages that are already encoded (broadcasts are encoded once). */
export function encodeEnvelopeParts(from: string, parts: readonly Uint8Array[]): Uint8Array {
  const w = new Writer(256).u8(WIRE_VERSION).string(from).varint(parts.length);
  for (const p of parts) w.bytes(p);
  return w.finish();
}

export function encodeEnvelope(env: Envelope): Uint8Array {
  return encodeEnvelopeParts(env.from, env.messages.map(encodeMessage));
}

/** Decodes an envelope; `skipped` counts messages of unknown types. */
export function decodeEnvelope(bytes: Uint8Array): Envelope & { skipped: number } {
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== WIRE_VERSION) throw decodeError("bad-version", `wire version ${version}`);
  const from = r.string(LIMITS.name);
  const count = r.count(2, "message");
  const messages: Message[] = [];
  let skipped = 0;
  for (let i = 0; i < count; i++) {
    const msg = decodeMessage(r.bytes());
    if (msg === undefined) skipped++;
    else messages.push(msg);
  }
  r.end("envelope");
  return { from, messages, skipped };
}
