/**
 * The resolver as a chain of small handlers, in the manner of coredns plugins: each handler looks
 * at a query and either answers it, passes it on to the next handler, or fails it. The first
 * answer or failure wins; a query nobody answers is refused.
 */
import type { Answer } from "dns-packet";
import type { Scope } from "./records.js";

/** Response codes trellis produces (RFC 1035 §4.1.1). */
export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;
export type RcodeValue = (typeof Rcode)[keyof typeof Rcode];

export type Transport = "udp" | "tcp";

export interface Query {
  /** the name as asked, case and trailing dot kept (echoed in the question and answers) */
  name: string;
  /** normalizeName(name) */
  lname: string;
  /** record type mnemonic as dns-packet gives it ("A", "AAAA", "PTR", "UNKNOWN_65280") */
  type: string;
  class: string;
  /** networks whose names this query may see */
  scope: Scope;
  transport: Transport;
}

export interface Answered {
  kind: "answer";
  rcode: RcodeValue;
  answers: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
  /** trellis's own data (sets AA; such answers may be memoised until the records change) */
  local: boolean;
  /** which handler answered, for the lookup API and logs */
  source: string;
}

export interface Failed {
  kind: "fail";
  rcode: RcodeValue;
  source: string;
}

export type Outcome = Answered | Failed | { kind: "next" };

export const NEXT: Outcome = { kind: "next" };

export interface Handler {
  readonly name: string;
  /** Synchronous handlers keep the local-answer path free of promise hops. */
  handle(q: Query): Outcome | Promise<Outcome>;
}

export type Final = Answered | Failed;

const REFUSED: Failed = { kind: "fail", rcode: Rcode.REFUSED, source: "none" };

/** Runs the chain from `from`; stays synchronous until a handler returns a promise. */
export function runChain(handlers: readonly Handler[], q: Query, from = 0): Final | Promise<Final> {
  for (let i = from; i < handlers.length; i++) {
    let out: Outcome | Promise<Outcome>;
    try {
      out = handlers[i]!.handle(q);
    } catch {
      return { kind: "fail", rcode: Rcode.SERVFAIL, source: handlers[i]!.name };
    }
    if (out instanceof Promise) {
      const name = handlers[i]!.name;
      return out.then(
        (o) => (o.kind === "next" ? runChain(handlers, q, i + 1) : o),
        (): Final => ({ kind: "fail", rcode: Rcode.SERVFAIL, source: name }),
      );
    }
    if (out.kind !== "next") return out;
  }
  return REFUSED;
}
