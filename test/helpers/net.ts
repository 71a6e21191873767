/**
 * Assertions on real traffic and real kernel state inside lab namespaces: ping, TCP through busybox,
 * `ip -j` and `nft -j` snapshots. Everything runs with `ip netns exec`, never in the root namespace.
 */
import { fileURLToPath } from "node:url";
import type { Lab, LabDaemon } from "./lab.js";

export interface IpLink {
  ifname: string;
  ifalias?: string;
  master?: string;
  mtu: number;
  operstate: string;
  address?: string;
  flags: string[];
  linkinfo?: { info_kind?: string };
}

export interface IpAddr {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

export async function ping(lab: Lab, ns: string, ip: string, count = 1): Promise<boolean> {
  const argv = ip.includes(":")
    ? ["ping", "-6", "-n", "-c", String(count), "-W", "1", ip]
    : ["ping", "-n", "-c", String(count), "-W", "1", ip];
  const r = await lab.exec(ns, argv, { allowFail: true, timeoutMs: 5000 + count * 1000 });
  return r.code === 0;
}

export async function links(lab: Lab, ns: string): Promise<IpLink[]> {
  const r = await lab.exec(ns, ["ip", "-d", "-j", "link", "show"]);
  return JSON.parse(r.stdout) as IpLink[];
}

export async function addrs(lab: Lab, ns: string): Promise<IpAddr[]> {
  const r = await lab.exec(ns, ["ip", "-j", "addr", "show"]);
  return JSON.parse(r.stdout) as IpAddr[];
}

export async function routes(
  lab: Lab,
  ns: string,
  family: 4 | 6 = 4,
): Promise<Array<{ dst: string; gateway?: string; dev?: string }>> {
  const r = await lab.exec(ns, ["ip", `-${family}`, "-j", "route", "show"]);
  return JSON.parse(r.stdout);
}

export interface NftObject {
  name?: string;
  elem?: unknown[];
  [key: string]: unknown;
}

/** The trellis table as `nft -j` sees it, or undefined when it does not exist. */
export async function nftTable(lab: Lab, ns: string): Promise<Array<Record<string, NftObject>> | undefined> {
  const r = await lab.exec(ns, ["nft", "-j", "list", "table", "inet", "trellis"], { allowFail: true });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as { nftables: Array<Record<string, NftObject>> }).nftables;
}

/** Elements of one of trellis's published-port maps, as strings, e.g. "8080 -> 10.20.0.3 . 80". */
export async function mapElements(lab: Lab, ns: string, map: string): Promise<unknown[]> {
  const table = await nftTable(lab, ns);
  const m = table?.find((o) => o["map"]?.name === map)?.["map"];
  return m?.elem ?? [];
}

const NETTOOL = fileURLToPath(new URL("./nettool.js", import.meta.url));

/** Starts a TCP (or UDP) server on PORT inside ns answering "<marker> <client address>". */
export async function startServer(
  lab: Lab,
  ns: string,
  port: number,
  marker: string,
  proto: "tcp" | "udp" = "tcp",
) {
  const child = lab.spawnIn(ns, [process.execPath, NETTOOL, "serve", proto, String(port), marker]);
  for (let i = 0; i < 200; i++) {
    if (lab.output(child).includes("ready")) return;
    if (child.exitCode !== null) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`server in ${ns} on ${port}/${proto} never got ready: ${lab.output(child)}`);
}

export interface Answer {
  marker: string;
  /** the client address the server saw */
  client: string;
}

/** Asks ip:port from inside ns; undefined when nothing answers. */
export async function request(
  lab: Lab,
  ns: string,
  ip: string,
  port: number,
  proto: "tcp" | "udp" = "tcp",
): Promise<Answer | undefined> {
  const r = await lab.exec(ns, [process.execPath, NETTOOL, "get", proto, ip, String(port), "2000"], {
    allowFail: true,
    timeoutMs: 6000,
  });
  if (r.code !== 0) return undefined;
  const [marker = "", client = ""] = r.stdout.trim().split(" ");
  return { marker, client: client.replace(/^::ffff:/, "") };
}

/** The marker of whoever answers on ip:port, or undefined. */
export async function fetchMarker(
  lab: Lab,
  ns: string,
  ip: string,
  port: number,
  proto: "tcp" | "udp" = "tcp",
) {
  return (await request(lab, ns, ip, port, proto))?.marker;
}

export async function createNetwork(d: LabDaemon, name: string, args: string[] = []): Promise<string> {
  const r = await d.cli(["network", "create", ...args, name]);
  return r.stdout.trim();
}

export interface EndpointJson {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
  Aliases: string[];
  Ports: string[];
}

export interface NetworkJson {
  Name: string;
  Id: string;
  Internal: boolean;
  Containers: Record<string, EndpointJson>;
  [key: string]: unknown;
}

export async function inspect(d: LabDaemon, name: string): Promise<NetworkJson> {
  const r = await d.api("GET", `/networks/${name}`);
  if (r.status !== 200) throw new Error(`inspect ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The IPv4 address (without prefix) of the endpoint named `endpoint` on network `net`. */
export async function ipOf(d: LabDaemon, net: string, endpoint: string, family: 4 | 6 = 4): Promise<string> {
  const body = await inspect(d, net);
  for (const c of Object.values(body.Containers)) {
    if (c.Name === endpoint) {
      const cidr: string = family === 4 ? c.IPv4Address : c.IPv6Address;
      return cidr.split("/")[0]!;
    }
  }
  throw new Error(`no endpoint ${endpoint} on ${net}`);
}
