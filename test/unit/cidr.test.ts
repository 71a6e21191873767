import test from "ava";
import fc from "fast-check";
import { TrellisError } from "../../lib/common/errors.js";
import {
  addressKey,
  canonicalAddress,
  canonicalCidr,
  cidrSize,
  contains,
  containsCidr,
  formatAddress,
  formatCidr,
  lastAddress,
  nthAddress,
  overlaps,
  parseAddress,
  parseCidr,
} from "../../lib/ipam/cidr.js";

const V6_MAX = (1n << 128n) - 1n;

test("IPv4 addresses parse and format", (t) => {
  t.deepEqual(parseAddress("10.1.2.3"), { family: 4, value: 0x0a010203n });
  t.is(formatAddress(4, 0xffffffffn), "255.255.255.255");
  t.is(formatAddress(4, 0n), "0.0.0.0");
});

test("IPv4 garbage is rejected with the reason", (t) => {
  const cases: Array<[string, string]> = [
    ["10.1.0.300", 'invalid IP address "10.1.0.300": octet 300 is out of range 0-255'],
    ["10.1.0", 'invalid IP address "10.1.0": expected 4 dot-separated octets'],
    ["010.1.0.1", 'invalid IP address "010.1.0.1": octet "010" has a leading zero'],
    ["10.1.x.1", 'invalid IP address "10.1.x.1": octet "x" is not a decimal number'],
    ["10.1..1", 'invalid IP address "10.1..1": octet "" is not a decimal number'],
    ["", 'invalid IP address "": not an IPv4 or IPv6 address'],
    ["12345", 'invalid IP address "12345": not an IPv4 or IPv6 address'],
  ];
  for (const [input, message] of cases) {
    const err = t.throws(() => parseAddress(input), { instanceOf: TrellisError, message });
    t.is(err?.code, "INVALID_ARGUMENT");
  }
});

test("IPv6 formatting follows RFC 5952", (t) => {
  const cases: Array<[string, string]> = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // tie: the first run is compressed
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"], // the longest run wins
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group stays
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["FE80::ABCD", "fe80::abcd"],
    ["::ffff:1.2.3.4", "::ffff:1.2.3.4"],
    ["0:0:0:0:0:ffff:102:304", "::ffff:1.2.3.4"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
  ];
  for (const [input, expected] of cases) t.is(canonicalAddress(input), expected, input);
});

test("IPv6 garbage is rejected with the reason", (t) => {
  const cases: Array<[string, string]> = [
    ["1::2::3", 'more than one "::"'],
    [":::", "empty group (a single ':' where '::' or a group was expected)"],
    ["12345::", 'group "12345" has more than 4 hex digits'],
    ["g::", 'group "g" is not hexadecimal'],
    ["1:2:3:4:5:6:7:8:9", "expected 8 groups, found 9"],
    ["1:2:3", "expected 8 groups, found 3"],
    ["1:2:3:4:5:6:7::8", '"::" must stand for at least one zero group'],
    ["fe80::1%eth0", "zone indexes (%...) are not supported"],
    [":1::", "empty group (a single ':' where '::' or a group was expected)"],
    ["::1.2.3.256", 'embedded IPv4 "1.2.3.256": octet 256 is out of range 0-255'],
  ];
  for (const [input, reason] of cases) {
    t.throws(() => parseAddress(input), { message: `invalid IP address "${input}": ${reason}` }, input);
  }
});

test("parseCidr normalises host bits and keeps the written address", (t) => {
  const c = parseCidr("10.1.2.3/16");
  t.is(formatCidr(c), "10.1.0.0/16");
  t.is(formatAddress(4, c.address), "10.1.2.3");
  t.is(canonicalCidr("FD00:0:0:0:1::/8"), "fd00::/8");
  t.is(canonicalCidr("0.0.0.0/0"), "0.0.0.0/0");
  t.is(canonicalCidr("::1/128"), "::1/128");
});

test("parseCidr rejects garbage with one clear line", (t) => {
  const cases: Array<[string, string]> = [
    ["10.0.0.0/33", "prefix length must be 0-32"],
    ["fd00::/129", "prefix length must be 0-128"],
    ["10.0.0.0", 'missing "/prefix length"'],
    ["10.0.0.0/", 'prefix length "" is not a number'],
    ["10.0.0.0/-1", 'prefix length "-1" is not a number'],
    ["10.0.0.0/8/8", 'prefix length "8/8" is not a number'],
    ["10.0.0.256/8", "octet 256 is out of range 0-255"],
  ];
  for (const [input, reason] of cases) {
    t.throws(() => parseCidr(input), {
      code: "INVALID_ARGUMENT",
      message: `invalid CIDR "${input}": ${reason}`,
    });
  }
});

