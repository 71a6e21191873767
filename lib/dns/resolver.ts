/**
 * From a datagram or TCP message from a container to the reply bytes: parse, run the handler
 * chain with the asker's scope, encode within the transport's size limit.
 *
 * Hot path: replies to trellis's own names are memoised per asker by the request bytes after the
 * ID (flags, question as asked, OPT), which determine the reply completely while the records stay
 * the same; any record change drops the memo. A repeated query is then one map lookup, a copy and
 * a two-byte ID patch, with no decoding or encoding.
 */
import { type Final, type Handler, type Query, runChain, type Transport } from "./chain.js";
import { encodeReply, type ParsedQuery, parseQuery } from "./message.js";
import { normalizeName } from "./names.js";
import type { DnsRecords, Scope } from "./records.js";

export interface ResolverOptions {
  /** memoised replies per asker at most (the memo is cleared when full); default 1024 */
  memoSize?: number;
}

export type MaybeAsync<T> = T | Promise<T>;

export class Resolver {
  private readonly memo = new Map<string, Map<string, Buffer>>();
  private memoGeneration = -1;
  private readonly memoSize: number;

  constructor(
    private readonly records: DnsRecords,
    private readonly handlers: readonly Handler[],
    opts: ResolverOptions = {},
  ) {
    this.memoSize = opts.memoSize ?? 1024;
  }

  /** The reply to send to the container `asker`, or undefined to send nothing. Never throws. */
  answer(asker: string, msg: Buffer, transport: Transport): MaybeAsync<Buffer | undefined> {
    const memo = transport === "udp" ? this.memoOf(asker) : undefined;
    const key = memo && msg.length > 2 ? msg.toString("latin1", 2) : undefined;
    const cached = key !== undefined ? memo?.get(key) : undefined;
    if (cached) {
      const out = Buffer.allocUnsafe(cached.length);
      cached.copy(out);
      out[0] = msg[0]!;
      out[1] = msg[1]!;
      return out;
    }
    const parsed = parseQuery(msg);
    if (parsed.kind === "drop") return undefined;
    if (parsed.kind === "reply") return parsed.reply;
    const final = this.run(this.records.scopeOf(asker), parsed, transport);
    if (final instanceof Promise) return final.then((f) => encodeReply(parsed, f, transport));
    const reply = encodeReply(parsed, final, transport);
    if (memo && key !== undefined && final.kind === "answer" && final.local) {
      if (memo.size >= this.memoSize) memo.clear();
      memo.set(key, reply);
    }
    return reply;
  }

  /** What a query from `scope` would get, without the wire (the lookup API). */
  lookup(scope: Scope, name: string, type: string): Promise<Final> {
    return Promise.resolve(
      runChain(this.handlers, {
        name,
        lname: normalizeName(name),
        type,
        class: "IN",
        scope,
        transport: "udp",
      }),
    );
  }

  private run(scope: Scope, parsed: ParsedQuery, transport: Transport): MaybeAsync<Final> {
    const q: Query = {
      name: parsed.question.name,
      lname: normalizeName(parsed.question.name),
      type: parsed.question.type,
      class: parsed.question.class ?? "IN",
      scope,
      transport,
    };
    return runChain(this.handlers, q);
  }

  private memoOf(asker: string): Map<string, Buffer> {
    if (this.memoGeneration !== this.records.generation) {
      this.memo.clear();
      this.memoGeneration = this.records.generation;
    }
    let m = this.memo.get(asker);
    if (!m) {
      m = new Map();
      this.memo.set(asker, m);
    }
    return m;
  }
}
