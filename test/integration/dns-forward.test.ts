/**
 * Forwarding from 127.0.0.11 to the upstream resolvers, all inside the lab: a fake upstream in a lab
 * namespace (never an outside address). Cached answers, TC then TCP retry, TCP clients forwarded over
 * TCP, NXDOMAIN passed through, SERVFAIL quickly when upstreams are dead.
 */
import test from "ava";
import { createNetwork } from "../helpers/net.js";
import { dig, digShort, dnsLab } from "./dns-lab.js";

const linesFor = (log: string, name: string) =>
  log.split("\n").filter((l) => l.toLowerCase().includes(` ${name.toLowerCase()} `));

async function attached(t: Parameters<typeof dnsLab>[0], opts: Parameters<typeof dnsLab>[1] = {}) {
  const env = await dnsLab(t, opts);
  await createNetwork(env.d, "net1", ["--subnet", "10.44.0.0/24"]);
  const c1 = await env.lab.addContainer("c1");
  await env.d.cli(["network", "connect", "--name", "c1", "net1", c1]);
  return { ...env, c1 };
}

test("other names go to the upstream once, then come from the cache with aged TTLs", async (t) => {
  const { lab, c1, upstreamLog } = await attached(t);
  const first = await dig(lab, c1, ["Host1.example.test", "A"]);
  t.is(first.status, "NOERROR", first.raw);
  t.regex(first.answers[0] ?? "", /^Host1\.example\.test\. 300 IN A 192\.0\.2\.1$/);
  t.false(first.flags.includes("aa"), "a forwarded answer is not authoritative");
  const again = await dig(lab, c1, ["host1.example.test", "A"]);
  t.is(again.answers.length, 1);
  t.is(linesFor(upstreamLog(), "host1.example.test").length, 1, upstreamLog());
  const nx = await dig(lab, c1, ["nx1.example.test", "A"]);
  t.is(nx.status, "NXDOMAIN");
  await dig(lab, c1, ["nx1.example.test", "A"]);
  t.is(linesFor(upstreamLog(), "nx1.example.test").length, 1, "NXDOMAIN is cached by its SOA");
  t.deepEqual(await digShort(lab, c1, ["short.example.test"]), ["192.0.2.2"]);
  await new Promise((r) => setTimeout(r, 1500));
  t.deepEqual(await digShort(lab, c1, ["short.example.test"]), ["192.0.2.2"]);
  t.is(linesFor(upstreamLog(), "short.example.test").length, 2, "a 1 s TTL expired: asked again");
});

test("a large answer: upstream truncates over UDP, trellis retries over TCP; the client gets TC then all over TCP", async (t) => {
  const { lab, c1, upstreamLog } = await attached(t);
  const udpOnly = await dig(lab, c1, ["+ignore", "+bufsize=1232", "big.example.test", "A"]);
  t.true(udpOnly.flags.includes("tc"), udpOnly.raw);
  t.true(udpOnly.answers.length < 120, "what fits in 1232 bytes");
  const log = linesFor(upstreamLog(), "big.example.test");
  t.deepEqual(log.slice(0, 2), ["udp big.example.test A", "tcp big.example.test A"], upstreamLog());
  const classic = await dig(lab, c1, ["+ignore", "+noedns", "big.example.test", "A"]);
  t.true(classic.flags.includes("tc"));
  t.true(classic.answers.length <= 30, "512 bytes without EDNS0");
  const full = await dig(lab, c1, ["big.example.test", "A"]);
  t.is(full.answers.length, 120, "dig retried over TCP on TC");
  t.false(full.flags.includes("tc"));
  const viaTcp = await dig(lab, c1, ["+tcp", "tcp-only.example.test", "A"]);
  t.is(viaTcp.status, "NOERROR");
  t.deepEqual(
    linesFor(upstreamLog(), "tcp-only.example.test"),
    ["tcp tcp-only.example.test A"],
    "TCP in, TCP out",
  );
});

test("SERVFAIL quickly when the upstreams are dead: at most ~1 s per upstream", async (t) => {
  // 10.99.0.250 is on the lab underlay but nobody holds it (no ARP reply): queries vanish.
  // 10.99.0.2:5353 is the 'up' lab host with nothing listening: ICMP port unreachable at once.
  const { lab, c1 } = await attached(t, {
    fake: false,
    upstreams: (up) => `10.99.0.250:53,${up.underlayIp}:5353`,
  });
  const started = Date.now();
  const r = await dig(lab, c1, ["dead.example.test", "A"]);
  const ms = Date.now() - started;
  t.is(r.status, "SERVFAIL", r.raw);
  t.true(r.ms < 2 * 2000, `query time ${r.ms} ms for 2 upstreams`);
  t.true(ms < 4000, `dig took ${ms} ms`);
  t.true(r.ms >= 900, "the silent upstream was given its second");
  const local = await dig(lab, c1, ["c1", "A"]);
  t.is(local.status, "NOERROR", "local names do not depend on the upstreams");
});

test("an unreachable (refusing) upstream fails over to the next at once", async (t) => {
  const { lab, c1 } = await attached(t, { upstreams: (up) => `${up.underlayIp}:5353,${up.underlayIp}:53` });
  const r = await dig(lab, c1, ["failover.example.test", "A"]);
  t.is(r.status, "NOERROR", r.raw);
  t.true(r.ms < 500, `query time ${r.ms} ms`);
});
