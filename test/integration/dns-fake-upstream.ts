/**
 * A tiny authoritative DNS server for the DNS integration tests and the benchmark, run inside a lab
 * namespace (`node dns-fake-upstream.js [PORT]`); never reachable from outside the lab. Zone:
 *   NAME.example.test        A 192.0.2.1 (TTL 300)            any NAME
 *   big.example.test         A 198.51.100.1 .. .120 (TTL 300)  too big for 1232 bytes: TC over UDP
 *   short.example.test       A 192.0.2.2 (TTL 1)
 *   nx*.example.test         NXDOMAIN with an SOA (minimum 60)
 * It honours the client's EDNS0 size, sets TC when the answer does not fit, and prints one line per
 * query ("udp NAME TYPE" / "tcp NAME TYPE") so tests can see what reached it.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import * as dns from "dns-packet";
import { FrameReader, frame } from "../../lib/dns/frames.js";
import { encodeWithin } from "../../lib/dns/message.js";

const port = Number(process.argv[2] ?? 53);

function answersFor(
  name: string,
  type: string,
): { rcode: number; answers: dns.Answer[]; authorities: dns.Answer[] } {
  const lname = name.toLowerCase().replace(/\.$/, "");
  if (!lname.endsWith(".example.test")) return { rcode: 5, answers: [], authorities: [] };
  if (lname.startsWith("nx")) {
    const soa: dns.Answer = {
      type: "SOA",
      name: "example.test",
      ttl: 60,
      data: { mname: "ns.example.test", rname: "admin.example.test", serial: 1, minimum: 60 },
    };
    return { rcode: 3, answers: [], authorities: [soa] };
  }
  if (type !== "A") return { rcode: 0, answers: [], authorities: [] };
  if (lname === "big.example.test") {
    const answers: dns.Answer[] = [];
    for (let i = 1; i <= 120; i++) answers.push({ type: "A", name, ttl: 300, data: `198.51.100.${i}` });
    return { rcode: 0, answers, authorities: [] };
  }
  const ttl = lname === "short.example.test" ? 1 : 300;
  return {
    rcode: 0,
    answers: [{ type: "A", name, ttl, data: lname === "short.example.test" ? "192.0.2.2" : "192.0.2.1" }],
    authorities: [],
  };
}

function reply(msg: Buffer, transport: "udp" | "tcp"): Buffer | undefined {
  let q: dns.DecodedPacket;
  try {
    q = dns.decode(msg);
  } catch {
    return undefined;
  }
  const question = q.questions?.[0];
  if (!question) return undefined;
  process.stdout.write(`${transport} ${question.name} ${question.type}\n`);
  const { rcode, answers, authorities } = answersFor(question.name, question.type);
  const opt = q.additionals?.find((a) => a.type === "OPT") as dns.OptAnswer | undefined;
  const limit = transport === "tcp" ? 65535 : Math.max(512, opt?.udpPayloadSize ?? 512);
  const packet: dns.Packet = {
    id: q.id,
    type: "response",
    flags: dns.AUTHORITATIVE_ANSWER | (q.flags! & dns.RECURSION_DESIRED) | rcode,
    questions: [question],
    answers,
    authorities,
  };
  return encodeWithin(packet, limit).buf;
}

const udp = createSocket("udp4");
udp.on("message", (msg, rinfo) => {
  const out = reply(msg, "udp");
  if (out) udp.send(out, rinfo.port, rinfo.address);
});
const tcp = createServer((conn) => {
  const reader = new FrameReader();
  conn.on("error", () => {});
  conn.on("data", (chunk: Buffer) => {
    for (const msg of reader.push(chunk)) {
      const out = reply(msg, "tcp");
      if (out) conn.write(frame(out));
    }
  });
});
let ready = 0;
const up = () => {
  if (++ready === 2) process.stdout.write(`ready ${port}\n`);
};
udp.bind(port, "0.0.0.0", up);
tcp.listen(port, "0.0.0.0", up);
