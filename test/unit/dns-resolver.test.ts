/**
 * The resolver's handler chain against an in-memory record index (no sockets): scope, case,
 * trailing dot, search domain, PTR v4/v6, NXDOMAIN versus forwarding, memoised replies dropped on
 * change, malformed input, and properties over random packets and queries.
 */
import test from "ava";
import * as dns from "dns-packet";
import fc from "fast-check";
import { DnsRecords } from "../../lib/dns/records.js";
import type { Resolver } from "../../lib/dns/resolver.js";
import { dnsEndpoint, resolverOver } from "../helpers/dns-fixture.js";

const C_A = "container-a"; // on net-a
const C_B = "container-b"; // on net-b
const C_AB = "container-ab"; // on both

const ep = dnsEndpoint;

function setup() {
  const records = new DnsRecords();
  records.setSubnets("net-a", ["10.1.0.0/24", "fd00:1::/64"]);
  records.setSubnets("net-b", ["10.2.0.0/24"]);
  records.add(
    ep("e1", "net-a", C_A, "web", { aliases: ["www", "Api.V1"], ipv4: "10.1.0.10", ipv6: "fd00:1::10" }),
  );
  records.add(ep("e2", "net-b", C_B, "db", { ipv4: "10.2.0.10" }));
  records.add(ep("e3", "net-a", C_AB, "both", { ipv4: "10.1.0.20" }));
  records.add(ep("e4", "net-b", C_AB, "both", { ipv4: "10.2.0.20" }));
  return resolverOver(records);
}

function query(name: string, type: dns.RecordType = "A", extra: Partial<dns.Packet> = {}): Buffer {
  return dns.encode({
    id: 4242,
    type: "query",
    flags: dns.RECURSION_DESIRED,
    questions: [{ name, type }],
    ...extra,
  });
}

function ask(resolver: Resolver, asker: string, msg: Buffer, transport: "udp" | "tcp" = "udp") {
  const out = resolver.answer(asker, msg, transport);
  if (out instanceof Promise) throw new Error("local answers must be synchronous");
  return out && dns.decode(out);
}

/** dns-packet decodes the rcode as text; its typings leave the field out. */
const rc = (p: dns.DecodedPacket | undefined) => (p as { rcode?: string } | undefined)?.rcode;

const datas = (p: dns.DecodedPacket | undefined) =>
  (p?.answers ?? []).map((a) => (a as { data: unknown }).data);

test("names and aliases: A and AAAA, any case, trailing dot, search domain; owner name as asked", (t) => {
  const { resolver } = setup();
  t.deepEqual(datas(ask(resolver, C_A, query("web"))), ["10.1.0.10"]);
  t.deepEqual(datas(ask(resolver, C_A, query("WWW.", "AAAA"))), ["fd00:1::10"]);
  t.deepEqual(datas(ask(resolver, C_A, query("api.v1"))), ["10.1.0.10"]);
  t.deepEqual(datas(ask(resolver, C_A, query("Web.Corp.Test."))), ["10.1.0.10"]);
  const r = ask(resolver, C_A, query("wEb"));
  t.is(r?.answers?.[0]?.name, "wEb");
  t.is(r?.id, 4242);
  t.true(r?.flag_aa && r.flag_ra && r.flag_rd);
  t.is(rc(r), "NOERROR");
  const mx = ask(resolver, C_A, query("web", "MX"));
  t.deepEqual([rc(mx), mx?.answers?.length], ["NOERROR", 0], "NODATA for other types");
});

test("scope is the asker's networks: no names of other networks, both sets on two networks", (t) => {
  const { resolver, forwarded } = setup();
  t.is(rc(ask(resolver, C_A, query("db"))), "NXDOMAIN");
  t.is(rc(ask(resolver, C_B, query("web"))), "NXDOMAIN");
  t.deepEqual(datas(ask(resolver, C_AB, query("both"))).sort(), ["10.1.0.20", "10.2.0.20"]);
  t.deepEqual(datas(ask(resolver, C_A, query("both"))), ["10.1.0.20"]);
  t.deepEqual(datas(ask(resolver, C_AB, query("db"))), ["10.2.0.10"]);
  t.is(rc(ask(resolver, "stranger", query("web"))), "NXDOMAIN", "unknown askers see nothing");
  // A dotted trellis name of another network is forwarded exactly like a name that does not exist.
  ask(resolver, C_B, query("api.v1"));
  ask(resolver, C_B, query("nothere.v1"));
  t.deepEqual(
    forwarded.map((q) => q.lname),
    ["api.v1", "nothere.v1"],
  );
});

