/**
 * A tiny, dependency-free TCP/UDP server and client for tests, run inside lab namespaces with
 * `ip netns exec NS node nettool.js ...`. The server answers every connection or datagram with
 * "<marker> <client address>" so tests also see which source address reached the backend.
 *
 *   node nettool.js serve tcp|udp PORT MARKER      prints "ready" once listening
 *   node nettool.js get tcp|udp HOST PORT [MS]     prints the answer; exit 1 on failure or timeout
 */
import { createSocket } from "node:dgram";
import { createConnection, createServer } from "node:net";

const [mode, proto, a, b, c] = process.argv.slice(2);

function serve(port: number, marker: string) {
  if (proto === "udp") {
    const sock = createSocket({ type: "udp6", ipv6Only: false });
    sock.on("message", (_msg, rinfo) => sock.send(`${marker} ${rinfo.address}\n`, rinfo.port, rinfo.address));
    sock.bind(port, "::", () => console.log("ready"));
    return;
  }
  const server = createServer((s) => {
    s.end(`${marker} ${s.remoteAddress}\n`);
    s.on("error", () => {});
  });
  server.listen({ port, host: "::", ipv6Only: false }, () => console.log("ready"));
}

function get(host: string, port: number, timeoutMs: number) {
  const timer = setTimeout(() => process.exit(1), timeoutMs);
  if (proto === "udp") {
    const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
    sock.on("message", (msg) => {
      process.stdout.write(msg);
      clearTimeout(timer);
      process.exit(0);
    });
    sock.send("ping", port, host);
    return;
  }
  let data = "";
  const s = createConnection({ host, port });
  s.on("data", (d) => {
    data += d.toString();
  });
  s.on("end", () => {
    process.stdout.write(data);
    clearTimeout(timer);
    process.exit(data ? 0 : 1);
  });
  s.on("error", () => process.exit(1));
}

if (mode === "serve") serve(Number(a), b ?? "ok");
else if (mode === "get") get(a ?? "", Number(b), Number(c ?? 2000));
else {
  console.error("usage: nettool serve tcp|udp PORT MARKER | get tcp|udp HOST PORT [MS]");
  process.exit(2);
}
