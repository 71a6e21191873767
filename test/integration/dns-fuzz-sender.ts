/**
 * Sends COUNT random and mutated DNS packets over UDP to HOST:PORT from inside a lab container
 * (`node dns-fuzz-sender.js HOST PORT COUNT SEED MAX_MS`), bounded in count and time, reading and
 * discarding replies. Prints "sent N replies M" at the end. Deterministic for a seed.
 */
import { createSocket } from "node:dgram";
import * as dns from "dns-packet";

const [host = "127.0.0.11", portText = "53", countText = "100000", seedText = "1", maxMsText = "60000"] =
  process.argv.slice(2);
const count = Number(countText);
const maxMs = Number(maxMsText);
let seed = Number(seedText) >>> 0 || 1;

/** xorshift32: reproducible without a dependency */
function rand(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

const opt: dns.OptAnswer = {
  type: "OPT",
  name: ".",
  udpPayloadSize: 4096,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
};
const seeds: Buffer[] = [
  dns.encode({ id: 1, type: "query", flags: dns.RECURSION_DESIRED, questions: [{ type: "A", name: "web" }] }),
  dns.encode({ type: "query", questions: [{ type: "AAAA", name: "web.corp.test" }], additionals: [opt] }),
  dns.encode({ type: "query", questions: [{ type: "PTR", name: "10.0.48.10.in-addr.arpa" }] }),
  dns.encode({ type: "query", questions: [{ type: "A", name: "fuzz.example.test" }], additionals: [opt] }),
  dns.encode({
    type: "query",
    questions: [
      { type: "TXT", name: "a.b.c.d.e.f" },
      { type: "A", name: "x" },
    ],
  }),
];

function packet(): Buffer {
  const kind = rand(4);
  if (kind === 0) {
    const b = Buffer.alloc(rand(600));
    for (let i = 0; i < b.length; i++) b[i] = rand(256);
    return b;
  }
  const b = Buffer.from(seeds[rand(seeds.length)]!);
  if (kind === 1) {
    for (let i = 1 + rand(4); i > 0; i--) b[rand(b.length)] = rand(256);
    b[2]! &= 0x7f; // keep QR clear so the parser, not the runt filter, sees it
    return b;
  }
  if (kind === 2) return b.subarray(0, rand(b.length + 1));
  const tail = Buffer.alloc(rand(64));
  for (let i = 0; i < tail.length; i++) tail[i] = rand(256);
  b.writeUInt16BE(rand(0x10000), 4 + 2 * rand(4)); // a random section count
  return Buffer.concat([b, tail]);
}

const sock = createSocket("udp4");
let replies = 0;
sock.on("message", () => replies++);
sock.on("error", () => {});
const deadline = Date.now() + maxMs;
let sent = 0;

function batch(): void {
  for (let i = 0; i < 200 && sent < count; i++, sent++) sock.send(packet(), Number(portText), host);
  if (sent < count && Date.now() < deadline) setImmediate(batch);
  else
    setTimeout(() => {
      process.stdout.write(`sent ${sent} replies ${replies}\n`);
      sock.close();
    }, 500);
}
sock.bind(0, batch);
