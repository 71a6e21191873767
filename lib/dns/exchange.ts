/**
 * One query to one upstream and its reply, over UDP or TCP, within a time limit. The sockets live
 * in the daemon's own namespace. Each UDP exchange uses a fresh connected socket: a random source
 * port per query (spoofing resistance) and ICMP port-unreachable reported at once as an error, so a
 * dead upstream costs a round trip, not the whole timeout.
 */
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { FrameReader, frame } from "./frames.js";
import type { Upstream } from "./upstreams.js";

/** Decides whether a datagram is the reply we wait for (id and question match). */
export type Accept = (reply: Buffer) => boolean;

export type Exchange = (
  up: Upstream,
  query: Buffer,
  transport: "udp" | "tcp",
  timeoutMs: number,
  accept: Accept,
) => Promise<Buffer>;

class ExchangeTimeout extends Error {
  constructor(up: Upstream, ms: number) {
    super(`no reply from ${up.address}:${up.port} within ${ms} ms`);
  }
}

function udpExchange(up: Upstream, query: Buffer, timeoutMs: number, accept: Accept): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(up.family === 6 ? "udp6" : "udp4");
    let done = false;
    const finish = (err: Error | undefined, reply?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new ExchangeTimeout(up, timeoutMs)), timeoutMs);
    sock.on("error", (err) => finish(err));
    sock.on("message", (msg) => {
      if (accept(msg)) finish(undefined, msg);
    });
    sock.connect(up.port, up.address, () => {
      sock.send(query, (err) => {
        if (err) finish(err);
      });
    });
  });
}

function tcpExchange(up: Upstream, query: Buffer, timeoutMs: number, accept: Accept): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: up.address, port: up.port });
    const reader = new FrameReader();
    let done = false;
    const finish = (err: Error | undefined, reply?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new ExchangeTimeout(up, timeoutMs)), timeoutMs);
    sock.on("error", (err) => finish(err));
    sock.on("close", () => finish(new Error(`${up.address}:${up.port} closed the connection`)));
    sock.on("connect", () => sock.write(frame(query)));
    sock.on("data", (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) if (accept(msg)) return finish(undefined, msg);
    });
  });
}

export const socketExchange: Exchange = (up, query, transport, timeoutMs, accept) =>
  transport === "udp" ? udpExchange(up, query, timeoutMs, accept) : tcpExchange(up, query, timeoutMs, accept);
