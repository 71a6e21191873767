/**
 * From a datagram to a query and from an outcome to a reply, through dns-packet (no DNS encoding
 * by hand). Malformed input becomes FORMERR or nothing; never an exception. EDNS0 payload sizes
 * decide how much fits over UDP, and the TC bit says when answers were left out.
 */

import type { Answer, DecodedPacket, OptAnswer, Packet, Question } from "dns-packet";
import * as dns from "dns-packet";
import { type Final, Rcode, type RcodeValue, type Transport } from "./chain.js";

/** Without OPT a UDP reply may be 512 bytes (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_SIZE = 512;
/** Largest UDP reply trellis sends whatever the client advertises; and what it advertises. */
export const MAX_UDP_SIZE = 4096;
export const ADVERTISED_UDP_SIZE = 1232;
/** A DNS message over TCP carries a 16-bit length. */
export const MAX_TCP_SIZE = 65535;

export interface ParsedQuery {
  kind: "query";
  id: number;
  /** the request's header flags (RD and CD are echoed) */
  flags: number;
  question: Question;
  /** the client's OPT record when it sent one */
  opt: OptAnswer | undefined;
}

export type Parsed = ParsedQuery | { kind: "reply"; reply: Buffer } | { kind: "drop" };

const QR = 0x8000;
const OPCODE_MASK = 0x7800;

/** A header-only reply for a message we cannot (or will not) parse further. */
function bareReply(id: number, requestFlags: number, rcode: RcodeValue, question?: Question): Buffer {
  return dns.encode({
    id,
    type: "response",
    flags: (requestFlags & (OPCODE_MASK | dns.RECURSION_DESIRED)) | rcode,
    questions: question ? [question] : [],
  });
}

/** Decodes a datagram sent to the listener. Responses (QR set) and runts are dropped, so two
 * servers can never bounce errors at each other. */
export function parseQuery(msg: Buffer): Parsed {
  if (msg.length < 12) return { kind: "drop" };
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & QR) return { kind: "drop" };
  let packet: DecodedPacket;
  try {
    packet = dns.decode(msg);
  } catch {
    return { kind: "reply", reply: bareReply(id, flags, Rcode.FORMERR) };
  }
  const questions = packet.questions ?? [];
  if ((flags & OPCODE_MASK) !== 0) {
    return { kind: "reply", reply: bareReply(id, flags, Rcode.NOTIMP, questions[0]) };
  }
  const opts = (packet.additionals ?? []).filter((a): a is OptAnswer => a.type === "OPT");
  if (questions.length !== 1 || opts.length > 1) {
    return { kind: "reply", reply: bareReply(id, flags, Rcode.FORMERR) };
  }
  const opt = opts[0];
  if (opt && opt.ednsVersion > 0) return { kind: "reply", reply: badVersion(id, flags, questions[0]!) };
  return { kind: "query", id, flags, question: questions[0]!, opt };
}

/** EDNS versions above 0 get BADVERS (extended RCODE 16: 1 in the OPT's upper bits), RFC 6891 §6.1.3. */
function badVersion(id: number, requestFlags: number, question: Question): Buffer {
  return dns.encode({
    id,
    type: "response",
    flags: requestFlags & dns.RECURSION_DESIRED,
    questions: [question],
    additionals: [{ ...responseOpt(), extendedRcode: 1 }],
  });
}

/** How many bytes the reply may take: 512 without EDNS0, the advertised size (≥ 512, capped) with. */
export function replyLimit(q: ParsedQuery, transport: Transport): number {
  if (transport === "tcp") return MAX_TCP_SIZE;
  if (!q.opt) return CLASSIC_UDP_SIZE;
  return Math.min(Math.max(q.opt.udpPayloadSize || 0, CLASSIC_UDP_SIZE), MAX_UDP_SIZE);
}

function responseOpt(): OptAnswer {
  return {
    type: "OPT",
    name: ".",
    udpPayloadSize: ADVERTISED_UDP_SIZE,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}

/** The reply packet for an outcome, before size limits. */
export function replyPacket(q: ParsedQuery, final: Final): Packet {
  const answered = final.kind === "answer";
  const flags =
    (q.flags & (dns.RECURSION_DESIRED | dns.CHECKING_DISABLED)) |
    dns.RECURSION_AVAILABLE |
    (answered && final.local ? dns.AUTHORITATIVE_ANSWER : 0) |
    final.rcode;
  const extra = answered ? (final.additionals ?? []).filter((a) => a.type !== "OPT") : [];
  return {
    id: q.id,
    type: "response",
    flags,
    questions: [q.question],
    answers: answered ? final.answers : [],
    authorities: answered ? (final.authorities ?? []) : [],
    additionals: q.opt ? [...extra, responseOpt()] : extra,
  };
}

/**
 * Encodes within `limit` bytes. Additional and authority records go first (they are optional);
 * if the answers still do not fit, as many as fit are kept and TC is set so the client retries
 * over TCP (RFC 1035 §4.2.1, RFC 2181 §9).
 */
export function encodeWithin(packet: Packet, limit: number): { buf: Buffer; truncated: boolean } {
  if (dns.encodingLength(packet) <= limit) return { buf: dns.encode(packet), truncated: false };
  const opt = (packet.additionals ?? []).filter((a) => a.type === "OPT");
  const answers = packet.answers ?? [];
  const slim: Packet = { ...packet, authorities: [], additionals: opt };
  if (dns.encodingLength(slim) <= limit) return { buf: dns.encode(slim), truncated: false };
  const withAnswers = (n: number): Packet => ({
    ...slim,
    answers: answers.slice(0, n),
    flags: (packet.flags ?? 0) | dns.TRUNCATED_RESPONSE,
  });
  let lo = 0;
  let hi = answers.length - 1; // n answers do not fit: search the largest n that does
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (dns.encodingLength(withAnswers(mid)) <= limit) lo = mid;
    else hi = mid - 1;
  }
  return { buf: dns.encode(withAnswers(lo)), truncated: true };
}

/** The wire reply for an outcome; a reply that cannot be encoded (a name dns-packet mangles)
 * becomes a bare SERVFAIL. */
export function encodeReply(q: ParsedQuery, final: Final, transport: Transport): Buffer {
  try {
    return encodeWithin(replyPacket(q, final), replyLimit(q, transport)).buf;
  } catch {
    return bareReply(q.id, q.flags, Rcode.SERVFAIL);
  }
}

/** A fresh query for an upstream, with EDNS0 so large answers can come over UDP. */
export function upstreamQuery(id: number, question: Question): Buffer {
  return dns.encode({
    id,
    type: "query",
    flags: dns.RECURSION_DESIRED,
    questions: [{ name: question.name, type: question.type, class: question.class ?? "IN" }],
    additionals: [responseOpt()],
  });
}

export type { Answer, DecodedPacket, Question };
export { dns };
