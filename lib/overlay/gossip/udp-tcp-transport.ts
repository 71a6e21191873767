/**
 * The real transport: one UDP socket and one TCP listener on the same port (7946 by default).
 * Stream frames are a 4-byte big-endian length followed by the frame; a length over the cap
 * closes the connection before anything is buffered for it.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, isIPv6, type Server, type Socket } from "node:net";
import { formatAddress, parseAddress } from "./address.js";
import { GossipError } from "./errors.js";
import type { ListenOptions, Stream, Transport } from "./transport.js";

export class UdpTcpTransport implements Transport {
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private packetHandler: ((bytes: Uint8Array, from: string) => void) | undefined;
  private streamHandler: ((stream: Stream) => void) | undefined;
  private readonly streams = new Set<SocketStream>();
  /** Connections still being set up, so close() can abort them. */
  private readonly connecting = new Set<Socket>();
  private maxFrame = 0;
  /** Send failures (EHOSTUNREACH, buffer full); the protocol tolerates loss, we only count. */
  sendErrors = 0;

  async listen(options: ListenOptions): Promise<{ port: number }> {
    this.maxFrame = options.maxFrameBytes;
    // With port 0 the kernel picks a free UDP port, which may be taken on TCP: try a few.
    const attempts = options.port === 0 ? 5 : 1;
    for (let i = 1; ; i++) {
      try {
        return await this.bindBoth(options.bindAddr, options.port);
      } catch (err) {
        if (i >= attempts) throw err;
      }
    }
  }

  private async bindBoth(bindAddr: string, wanted: number): Promise<{ port: number }> {
    const udp = await bindUdp(bindAddr, wanted);
    udp.on("message", (msg, rinfo) => this.packetHandler?.(msg, formatAddress(rinfo.address, rinfo.port)));
    udp.on("error", () => {
      this.sendErrors++;
    });
    const port = udp.address().port;
    try {
      this.tcp = await listenTcp(bindAddr, port, (socket) => this.accept(socket));
    } catch (err) {
      udp.close();
      throw err;
    }
    this.udp = udp;
    return { port };
  }

  sendPacket(addr: string, bytes: Uint8Array): void {
    const udp = this.udp;
    if (!udp) return;
    try {
      const { host, port } = parseAddress(addr);
      udp.send(bytes, port, host, (err) => {
        if (err) this.sendErrors++;
      });
    } catch {
      this.sendErrors++; // an unusable address learned from a peer: nothing to send to
    }
  }

  onPacket(handler: (bytes: Uint8Array, from: string) => void): void {
    this.packetHandler = handler;
  }

  onStream(handler: (stream: Stream) => void): void {
    this.streamHandler = handler;
  }

  openStream(addr: string, timeoutMs: number): Promise<Stream> {
    const { host, port } = parseAddress(addr);
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      this.connecting.add(socket);
      const fail = (err: GossipError): void => {
        clearTimeout(timer);
        this.connecting.delete(socket);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new GossipError(`connect ${addr}: timed out`)), timeoutMs);
      socket.once("error", (err) => fail(new GossipError(`connect ${addr}: ${err.message}`, { cause: err })));
      socket.once("close", () => fail(new GossipError(`connect ${addr}: closed`)));
      socket.once("connect", () => {
        clearTimeout(timer);
        this.connecting.delete(socket);
        socket.removeAllListeners("close");
        socket.removeAllListeners("error");
        resolve(this.track(new SocketStream(socket, addr, this.maxFrame)));
      });
    });
  }

  async close(): Promise<void> {
    for (const socket of this.connecting) socket.destroy();
    this.connecting.clear();
    for (const s of this.streams) s.close();
    this.streams.clear();
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const remote = formatAddress(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
    const stream = this.track(new SocketStream(socket, remote, this.maxFrame));
    if (this.streamHandler) this.streamHandler(stream);
    else stream.close();
  }

  private track(s: SocketStream): SocketStream {
    this.streams.add(s);
    s.onClose = () => this.streams.delete(s);
    return s;
  }
}

function bindUdp(bindAddr: string, port: number): Promise<UdpSocket> {
  const udp = createSocket({ type: isIPv6(bindAddr) ? "udp6" : "udp4" });
  return new Promise((resolve, reject) => {
    udp.once("error", (err) => {
      udp.close();
      reject(new GossipError(`gossip: cannot bind UDP ${bindAddr}:${port}: ${err.message}`, { cause: err }));
    });
    udp.bind({ address: bindAddr, port, exclusive: true }, () => {
      udp.removeAllListeners("error");
      resolve(udp);
    });
  });
}

function listenTcp(bindAddr: string, port: number, onConnection: (socket: Socket) => void): Promise<Server> {
  const tcp = createServer(onConnection);
  return new Promise((resolve, reject) => {
    tcp.once("error", (err) => {
      tcp.close();
      reject(
        new GossipError(`gossip: cannot listen on TCP ${bindAddr}:${port}: ${err.message}`, { cause: err }),
      );
    });
    tcp.listen({ host: bindAddr, port, exclusive: true }, () => {
      tcp.removeAllListeners("error");
      // Errors after listening (EMFILE on accept) do not stop the server; an unhandled one would crash.
      tcp.on("error", () => {});
      resolve(tcp);
    });
  });
}

/** Length-prefixed frames over a TCP socket. */
class SocketStream implements Stream {
  private readonly frames: Uint8Array[] = [];
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Length of the frame being received, once its header is in. */
  private expected: number | undefined;
  private waiter: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  onClose: (() => void) | undefined;

  constructor(
    private readonly socket: Socket,
    readonly remote: string,
    private readonly maxFrame: number,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) =>
      this.fail(new GossipError(`stream ${remote}: ${err.message}`, { cause: err })),
    );
    socket.on("close", () => this.fail(new GossipError(`stream ${remote}: closed`)));
  }

  write(frame: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (frame.length > this.maxFrame) {
      return Promise.reject(new GossipError(`stream frame of ${frame.length} bytes too large`));
    }
    const header = Buffer.alloc(4);
    header.writeUInt32BE(frame.length);
    return new Promise((resolve, reject) => {
      this.socket.write(Buffer.concat([header, frame]), (err) => (err ? reject(err) : resolve()));
    });
  }

  read(timeoutMs: number): Promise<Uint8Array> {
    const next = this.frames.shift();
    if (next) return Promise.resolve(next);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new GossipError(`stream ${this.remote}: read timed out`));
      }, timeoutMs);
      this.waiter = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  close(): void {
    this.socket.destroy();
    this.fail(new GossipError(`stream ${this.remote}: closed`));
  }

  private onData(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    for (;;) {
      if (this.expected === undefined) {
        if (this.pendingBytes < 4) return;
        const head = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
        this.pending = [head];
        this.expected = head.readUInt32BE(0);
        // Refuse before buffering: a hostile length must not make us hold its bytes.
        if (this.expected > this.maxFrame) {
          this.close();
          return;
        }
      }
      if (this.pendingBytes < 4 + this.expected) return;
      const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      this.deliver(new Uint8Array(all.subarray(4, 4 + this.expected)));
      const rest = all.subarray(4 + this.expected);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      this.expected = undefined;
    }
  }

  private deliver(frame: Uint8Array): void {
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w.resolve(frame);
    else this.frames.push(frame);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.onClose?.();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }
}
