/** EDNS0 payload sizes and truncation: what fits, when TC is set, and that replies always decode. */
import test from "ava";
import * as dns from "dns-packet";
import fc from "fast-check";
import { Rcode } from "../../lib/dns/chain.js";
import {
  CLASSIC_UDP_SIZE,
  encodeReply,
  encodeWithin,
  MAX_TCP_SIZE,
  MAX_UDP_SIZE,
  type ParsedQuery,
  parseQuery,
  replyLimit,
} from "../../lib/dns/message.js";

function parsed(opt?: number): ParsedQuery {
  const msg = dns.encode({
    id: 9,
    type: "query",
    flags: dns.RECURSION_DESIRED,
    questions: [{ name: "big.example.test", type: "A" }],
    ...(opt === undefined
      ? {}
      : {
          additionals: [
            {
              type: "OPT",
              name: ".",
              udpPayloadSize: opt,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: 0,
              flag_do: false,
              options: [],
            },
          ],
        }),
  });
  const p = parseQuery(msg);
  if (p.kind !== "query") throw new Error("not a query");
  return p;
}

const records = (n: number): dns.Answer[] =>
  Array.from({ length: n }, (_, i) => ({
    type: "A",
    name: "big.example.test",
    ttl: 60,
    data: `198.51.100.${i % 256}`,
  }));

const answer = (n: number) => ({
  kind: "answer" as const,
  rcode: Rcode.NOERROR,
  answers: records(n),
  local: false,
  source: "t",
});

test("reply limits: 512 without OPT, the advertised size with it (at least 512, at most 4096), 65535 over TCP", (t) => {
  t.is(replyLimit(parsed(), "udp"), CLASSIC_UDP_SIZE);
  t.is(replyLimit(parsed(1232), "udp"), 1232);
  t.is(replyLimit(parsed(100), "udp"), 512);
  t.is(replyLimit(parsed(65000), "udp"), MAX_UDP_SIZE);
  t.is(replyLimit(parsed(), "tcp"), MAX_TCP_SIZE);
});

test("a reply that fits has no TC; one that does not keeps what fits and sets TC; the OPT stays", (t) => {
  const small = dns.decode(encodeReply(parsed(1232), answer(3), "udp"));
  t.false(small.flag_tc);
  t.is(small.answers?.length, 3);
  const big = encodeReply(parsed(1232), answer(120), "udp");
  t.true(big.length <= 1232);
  const decoded = dns.decode(big);
  t.true(decoded.flag_tc);
  t.true((decoded.answers?.length ?? 0) > 10 && (decoded.answers?.length ?? 0) < 120);
  t.truthy(
    decoded.additionals?.find((a) => a.type === "OPT"),
    "EDNS0 answered with EDNS0",
  );
  const classic = encodeReply(parsed(), answer(120), "udp");
  t.true(classic.length <= 512);
  t.true(dns.decode(classic).flag_tc);
  t.is(dns.decode(classic).additionals?.length, 0, "no OPT to a client without EDNS0");
  const tcp = dns.decode(encodeReply(parsed(), answer(120), "tcp"));
  t.deepEqual([tcp.flag_tc, tcp.answers?.length], [false, 120]);
});

test("optional sections go before answers, without TC", (t) => {
  const ns: dns.Answer[] = Array.from({ length: 40 }, (_, i) => ({
    type: "NS",
    name: "example.test",
    ttl: 60,
    data: `ns${i}.example.test`,
  }));
  const out = encodeWithin(
    {
      id: 1,
      type: "response",
      questions: [{ name: "x.example.test", type: "A" }],
      answers: records(2),
      authorities: ns,
    },
    512,
  );
  const d = dns.decode(out.buf);
  t.false(out.truncated);
  t.deepEqual([d.answers?.length, d.authorities?.length, d.flag_tc], [2, 0, false]);
});

test("property: encodeWithin never exceeds the limit, always decodes, TC exactly when answers were dropped", (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 512, max: 4096 }), (n, limit) => {
      const { buf, truncated } = encodeWithin(
        {
          id: 3,
          type: "response",
          questions: [{ name: "big.example.test", type: "A" }],
          answers: records(n),
        },
        limit,
      );
      const d = dns.decode(buf);
      const kept = d.answers?.length ?? 0;
      return (
        buf.length <= limit && truncated === kept < n && d.flag_tc === truncated && (truncated || kept === n)
      );
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test("an EDNS version above 0 gets BADVERS (extended RCODE 1 in the OPT)", (t) => {
  const msg = dns.encode({
    id: 5,
    type: "query",
    questions: [{ name: "web", type: "A" }],
    additionals: [
      {
        type: "OPT",
        name: ".",
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 1,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  });
  const p = parseQuery(msg);
  t.is(p.kind, "reply");
  if (p.kind !== "reply") return;
  const d = dns.decode(p.reply);
  const opt = d.additionals?.find((a) => a.type === "OPT") as dns.OptAnswer | undefined;
  t.deepEqual([d.id, opt?.extendedRcode, d.flags! & 0xf], [5, 1, 0]);
});