test("PTR for v4 and v6 on the asker's networks; NXDOMAIN inside its subnets; others forwarded", (t) => {
  const { resolver, forwarded } = setup();
  t.deepEqual(datas(ask(resolver, C_A, query("10.0.1.10.in-addr.arpa", "PTR"))), ["web"]);
  const v6 = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa";
  t.deepEqual(datas(ask(resolver, C_A, query(v6, "PTR"))), ["web"]);
  t.is(rc(ask(resolver, C_A, query("99.0.1.10.in-addr.arpa", "PTR"))), "NXDOMAIN");
  t.is(forwarded.length, 0);
  ask(resolver, C_A, query("10.0.2.10.in-addr.arpa", "PTR")); // db's, on a network C_A is not on
  ask(resolver, C_A, query("1.0.0.127.in-addr.arpa", "PTR"));
  t.is(forwarded.length, 2);
});

test("single-label unknown names are NXDOMAIN here; dotted unknown names are forwarded", (t) => {
  const { resolver, forwarded } = setup();
  t.is(rc(ask(resolver, C_A, query("nosuch"))), "NXDOMAIN");
  t.is(rc(ask(resolver, C_A, query("nosuch.corp.test"))), "NOERROR", "forwarded (fake upstream)");
  t.is(ask(resolver, C_A, query("example.org"))?.flag_aa, false);
  t.deepEqual(
    forwarded.map((q) => [q.lname, q.transport]),
    [
      ["nosuch.corp.test", "udp"],
      ["example.org", "udp"],
    ],
  );
});

test("answers change with the records: memoised replies are dropped on every change", (t) => {
  const { resolver, records } = setup();
  t.deepEqual(datas(ask(resolver, C_AB, query("web"))), ["10.1.0.10"]);
  t.deepEqual(datas(ask(resolver, C_AB, query("web"))), ["10.1.0.10"], "memo hit");
  records.remove("e1");
  t.is(rc(ask(resolver, C_AB, query("web"))), "NXDOMAIN");
  t.deepEqual(records.scopeOf(C_A), [], "a container without endpoints has no scope");
  records.add(ep("e9", "net-a", "container-new", "web", { ipv4: "10.1.0.99" }));
  t.deepEqual(datas(ask(resolver, C_AB, query("web"))), ["10.1.0.99"]);
  const other = query("web");
  other.writeUInt16BE(7, 0);
  t.is(ask(resolver, C_AB, other)?.id, 7, "a memoised reply carries the new query's id");
});

test("malformed input: runts and responses dropped, garbage FORMERR, other opcodes NOTIMP, 2 questions FORMERR", (t) => {
  const { resolver } = setup();
  t.is(resolver.answer(C_A, Buffer.alloc(5), "udp"), undefined);
  const response = query("web");
  response[2]! |= 0x80;
  t.is(resolver.answer(C_A, response, "udp"), undefined);
  const garbage = Buffer.concat([query("web").subarray(0, 12), Buffer.from([0x3f, 1, 2])]);
  const fe = ask(resolver, C_A, garbage);
  t.deepEqual([rc(fe), fe?.id], ["FORMERR", 4242]);
  const notify = query("web");
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  t.is(rc(ask(resolver, C_A, notify)), "NOTIMP");
  const two = dns.encode({
    type: "query",
    questions: [
      { name: "web", type: "A" },
      { name: "www", type: "A" },
    ],
  });
  t.is(rc(ask(resolver, C_A, two)), "FORMERR");
});

test("property: random bytes never throw and any reply decodes", (t) => {
  const { resolver } = setup();
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 700 }),
      fc.constantFrom("udp" as const, "tcp" as const),
      (bytes, tr) => {
        const out = resolver.answer(C_AB, Buffer.from(bytes), tr);
        if (out instanceof Promise) return true;
        if (out) dns.decode(out);
        return true;
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

test("property: mutated valid queries never throw", (t) => {
  const { resolver } = setup();
  const base = query("web.corp.test", "AAAA");
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      (edits) => {
        const b = Buffer.from(base);
        for (const [i, v] of edits) b[i] = v;
        const out = resolver.answer(C_A, b, "udp");
        if (out instanceof Promise) return true;
        if (out) dns.decode(out);
        return true;
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

test("property: a local answer round-trips through dns-packet: same id, question, and the records we built", (t) => {
  const { resolver } = setup();
  const names = fc.constantFrom("web", "WWW", "api.v1.", "both", "web.corp.test", "db", "nosuch");
  fc.assert(
    fc.property(
      names,
      fc.constantFrom<dns.RecordType>("A", "AAAA", "MX"),
      fc.integer({ min: 0, max: 0xffff }),
      (name, type, id) => {
        const msg = query(name, type, { id });
        const reply = ask(resolver, C_AB, msg);
        if (!reply) return false;
        const again = dns.decode(dns.encode(reply));
        return (
          reply.id === id &&
          reply.questions?.[0]?.name === name.replace(/\.$/, "") &&
          again.answers?.length === reply.answers?.length &&
          (reply.answers ?? []).every((a) => a.type === type && a.name === name.replace(/\.$/, ""))
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
