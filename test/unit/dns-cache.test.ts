/**
 * The answer cache (TTL, LRU eviction) and the forwarder against a fake exchange (no sockets):
 * aged TTLs, negative caching by SOA, TC → TCP retry, next upstream on failure or timeout,
 * SERVFAIL when all fail, TCP clients forwarded over TCP, in-flight sharing and its bound.
 */
import test from "ava";
import * as dns from "dns-packet";
import { TtlLru } from "../../lib/dns/cache.js";
import { Rcode } from "../../lib/dns/chain.js";
import type { Exchange } from "../../lib/dns/exchange.js";
import { cacheTtl, Forwarder, MAX_CACHE_TTL } from "../../lib/dns/forwarder.js";
import type { Upstream } from "../../lib/dns/upstreams.js";

test("TtlLru: expiry, age in whole seconds, LRU eviction, capacity 0 disables", (t) => {
  const c = new TtlLru<string>(2);
  c.set("a", "A", 10, 0);
  c.set("b", "B", 10, 0);
  t.deepEqual(c.get("a", 2500), { value: "A", ageSeconds: 2 });
  c.set("c", "C", 10, 3000); // evicts b, the least recently used
  t.is(c.get("b", 3000), undefined);
  t.truthy(c.get("a", 3000));
  t.is(c.get("a", 10_000), undefined, "expired");
  t.is(c.size, 1);
  c.set("z", "Z", 0, 0);
  t.is(c.get("z", 0), undefined, "TTL 0 is not cached");
  const off = new TtlLru<string>(0);
  off.set("a", "A", 10, 0);
  t.is(off.get("a", 0), undefined);
});

test("cacheTtl: smallest answer TTL, SOA minimum for negative answers, nothing for failures, capped", (t) => {
  const a = (ttl: number): dns.Answer => ({ type: "A", name: "x", ttl, data: "192.0.2.1" });
  const soa: dns.Answer = { type: "SOA", name: "t", ttl: 90, data: { mname: "m", rname: "r", minimum: 30 } };
  t.is(cacheTtl({ rcode: 0, answers: [a(300), a(20)], authorities: [], additionals: [] }), 20);
  t.is(cacheTtl({ rcode: 3, answers: [], authorities: [soa], additionals: [] }), 30);
  t.is(cacheTtl({ rcode: 3, answers: [], authorities: [], additionals: [] }), 0);
  t.is(cacheTtl({ rcode: 2, answers: [a(300)], authorities: [], additionals: [] }), 0);
  t.is(cacheTtl({ rcode: 0, answers: [a(999_999)], authorities: [], additionals: [] }), MAX_CACHE_TTL);
});

const UP1: Upstream = { address: "10.99.0.2", port: 53, family: 4 };
const UP2: Upstream = { address: "10.99.0.3", port: 53, family: 4 };

type Behaviour = (
  up: Upstream,
  q: dns.DecodedPacket,
  transport: "udp" | "tcp",
) => dns.Packet | "timeout" | "refused";

/** A fake exchange: answers through `behave`, records every call. */
function fakeExchange(behave: Behaviour) {
  const calls: string[] = [];
  const exchange: Exchange = async (up, query, transport, timeoutMs, accept) => {
    const q = dns.decode(query);
    calls.push(`${up.address} ${transport} ${q.questions?.[0]?.name}`);
    const r = behave(up, q, transport);
    if (r === "timeout") {
      await new Promise((res) => setTimeout(res, Math.min(timeoutMs, 5)));
      throw new Error("timeout");
    }
    if (r === "refused") throw new Error("ECONNREFUSED");
    const buf = dns.encode({ ...r, id: q.id, type: "response", questions: q.questions });
    if (!accept(buf)) throw new Error("not accepted");
    return buf;
  };
  return { exchange, calls };
}

const ok = (ttl = 60, tc = false): dns.Packet => ({
  flags: tc ? dns.TRUNCATED_RESPONSE : 0,
  answers: tc ? [] : [{ type: "A", name: "x.example.test", ttl, data: "192.0.2.1" }],
});
const q = (name = "x.example.test", transport: "udp" | "tcp" = "udp") => ({
  name,
  type: "A",
  class: "IN",
  transport,
});

