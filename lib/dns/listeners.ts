/**
 * The UDP and TCP listeners at 127.0.0.11:53 inside each attached container. The kernel adapter
 * creates the sockets inside the container's namespace; Node adopts the fds, so every listener is
 * served by the daemon's one event loop. An open socket keeps its namespace alive, so listeners are
 * closed as soon as their container's last endpoint goes.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { closeSync } from "node:fs";
import { createServer, type Server, type Socket as TcpSocket } from "node:net";
import type { Logger } from "pino";
import { messageOf } from "../common/errors.js";
import type { Kernel, NetnsRef } from "../kernel/types.js";
import type { Transport } from "./chain.js";
import { FrameReader, frame } from "./frames.js";
import type { MaybeAsync } from "./resolver.js";

export const DNS_ADDRESS = "127.0.0.11";

export interface ListenerOptions {
  address?: string;
  port?: number;
  /** TCP connections per container at most; more are closed at once; default 64 */
  maxTcpConnections?: number;
  /** an idle TCP connection is closed after this many ms (RFC 7766 §6.2.3); default 10 000 */
  tcpIdleMs?: number;
}

/** Answers one message from container `asker`; undefined = send nothing. */
export type Answerer = (asker: string, msg: Buffer, transport: Transport) => MaybeAsync<Buffer | undefined>;

interface ContainerListener {
  netns: NetnsRef;
  udp: Socket;
  tcp: Server;
  connections: Set<TcpSocket>;
}

export class ListenerManager {
  private readonly listeners = new Map<string, ContainerListener>();
  private readonly address: string;
  private readonly port: number;

  constructor(
    private readonly kernel: Kernel,
    private readonly answer: Answerer,
    private readonly log: Logger,
    private readonly opts: ListenerOptions = {},
  ) {
    this.address = opts.address ?? DNS_ADDRESS;
    this.port = opts.port ?? 53;
  }

  has(containerId: string): boolean {
    return this.listeners.has(containerId);
  }

  get count(): number {
    return this.listeners.size;
  }

  /** Listens inside the container's namespace unless already listening; false on failure (logged). */
  ensure(containerId: string, netns: NetnsRef): boolean {
    if (this.listeners.has(containerId)) return true;
    let udpFd = -1;
    try {
      udpFd = this.kernel.listenInNetns(netns, "udp", this.address, this.port);
      const tcpFd = this.kernel.listenInNetns(netns, "tcp", this.address, this.port);
      const listener = { netns, udp: this.adoptUdp(containerId, udpFd), connections: new Set<TcpSocket>() };
      this.listeners.set(containerId, {
        ...listener,
        tcp: this.adoptTcp(containerId, tcpFd, listener.connections),
      });
      this.log.debug({ containerId, netns: netns.path }, "DNS listeners up");
      return true;
    } catch (err) {
      // The UDP fd is Node's once adopted; before that (TCP bind failed) it is still ours to close.
      if (udpFd >= 0 && !this.listeners.has(containerId)) closeQuietly(udpFd);
      this.log.warn({ containerId, netns: netns.path, err: messageOf(err) }, "DNS listeners not created");
      return false;
    }
  }

  close(containerId: string): void {
    const l = this.listeners.get(containerId);
    if (!l) return;
    this.listeners.delete(containerId);
    l.udp.close();
    l.tcp.close();
    for (const c of l.connections) c.destroy();
    this.log.debug({ containerId }, "DNS listeners closed");
  }

  closeAll(): void {
    for (const id of [...this.listeners.keys()]) this.close(id);
  }

  private adoptUdp(asker: string, fd: number): Socket {
    const sock = createSocket({ type: "udp4" });
    // No send callback: Node then tries the send synchronously (one sendmsg, no request object);
    // a failure surfaces as an "error" event, handled below.
    const reply = (out: Buffer | undefined, to: RemoteInfo) => {
      if (out) sock.send(out, to.port, to.address);
    };
    sock.on("message", (msg, rinfo) => {
      const out = this.answer(asker, msg, "udp");
      if (out instanceof Promise) out.then((o) => reply(o, rinfo), swallow);
      else reply(out, rinfo);
    });
    // A send to a vanished client (ICMP) or a closed socket must never take the daemon down.
    sock.on("error", (err) => this.log.debug({ containerId: asker, err: messageOf(err) }, "DNS UDP error"));
    sock.bind({ fd });
    return sock;
  }

  private adoptTcp(asker: string, fd: number, connections: Set<TcpSocket>): Server {
    const max = this.opts.maxTcpConnections ?? 64;
    const server = createServer((conn) => {
      if (connections.size >= max) return void conn.destroy();
      connections.add(conn);
      conn.on("close", () => connections.delete(conn));
      this.serveConnection(asker, conn);
    });
    server.on("error", (err) => this.log.warn({ containerId: asker, err: messageOf(err) }, "DNS TCP error"));
    server.listen({ fd });
    return server;
  }

  private serveConnection(asker: string, conn: TcpSocket): void {
    const reader = new FrameReader();
    conn.setTimeout(this.opts.tcpIdleMs ?? 10_000, () => conn.destroy());
    conn.on("error", swallow);
    const write = (out: Buffer | undefined) => {
      if (out && !conn.destroyed) conn.write(frame(out));
    };
    conn.on("data", (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) {
        const out = this.answer(asker, msg, "tcp");
        if (out instanceof Promise) out.then(write, swallow);
        else write(out);
      }
    });
  }
}

function swallow(): void {}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
