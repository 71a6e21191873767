/**
 * Traffic tools for service tests, run inside lab namespaces as inline ES modules:
 * a backend server that tells who it is and whom it sees, a client that opens many connections and
 * counts who answered, a long-lived connection, and the χ² of a spread.
 */
import type { ChildProcess } from "node:child_process";
import type { Lab } from "./lab.js";
import { waitFor } from "./lab.js";

/** Backend: TCP greets with "<marker> <client address>\n" and answers each line with
 * "<marker> <client address> <line>"; UDP answers "<marker> <client address>\n". */
export const SERVER = `
import net from "node:net"; import dgram from "node:dgram";
const [marker, port] = process.argv.slice(1);
let up = 0; const ready = () => { if (++up === 2) console.log("ready"); };
net.createServer((s) => { s.on("error", () => {}); s.write(marker + " " + s.remoteAddress + "\\n");
  s.on("data", (d) => s.write(marker + " " + s.remoteAddress + " " + d)); }).listen(+port, "0.0.0.0", ready);
const u = dgram.createSocket("udp4"); u.on("message", (m, r) => u.send(marker + " " + r.address + "\\n", r.port, r.address));
u.bind(+port, "0.0.0.0", ready);`;

/** Client: COUNT new connections (CONC at a time) to IP:PORT; prints
 * {"markers":{},"clients":{},"errors":{},"ms":N}: who answered, which client address they saw. */
export const COUNTER = `
import net from "node:net"; import dgram from "node:dgram";
const [proto, ip, port, count, conc, timeout] = process.argv.slice(1);
const markers = {}, clients = {}, errors = {}; let started = 0; const t0 = Date.now();
const tally = (o, k) => { o[k] = (o[k] ?? 0) + 1; };
const one = () => new Promise((done) => {
  let settled = false; let sock;
  const end = (kind, line) => { if (settled) return; settled = true; clearTimeout(timer);
    if (kind === "ok") { const [m, c] = line.split(" "); tally(markers, m); tally(clients, c); } else tally(errors, line);
    if (proto === "tcp") sock.destroy(); else sock.close(); done(); };
  const timer = setTimeout(() => end("err", "timeout"), +timeout);
  if (proto === "tcp") {
    sock = net.connect(+port, ip); let buf = "";
    sock.on("data", (d) => { buf += d; if (buf.includes("\\n")) end("ok", buf.split("\\n")[0]); });
    sock.on("error", (e) => end("err", e.code ?? e.message));
  } else {
    sock = dgram.createSocket("udp4");
    sock.on("message", (m) => end("ok", String(m).trim()));
    sock.on("error", (e) => end("err", e.code ?? e.message));
    sock.connect(+port, ip, () => sock.send("q"));
  }
});
const worker = async () => { while (started < +count) { started++; await one(); } };
await Promise.all(Array.from({ length: +conc }, worker));
console.log(JSON.stringify({ markers, clients, errors, ms: Date.now() - t0 }));`;

/** Client: one long-lived TCP connection, a line every 100 ms; prints "<ms> <reply>" per reply. */
export const HOLDER = `
import net from "node:net";
const [ip, port] = process.argv.slice(1);
const s = net.connect(+port, ip); let n = 0;
s.on("data", (d) => { for (const l of String(d).split("\\n").filter(Boolean)) console.log(Date.now() + " " + l); });
s.on("close", () => { console.log("closed"); process.exit(0); });
s.on("error", (e) => console.log("error " + e.code));
setInterval(() => s.write("ping" + n++ + "\\n"), 100);`;

export interface Counts {
  markers: Record<string, number>;
  clients: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
}

export function spawnScript(lab: Lab, ns: string, script: string, args: string[]): ChildProcess {
  return lab.spawnIn(ns, [process.execPath, "--input-type=module", "-e", script, ...args]);
}

export async function runScript(lab: Lab, ns: string, script: string, args: string[]): Promise<string> {
  const r = await lab.exec(ns, [process.execPath, "--input-type=module", "-e", script, ...args], {
    timeoutMs: 120_000,
  });
  return r.stdout;
}

/** Starts a SERVER in ns on port, answering with marker; resolves when it listens. */
export async function startBackend(
  lab: Lab,
  ns: string,
  marker: string,
  port: number,
): Promise<ChildProcess> {
  const child = spawnScript(lab, ns, SERVER, [marker, String(port)]);
  await waitFor(() => lab.output(child).includes("ready"), { timeoutMs: 10_000, what: `server ${marker}` });
  return child;
}

export async function connections(
  lab: Lab,
  client: string,
  opts: { proto?: "tcp" | "udp"; ip: string; port: number; count: number; conc?: number; timeoutMs?: number },
): Promise<Counts> {
  const args = [
    opts.proto ?? "tcp",
    opts.ip,
    String(opts.port),
    String(opts.count),
    String(opts.conc ?? 16),
    String(opts.timeoutMs ?? 3000),
  ];
  return JSON.parse(await runScript(lab, client, COUNTER, args)) as Counts;
}

/** χ² of observed counts against an even spread over `k` categories. */
export function chiSquare(counts: number[], k: number): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / k;
  const padded = [...counts, ...Array(k - counts.length).fill(0)];
  return padded.reduce((acc, o) => acc + (o - expected) ** 2 / expected, 0);
}