test("a cached answer is served with TTLs aged by the time spent in the cache", async (t) => {
  let now = 1_000_000;
  const { exchange, calls } = fakeExchange(() => ok(60));
  const f = new Forwarder({ upstreams: [UP1], exchange, now: () => now });
  t.is((await f.resolve(q()))?.answers[0]?.type, "A");
  now += 25_000;
  const again = await f.resolve(q("X.Example.Test"));
  t.is((again?.answers[0] as { ttl?: number } | undefined)?.ttl, 35);
  t.is(calls.length, 1, "case-insensitive cache key");
  now += 40_000;
  await f.resolve(q());
  t.is(calls.length, 2, "expired after its TTL");
});

test("TC over UDP: retried over TCP at the same upstream; a TCP client is forwarded over TCP", async (t) => {
  const { exchange, calls } = fakeExchange((_up, _q, transport) => ok(60, transport === "udp"));
  const f = new Forwarder({ upstreams: [UP1, UP2], exchange, cacheSize: 0 });
  const r = await f.resolve(q());
  t.is(r?.answers.length, 1);
  t.deepEqual(calls, ["10.99.0.2 udp x.example.test", "10.99.0.2 tcp x.example.test"]);
  calls.length = 0;
  await f.resolve(q("y.example.test", "tcp"));
  t.deepEqual(calls, ["10.99.0.2 tcp y.example.test"]);
});

test("a failing upstream (timeout, refused, SERVFAIL) passes to the next; all failing gives undefined (SERVFAIL)", async (t) => {
  for (const failure of ["timeout", "refused", "servfail"] as const) {
    const { exchange, calls } = fakeExchange((up) =>
      up === UP1 ? (failure === "servfail" ? { flags: Rcode.SERVFAIL } : failure) : ok(),
    );
    const f = new Forwarder({ upstreams: [UP1, UP2], exchange, timeoutMs: 50 });
    t.is((await f.resolve(q()))?.rcode, Rcode.NOERROR, failure);
    t.deepEqual(
      calls.map((c) => c.split(" ")[0]),
      ["10.99.0.2", "10.99.0.3"],
      failure,
    );
  }
  const dead = fakeExchange(() => "timeout");
  t.is(
    await new Forwarder({ upstreams: [UP1, UP2], exchange: dead.exchange, timeoutMs: 20 }).resolve(q()),
    undefined,
  );
  const servfail = fakeExchange(() => ({ flags: Rcode.SERVFAIL }));
  const r = await new Forwarder({ upstreams: [UP1], exchange: servfail.exchange }).resolve(q());
  t.is(r?.rcode, Rcode.SERVFAIL, "the upstream's own SERVFAIL is passed on");
  t.is(
    await new Forwarder({ upstreams: [], exchange: dead.exchange }).resolve(q()),
    undefined,
    "no upstreams",
  );
});

test("identical questions in flight share one exchange; the in-flight bound answers SERVFAIL at once", async (t) => {
  const { exchange, calls } = fakeExchange(() => ok());
  const f = new Forwarder({ upstreams: [UP1], exchange, maxInflight: 1, cacheSize: 0 });
  const [a, b, c] = await Promise.all([f.resolve(q()), f.resolve(q()), f.resolve(q("other.example.test"))]);
  t.is(calls.length, 1);
  t.is(a, b);
  t.is(c, undefined, "a second distinct question beyond maxInflight");
});

test("replies with a wrong id or question are not accepted", async (t) => {
  const exchange: Exchange = async (_up, query, _tr, _ms, accept) => {
    const qp = dns.decode(query);
    const wrongId = dns.encode({ id: (qp.id! + 1) & 0xffff, type: "response", questions: qp.questions });
    const wrongName = dns.encode({
      id: qp.id,
      type: "response",
      questions: [{ name: "evil.test", type: "A" }],
    });
    t.false(accept(wrongId));
    t.false(accept(wrongName));
    t.false(accept(Buffer.from("garbage")));
    throw new Error("timeout");
  };
  t.is(await new Forwarder({ upstreams: [UP1], exchange }).resolve(q()), undefined);
});