test("size, last and nth address", (t) => {
  const c = parseCidr("10.1.0.0/24");
  t.is(cidrSize(c), 256n);
  t.is(formatAddress(4, lastAddress(c)), "10.1.0.255");
  t.is(formatAddress(4, nthAddress(c, 5n)), "10.1.0.5");
  t.throws(() => nthAddress(c, 256n), { instanceOf: RangeError });
  t.is(cidrSize(parseCidr("fd00::/64")), 1n << 64n);
  t.is(formatAddress(6, lastAddress(parseCidr("fd00::/64"))), "fd00::ffff:ffff:ffff:ffff");
});

test("contains and overlaps, golden cases", (t) => {
  t.true(contains("10.1.0.0/16", "10.1.255.255"));
  t.false(contains("10.1.0.0/16", "10.2.0.0"));
  t.false(contains("0.0.0.0/0", "::1"), "families never mix");
  t.true(contains("::/0", "fd00::1"));
  t.true(containsCidr("10.0.0.0/8", "10.1.0.0/24"));
  t.false(containsCidr("10.1.0.0/24", "10.0.0.0/8"));
  t.true(overlaps("10.1.0.0/24", "10.0.0.0/8"));
  t.true(overlaps("10.1.0.0/24", "10.1.0.0/24"));
  t.false(overlaps("10.1.0.0/24", "10.1.1.0/24"));
  t.false(overlaps("0.0.0.0/0", "::/0"));
});

test("address keys sort like the addresses", (t) => {
  t.is(addressKey(parseAddress("10.0.0.1")), "0a000001");
  t.is(addressKey(parseAddress("::1")), "00000000000000000000000000000001");
});

// --- properties -----------------------------------------------------------------------------

const v4Value = fc.bigInt(0n, 0xffffffffn);
/** IPv6 values with plenty of zero groups, so compression paths are exercised. */
const v6Groups = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
  minLength: 8,
  maxLength: 8,
});
const groupsToValue = (gs: number[]) => gs.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);

test("property: IPv4 format/parse round trip", (t) => {
  fc.assert(
    fc.property(v4Value, (v) => {
      const text = formatAddress(4, v);
      return parseAddress(text).value === v && canonicalAddress(text) === text;
    }),
  );
  t.pass();
});

test("property: IPv6 format/parse round trip, and any spelling parses to the same value", (t) => {
  fc.assert(
    fc.property(v6Groups, fc.boolean(), fc.boolean(), (groups, pad, upper) => {
      const value = groupsToValue(groups);
      const text = formatAddress(6, value);
      let spelled = groups.map((g) => g.toString(16).padStart(pad ? 4 : 1, "0")).join(":");
      if (upper) spelled = spelled.toUpperCase();
      return (
        parseAddress(text).value === value &&
        parseAddress(spelled).value === value &&
        canonicalAddress(spelled) === text
      );
    }),
  );
  fc.assert(fc.property(fc.bigInt(0n, V6_MAX), (v) => parseAddress(formatAddress(6, v)).value === v));
  t.pass();
});

test("property: canonical IPv6 text is RFC 5952 shaped", (t) => {
  fc.assert(
    fc.property(v6Groups, (groups) => {
      const text = formatAddress(6, groupsToValue(groups));
      if (text.startsWith("::ffff:") && text.includes(".")) return true;
      const noUpper = text === text.toLowerCase();
      const oneCompression = text.split("::").length <= 2;
      const noLeadingZeros = text.split(/:+/).every((g) => g === "" || g === "0" || !g.startsWith("0"));
      // a lone zero group is never compressed: "::" must replace at least two groups
      const explicit = text.split(/::/).flatMap((h) => (h === "" ? [] : h.split(":"))).length;
      const compressionReplacesTwo = !text.includes("::") || explicit <= 6;
      return noUpper && oneCompression && noLeadingZeros && compressionReplacesTwo;
    }),
  );
  t.pass();
});

const v4Cidr = fc
  .tuple(v4Value, fc.integer({ min: 0, max: 32 }))
  .map(([v, len]) => `${formatAddress(4, v)}/${len}`);

test("property: overlap is symmetric and means a shared address", (t) => {
  fc.assert(
    fc.property(v4Cidr, v4Cidr, (a, b) => {
      const x = parseCidr(a);
      const y = parseCidr(b);
      const shared =
        contains(x, { family: 4, value: y.network }) || contains(y, { family: 4, value: x.network });
      return overlaps(a, b) === overlaps(b, a) && overlaps(a, b) === shared;
    }),
  );
  t.pass();
});

test("property: normalisation is idempotent and keeps the written address inside", (t) => {
  fc.assert(
    fc.property(v4Cidr, (s) => {
      const c = parseCidr(s);
      const canon = canonicalCidr(s);
      return canonicalCidr(canon) === canon && contains(c, { family: 4, value: c.address });
    }),
  );
  t.pass();
});
