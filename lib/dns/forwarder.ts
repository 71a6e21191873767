/**
 * Forwarding to the upstream resolvers: UDP first (TCP when the client asked over TCP), a TCP retry
 * at the same upstream when the reply is truncated, at most `timeoutMs` per upstream before the
 * next, SERVFAIL when all fail. Answers are cached (bounded LRU, TTLs respected and aged), and
 * identical questions in flight share one upstream exchange.
 */
import { randomInt } from "node:crypto";
import type { Logger } from "pino";
import { TtlLru } from "./cache.js";
import { type Final, type Handler, type Query, Rcode, type Transport } from "./chain.js";
import { type Exchange, socketExchange } from "./exchange.js";
import { type Answer, type DecodedPacket, dns, upstreamQuery } from "./message.js";
import { normalizeName } from "./names.js";
import { formatUpstream, type Upstream } from "./upstreams.js";

export interface ForwarderOptions {
  upstreams: readonly Upstream[];
  /** per upstream, UDP and TCP retry together, in ms; default 1000 (clients give up after 5 s) */
  timeoutMs?: number;
  /** answers cached at most; 0 disables the cache; default DEFAULT_CACHE_SIZE */
  cacheSize?: number;
  /** distinct questions in flight at most; beyond it queries get SERVFAIL at once; default 256 */
  maxInflight?: number;
  log?: Logger;
  /** test seams */
  exchange?: Exchange;
  now?: () => number;
}

export const DEFAULT_CACHE_SIZE = 10_000;
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 1000;
/** Upper bound on how long an upstream answer is kept, whatever its TTL, in seconds. */
export const MAX_CACHE_TTL = 3600;

export interface UpstreamAnswer {
  rcode: number;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

/** Seconds an upstream answer may be cached: the smallest TTL of its records; for a negative
 * answer the SOA's (RFC 2308 §5); 0 (not cached) for failures and negative answers without SOA. */
export function cacheTtl(a: UpstreamAnswer): number {
  const ttls = (records: Answer[]) =>
    records.filter((r) => r.type !== "OPT").map((r) => ("ttl" in r ? (r.ttl ?? 0) : 0));
  let ttl: number;
  if (a.rcode === Rcode.NOERROR && a.answers.length > 0) ttl = Math.min(...ttls(a.answers));
  else if (a.rcode === Rcode.NOERROR || a.rcode === Rcode.NXDOMAIN) {
    const soa = a.authorities.find((r) => r.type === "SOA");
    ttl = soa && soa.type === "SOA" ? Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0) : 0;
  } else ttl = 0;
  return Math.max(0, Math.min(ttl, MAX_CACHE_TTL));
}

function aged(records: Answer[], age: number): Answer[] {
  if (age === 0) return records;
  return records.map(
    (r) => (r.type === "OPT" ? r : { ...r, ttl: Math.max(0, (r.ttl ?? 0) - age) }) as Answer,
  );
}

const RETRY_NEXT = new Set<number>([Rcode.SERVFAIL, Rcode.NOTIMP, Rcode.REFUSED]);

export class Forwarder {
  readonly cache: TtlLru<UpstreamAnswer>;
  private readonly inflight = new Map<string, Promise<UpstreamAnswer | undefined>>();
  private readonly timeoutMs: number;
  private readonly maxInflight: number;
  private readonly exchange: Exchange;
  private readonly now: () => number;

  constructor(private readonly opts: ForwarderOptions) {
    this.cache = new TtlLru(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
    this.maxInflight = opts.maxInflight ?? 256;
    this.exchange = opts.exchange ?? socketExchange;
    this.now = opts.now ?? Date.now;
  }

  get upstreams(): readonly Upstream[] {
    return this.opts.upstreams;
  }

  /** The upstream answer, from the cache or the upstreams; undefined when every upstream failed. */
  resolve(q: Pick<Query, "name" | "type" | "class" | "transport">): Promise<UpstreamAnswer | undefined> {
    const key = `${normalizeName(q.name)}|${q.type}|${q.class}`;
    const hit = this.cache.get(key, this.now());
    if (hit) {
      const v = hit.value;
      return Promise.resolve({
        ...v,
        answers: aged(v.answers, hit.ageSeconds),
        authorities: aged(v.authorities, hit.ageSeconds),
        additionals: aged(v.additionals, hit.ageSeconds),
      });
    }
    const flightKey = `${key}|${q.transport}`;
    const running = this.inflight.get(flightKey);
    if (running) return running;
    if (this.inflight.size >= this.maxInflight) return Promise.resolve(undefined);
    const started = this.ask(q).then((answer) => {
      if (answer) this.cache.set(key, answer, cacheTtl(answer), this.now());
      return answer;
    });
    this.inflight.set(flightKey, started);
    void started.finally(() => this.inflight.delete(flightKey));
    return started;
  }

  private async ask(
    q: Pick<Query, "name" | "type" | "class" | "transport">,
  ): Promise<UpstreamAnswer | undefined> {
    let fallback: UpstreamAnswer | undefined;
    for (const up of this.opts.upstreams) {
      try {
        const answer = await this.askOne(up, q);
        if (!RETRY_NEXT.has(answer.rcode)) return answer;
        fallback ??= answer;
      } catch (err) {
        this.opts.log?.debug(
          { upstream: formatUpstream(up), name: q.name, err: String(err) },
          "upstream failed",
        );
      }
    }
    return fallback && { ...fallback, answers: [], authorities: [], additionals: [] };
  }

  /** UDP, then TCP if truncated, within one deadline. */
  private async askOne(up: Upstream, q: Pick<Query, "name" | "type" | "class" | "transport">) {
    const deadline = this.now() + this.timeoutMs;
    const id = randomInt(0x10000);
    const query = upstreamQuery(id, { name: q.name, type: q.type as never, class: q.class as never });
    const lname = normalizeName(q.name);
    const accept = (buf: Buffer): boolean => {
      if (buf.length < 12 || buf.readUInt16BE(0) !== id) return false;
      try {
        const p = dns.decode(buf);
        const qq = p.questions?.[0];
        return (
          p.type === "response" && qq !== undefined && normalizeName(qq.name) === lname && qq.type === q.type
        );
      } catch {
        return false;
      }
    };
    const ask = async (transport: Transport) => {
      const left = Math.max(1, deadline - this.now());
      return dns.decode(await this.exchange(up, query, transport, left, accept));
    };
    let reply: DecodedPacket = await ask(q.transport);
    if (reply.flag_tc && q.transport === "udp") reply = await ask("tcp");
    return {
      rcode: reply.flags! & 0xf,
      answers: reply.answers ?? [],
      authorities: reply.authorities ?? [],
      additionals: (reply.additionals ?? []).filter((a) => a.type !== "OPT"),
    };
  }
}

/** The last handler of the chain: whatever reaches it goes upstream. */
export function forwardHandler(fwd: Forwarder): Handler {
  return {
    name: "forward",
    async handle(q): Promise<Final> {
      const a = await fwd.resolve(q);
      if (!a) return { kind: "fail", rcode: Rcode.SERVFAIL, source: "upstream" };
      return {
        kind: "answer",
        rcode: a.rcode as Final["rcode"],
        answers: a.answers,
        authorities: a.authorities,
        additionals: a.additionals,
        local: false,
        source: "upstream",
      };
    },
  };
}
