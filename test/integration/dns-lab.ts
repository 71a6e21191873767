/**
 * Shared set-up for the DNS integration tests: a lab host with trellisd whose --dns-upstream is a
 * fake resolver in another lab namespace (never an outside address), and clients run inside the
 * containers (dig, busybox nslookup) against 127.0.0.11.
 */

import { fileURLToPath } from "node:url";
import type { ExecutionContext } from "ava";
import { Lab, type LabDaemon, type LabHost, waitFor } from "../helpers/lab.js";

export const FAKE_UPSTREAM = fileURLToPath(new URL("./dns-fake-upstream.js", import.meta.url));

export interface DnsLab {
  lab: Lab;
  host: LabHost;
  d: LabDaemon;
  /** the fake upstream's namespace and address (10.99.0.2:53) */
  upstream: LabHost;
  /** the fake upstream's query log so far ("udp NAME TYPE" lines) */
  upstreamLog(): string;
}

export interface DnsLabOptions {
  /** --dns-upstream value; default the fake upstream */
  upstreams?: (upstream: LabHost) => string;
  /** start the fake upstream (default true) */
  fake?: boolean;
  daemonArgs?: string[];
}

export async function dnsLab(t: ExecutionContext, opts: DnsLabOptions = {}): Promise<DnsLab> {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const upstream = await lab.addHost("up");
  let log = () => "";
  if (opts.fake !== false) {
    const child = lab.spawnIn(upstream.ns, [process.execPath, FAKE_UPSTREAM, "53"]);
    await waitFor(() => lab.output(child).includes("ready"), {
      timeoutMs: 10_000,
      what: "fake upstream ready",
    });
    log = () => lab.output(child);
  }
  const upstreams = opts.upstreams?.(upstream) ?? `${upstream.underlayIp}:53`;
  const d = await lab.startDaemon(host, {
    args: ["--dns-upstream", upstreams, "--dns-search", "corp.test", ...(opts.daemonArgs ?? [])],
  });
  return { lab, host, d, upstream, upstreamLog: log };
}

/** `dig @127.0.0.11 +short ARGS` inside ns: the answer lines. */
export async function digShort(lab: Lab, ns: string, args: string[]): Promise<string[]> {
  const r = await lab.exec(ns, ["dig", "@127.0.0.11", "+short", "+tries=1", "+time=3", ...args], {
    timeoutMs: 15_000,
  });
  return r.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith(";"));
}

export interface DigResult {
  status: string;
  flags: string[];
  answers: string[];
  /** the "Query time: N msec" figure */
  ms: number;
  raw: string;
}

/** Full `dig` output parsed: status, header flags, answer records ("name ttl IN type data"). */
export async function dig(lab: Lab, ns: string, args: string[]): Promise<DigResult> {
  const r = await lab.exec(ns, ["dig", "@127.0.0.11", "+tries=1", "+time=5", ...args], {
    timeoutMs: 20_000,
    allowFail: true,
  });
  const raw = r.stdout;
  const status = /status: ([A-Z]+)/.exec(raw)?.[1] ?? "NONE";
  const flags = (/;; flags: ([a-z ]+);/.exec(raw)?.[1] ?? "").split(" ").filter(Boolean);
  const section = raw.split(";; ANSWER SECTION:\n")[1]?.split("\n\n")[0] ?? "";
  const answers = section
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.split(/\s+/).join(" "));
  const ms = Number(/Query time: (\d+) msec/.exec(raw)?.[1] ?? Number.NaN);
  return { status, flags, answers, ms, raw };
}

/** busybox nslookup NAME 127.0.0.11: the addresses it printed after "Name:" (v4 and v6). */
export async function nslookup(
  lab: Lab,
  ns: string,
  name: string,
): Promise<{ code: number; addresses: string[]; raw: string }> {
  const r = await lab.exec(ns, ["busybox", "nslookup", name, "127.0.0.11"], {
    allowFail: true,
    timeoutMs: 15_000,
  });
  const afterServer = r.stdout
    .split(/\n\s*\n/)
    .slice(1)
    .join("\n");
  const addresses = [...afterServer.matchAll(/Address(?: \d+)?:\s+([0-9a-f.:]+)/g)].map((m) => m[1]!);
  return { code: r.code, addresses, raw: r.stdout + r.stderr };
}
