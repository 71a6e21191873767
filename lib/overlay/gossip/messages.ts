/**
 * The protocol's messages as plain data. `codec.ts` turns them into bytes and back; nothing here
 * does I/O. Names and addresses are strings; numbers are non-negative safe integers.
 */

export type MemberState = "alive" | "suspect" | "dead" | "left";

/** A JSON value as `table.set()` accepts it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What a table entry holds: raw bytes or anything JSON can represent. */
export type TableValue = Uint8Array | JsonValue;

/** One table record on the wire (and in the table). `value` is undefined for tombstones. */
export interface WireRecord {
  keyspace: string;
  key: string;
  owner: string;
  lamport: number;
  deleted: boolean;
  value: TableValue | undefined;
  /** The encoded value (kind byte + payload), what is hashed and re-sent; empty for tombstones. */
  valueBytes: Uint8Array;
}

/** A member as exchanged in push-pull. */
export interface MemberSnapshot {
  name: string;
  addr: string;
  port: number;
  incarnation: number;
  state: MemberState;
}

/** Direct probe; `target` guards against a different node now living at the address. */
export interface PingMsg {
  type: "ping";
  seq: number;
  target: string;
}

/** "Probe `target` for me and forward the ack"; `nack` asks for a negative reply on timeout. */
export interface IndirectPingMsg {
  type: "indirect-ping";
  seq: number;
  target: string;
  addr: string;
  port: number;
  nack: boolean;
}

export interface AckMsg {
  type: "ack";
  seq: number;
}

/** An intermediary could not reach the target (Lifeguard: tells the prober its own path works). */
export interface NackMsg {
  type: "nack";
  seq: number;
}

export interface AliveMsg {
  type: "alive";
  name: string;
  incarnation: number;
  addr: string;
  port: number;
}

export interface SuspectMsg {
  type: "suspect";
  name: string;
  incarnation: number;
  from: string;
}

/** Declares `name` dead; when `from === name` the node is leaving gracefully ("left"). */
export interface DeadMsg {
  type: "dead";
  name: string;
  incarnation: number;
  from: string;
}

export interface EntryMsg {
  type: "entry";
  record: WireRecord;
}

/**
 * Anti-entropy over TCP, three steps: the initiator sends "request" (its members and table
 * bucket digests); the peer merges the members, replies "response" (its members, digests and
 * its records in every bucket whose digest differs); the initiator merges and sends "entries"
 * (its records in those buckets that the peer did not already send).
 */
export interface PushPullMsg {
  type: "push-pull";
  phase: "request" | "response" | "entries";
  join: boolean;
  members: MemberSnapshot[];
  /** Concatenated 8-byte bucket digests (empty in the "entries" phase). */
  buckets: Uint8Array;
  records: WireRecord[];
}

export type Message =
  | PingMsg
  | IndirectPingMsg
  | AckMsg
  | NackMsg
  | AliveMsg
  | SuspectMsg
  | DeadMsg
  | EntryMsg
  | PushPullMsg;

/** What one packet or one stream frame carries: the sender's name and its messages. */
export interface Envelope {
  from: string;
  messages: Message[];
}
