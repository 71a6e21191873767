/**
 * The UDP and TCP listeners on 127.0.0.11 inside each attached container (on ephemeral ports that
 * 127.0.0.11:53 is redirected to, see redirect.ts). The kernel adapter creates the sockets inside the
 * container's namespace; Node adopts the fds, so every listener is served by the daemon's one event
 * loop. An open socket keeps its namespace alive, so listeners are closed as soon as their
 * container's last endpoint goes.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { closeSync } from "node:fs";
import { type AddressInfo, createServer, type Server, type Socket as TcpSocket } from "node:net";
import type { Logger } from "pino";
import { messageOf } from "../common/errors.js";
import type { Kernel, NetnsRef } from "../kernel/types.js";
import type { Transport } from "./chain.js";
import { FrameReader, frame } from "./frames.js";
import { type RedirectPorts, Redirects, redirectScript } from "./redirect.js";
import type { MaybeAsync } from "./resolver.js";

export const DNS_ADDRESS = "127.0.0.11";

export interface ListenerOptions {
  /** the address clients ask; default 127.0.0.11 */
  address?: string;
  /** the port clients ask; default 53 (the sockets bind ephemeral ports, redirected from it) */
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
  ports: RedirectPorts;
  udp: Socket;
  tcp: Server;
  connections: Set<TcpSocket>;
}

export class ListenerManager {
  private readonly listeners = new Map<string, ContainerListener>();
  private readonly redirects: Redirects;
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
    this.redirects = new Redirects(kernel, log);
  }

  has(containerId: string): boolean {
    return this.listeners.has(containerId);
  }

  get count(): number {
    return this.listeners.size;
  }

  /**
   * Listens inside the container's namespace unless already listening, and (re)points 127.0.0.11:53
   * at the listeners. Resolves true once queries reach them; false on failure (logged, nothing left).
   */
  async ensure(containerId: string, netns: NetnsRef): Promise<boolean> {
    const existing = this.listeners.get(containerId);
    if (existing) {
      await this.redirects.settled(containerId);
      return this.listeners.get(containerId) === existing;
    }
    const listener = this.open(containerId, netns);
    if (!listener) return false;
    try {
      await this.redirects.apply(containerId, netns, redirectScript(this.address, this.port, listener.ports));
    } catch (err) {
      this.log.warn({ containerId, netns: netns.path, err: messageOf(err) }, "DNS redirect not created");
      if (this.listeners.get(containerId) === listener) this.close(containerId);
      return false;
    }
    this.log.debug({ containerId, netns: netns.path, ports: listener.ports }, "DNS listeners up");
    return this.listeners.get(containerId) === listener;
  }

  /** Waits for the container's pending redirect changes. */
  settled(containerId: string): Promise<void> {
    return this.redirects.settled(containerId);
  }

  private open(containerId: string, netns: NetnsRef): ContainerListener | undefined {
    let udpFd = -1;
    let udp: Socket | undefined;
    try {
      udpFd = this.kernel.listenInNetns(netns, "udp", this.address, 0);
      udp = this.adoptUdp(containerId, udpFd);
      const tcpFd = this.kernel.listenInNetns(netns, "tcp", this.address, 0);
      const connections = new Set<TcpSocket>();
      const tcp = this.adoptTcp(containerId, tcpFd, connections);
      const ports = { udp: udp.address().port, tcp: (tcp.address() as AddressInfo).port };
      const listener = { netns, ports, udp, tcp, connections };
      this.listeners.set(containerId, listener);
      return listener;
    } catch (err) {
      // Once adopted the UDP fd is Node's to close; before that it is still ours.
      if (udp) udp.close();
      else if (udpFd >= 0) closeQuietly(udpFd);
      this.log.warn({ containerId, netns: netns.path, err: messageOf(err) }, "DNS listeners not created");
      return undefined;
    }
  }

  /** Closes the listeners and removes the redirect (in the background; a dead namespace is fine). */
  close(containerId: string): void {
    const l = this.listeners.get(containerId);
    if (!l) return;
    this.closeSockets(containerId, l);
    void this.redirects.remove(containerId, l.netns);
  }

  /** Daemon shutdown: sockets only. The redirects stay; a restarted daemon replaces them. */
  closeAll(): void {
    for (const [id, l] of [...this.listeners]) this.closeSockets(id, l);
  }

  private closeSockets(containerId: string, l: ContainerListener): void {
    this.listeners.delete(containerId);
    l.udp.close();
    l.tcp.close();
    for (const c of l.connections) c.destroy();
    this.log.debug({ containerId }, "DNS listeners closed");
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
