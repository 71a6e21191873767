/**
 * Where forwarded queries go: `--dns-upstream IP[:PORT],...` or, by default, the nameservers of
 * the daemon's own /etc/resolv.conf (under `ip netns exec NAME` that is /etc/netns/NAME/resolv.conf
 * when it exists, which ip bind-mounts over /etc/resolv.conf). Parsing is pure; reading is one call.
 */
import { readFileSync } from "node:fs";
import { invalid } from "../common/errors.js";
import { formatIp, tryParseAddress } from "../ipam/cidr.js";
import { normalizeName } from "./names.js";

export interface Upstream {
  /** canonical bare IP */
  address: string;
  port: number;
  family: 4 | 6;
}

export const DNS_PORT = 53;

/** "[fd00::1]:5353" / "10.0.0.1:53" / "10.0.0.1" / "fd00::1" (bare IPv6: no port). */
export function parseUpstream(text: string): Upstream {
  const fail = (why: string) => invalid(`invalid DNS upstream "${text}": ${why}`);
  let host = text.trim();
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(host);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if (host.split(":").length === 2) {
    [host, portText] = host.split(":") as [string, string];
  }
  const ip = tryParseAddress(host);
  if (!ip) throw fail("not an IP address (use IP, IP:PORT or [IPv6]:PORT)");
  let port = DNS_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw fail("port must be 1-65535");
    }
    port = Number(portText);
  }
  return { address: formatIp(ip), port, family: ip.family };
}

/** The flag's comma-separated list; empty entries are an error, an empty list is not allowed. */
export function parseUpstreamList(text: string): Upstream[] {
  const parts = text.split(",");
  if (parts.some((p) => p.trim() === "")) throw invalid(`invalid --dns-upstream "${text}": empty entry`);
  return parts.map(parseUpstream);
}

export interface ResolvConf {
  upstreams: Upstream[];
  /** search domains (and `domain`), normalised */
  search: string[];
}

/** resolv.conf(5): `nameserver IP` lines (unparsable ones skipped) and the last search/domain line. */
export function parseResolvConf(text: string): ResolvConf {
  const upstreams: Upstream[] = [];
  let search: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === "nameserver" && values[0]) {
      const ip = tryParseAddress(values[0].replace(/%.*$/, ""));
      if (ip) upstreams.push({ address: formatIp(ip), port: DNS_PORT, family: ip.family });
    } else if (key === "search" || key === "domain") {
      search = values.map(normalizeName).filter((d) => d !== "");
    }
  }
  return { upstreams, search };
}

/** The daemon's resolv.conf; a missing file means no upstreams (as documented in the README). */
export function readResolvConf(path = "/etc/resolv.conf"): ResolvConf {
  try {
    return parseResolvConf(readFileSync(path, "utf8"));
  } catch {
    return { upstreams: [], search: [] };
  }
}

export const formatUpstream = (u: Upstream): string =>
  u.family === 6 ? `[${u.address}]:${u.port}` : `${u.address}:${u.port}`;
