/** DNS names: normalisation, search-domain stripping, reverse names (golden and properties). */
import test from "ava";
import fc from "fast-check";
import {
  addressOfReverseName,
  isReverseName,
  isSingleLabel,
  normalizeName,
  reverseNameOf,
  stripSearchDomain,
} from "../../lib/dns/names.js";
import { parseResolvConf, parseUpstream, parseUpstreamList } from "../../lib/dns/upstreams.js";
import { formatIp } from "../../lib/ipam/cidr.js";

test("normalizeName: lower case, one trailing dot removed", (t) => {
  t.is(normalizeName("WeB."), "web");
  t.is(normalizeName("web"), "web");
  t.is(normalizeName("."), "");
  t.true(isSingleLabel("web"));
  t.false(isSingleLabel("web.corp"));
  t.false(isSingleLabel(""));
});

test("stripSearchDomain removes a whole-label suffix only", (t) => {
  const search = ["corp.test", "example"];
  t.is(stripSearchDomain("web.corp.test", search), "web");
  t.is(stripSearchDomain("a.b.corp.test", search), "a.b");
  t.is(stripSearchDomain("webcorp.test", search), undefined);
  t.is(stripSearchDomain("corp.test", search), undefined);
  t.is(stripSearchDomain("web.example", search), "web");
  t.is(stripSearchDomain("web", search), undefined);
  t.is(stripSearchDomain("web.corp.test", []), undefined);
});

test("reverse names: golden IPv4 and IPv6", (t) => {
  t.is(reverseNameOf({ family: 4, value: 0x0a280a0an }), "10.10.40.10.in-addr.arpa");
  const v6 = addressOfReverseName("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa");
  t.is(v6 && formatIp(v6), "fd00:40::10");
  t.is(addressOfReverseName("10.40.10.in-addr.arpa"), undefined, "a zone, not an address");
  t.is(addressOfReverseName("010.40.10.10.in-addr.arpa"), undefined, "no leading zeros");
  t.is(addressOfReverseName("300.40.10.10.in-addr.arpa"), undefined);
  t.is(addressOfReverseName("web.example"), undefined);
  t.true(isReverseName("10.in-addr.arpa"));
  t.false(isReverseName("in-addr.arpa.example"));
});

test("property: reverseNameOf and addressOfReverseName are inverse for every address", (t) => {
  const v4 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }).map((value) => ({ family: 4 as const, value }));
  const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((value) => ({ family: 6 as const, value }));
  fc.assert(
    fc.property(fc.oneof(v4, v6), (ip) => {
      const back = addressOfReverseName(reverseNameOf(ip));
      return back?.family === ip.family && back.value === ip.value;
    }),
  );
  t.pass();
});

test("upstreams: IP, IP:PORT, [IPv6]:PORT, bare IPv6; bad entries refused", (t) => {
  t.deepEqual(parseUpstream("10.99.0.2"), { address: "10.99.0.2", port: 53, family: 4 });
  t.deepEqual(parseUpstream("10.99.0.2:5353"), { address: "10.99.0.2", port: 5353, family: 4 });
  t.deepEqual(parseUpstream("[FD00::1]:54"), { address: "fd00::1", port: 54, family: 6 });
  t.deepEqual(parseUpstream("fd00::1"), { address: "fd00::1", port: 53, family: 6 });
  t.is(parseUpstreamList("10.0.0.1,10.0.0.2:54").length, 2);
  for (const bad of ["", "example.com", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1,", "[fd00::1]:x"]) {
    t.throws(() => parseUpstreamList(bad), undefined, bad);
  }
});

test("resolv.conf: nameservers (scoped IPv6 zone dropped), last search line, comments", (t) => {
  const conf = parseResolvConf(
    "# generated\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\ndomain old.test\nsearch Corp.Test. other.test ; comment\noptions ndots:2\n",
  );
  t.deepEqual(
    conf.upstreams.map((u) => `${u.address}:${u.port}`),
    ["10.0.0.1:53", "fe80::1:53"],
  );
  t.deepEqual(conf.search, ["corp.test", "other.test"]);
  t.deepEqual(parseResolvConf(""), { upstreams: [], search: [] });
});
