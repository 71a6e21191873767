/**
 * An in-process network for protocol tests and simulations: no sockets, timing from an
 * injectable Clock, randomness from a seed. The test controls loss, latency and partitions.
 *
 * It behaves like UDP + TCP where the protocol could notice: datagrams are lost independently
 * with probability `loss` and arrive after a random latency (so they can be reordered); streams
 * are reliable and ordered, but each frame loses time to retransmission under loss (a 200 ms
 * RTO per lost transmission, doubling, as Linux TCP does), a connection to a partitioned peer
 * hangs until its timeout, and one to an address nobody listens on is refused after one RTT.
 */
import type { Clock } from "./clock.js";
import { GossipError } from "./errors.js";
import { type Random, seededRandom } from "./random.js";
import type { ListenOptions, Stream, Transport } from "./transport.js";

export interface MemoryNetworkOptions {
  clock: Clock;
  /** Seed of the network's randomness (loss and latency draws). Default 1. */
  seed?: number;
  /** Probability that a datagram is lost, 0..1. Default 0. */
  loss?: number;
  /** One-way latency range, ms. Default 1..3. */
  latencyMs?: { min: number; max: number };
}

const TCP_MIN_RTO_MS = 200;

export class MemoryNetwork {
  readonly clock: Clock;
  private readonly random: Random;
  private loss: number;
  private latency: { min: number; max: number };
  private readonly endpoints = new Map<string, MemoryTransport>();
  /** Address → partition group; addresses in different groups cannot talk. Empty = no partition. */
  private groups = new Map<string, number>();
  readonly counters = { packetsSent: 0, packetsLost: 0, packetsBlocked: 0, largestPacket: 0 };

  constructor(options: MemoryNetworkOptions) {
    this.clock = options.clock;
    this.random = seededRandom(options.seed ?? 1);
    this.loss = options.loss ?? 0;
    this.latency = options.latencyMs ?? { min: 1, max: 3 };
  }

  /** A transport attached to this network. */
  transport(): MemoryTransport {
    return new MemoryTransport(this);
  }

  setLoss(rate: number): void {
    this.loss = rate;
  }

  setLatency(min: number, max: number): void {
    this.latency = { min, max };
  }

  /** Splits the listed addresses into groups that cannot reach each other; unlisted ones form one more group. */
  partition(...groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((g, i) => {
      for (const addr of g) this.groups.set(addr, i + 1);
    });
  }

  heal(): void {
    this.groups = new Map();
  }

  canReach(from: string, to: string): boolean {
    return (this.groups.get(from) ?? 0) === (this.groups.get(to) ?? 0);
  }

  // ------------------------------------------------------------------ used by MemoryTransport

  /** @internal */
  register(addr: string, t: MemoryTransport): void {
    if (this.endpoints.has(addr)) throw new GossipError(`memory network: ${addr} is already in use`);
    this.endpoints.set(addr, t);
  }

  /** @internal */
  unregister(addr: string, t: MemoryTransport): void {
    if (this.endpoints.get(addr) === t) this.endpoints.delete(addr);
  }

  /** @internal */
  listener(addr: string): MemoryTransport | undefined {
    return this.endpoints.get(addr);
  }

  /** @internal */
  deliverPacket(from: string, to: string, bytes: Uint8Array): void {
    this.counters.packetsSent++;
    this.counters.largestPacket = Math.max(this.counters.largestPacket, bytes.length);
    if (!this.canReach(from, to)) {
      this.counters.packetsBlocked++;
      return;
    }
    if (this.random() < this.loss) {
      this.counters.packetsLost++;
      return;
    }
    const copy = new Uint8Array(bytes);
    this.clock.setTimer(this.oneWay(), () => this.endpoints.get(to)?.receivePacket(copy, from));
  }

  /** @internal One-way latency draw, ms. */
  oneWay(): number {
    const { min, max } = this.latency;
    return min + Math.floor(this.random() * (max - min + 1));
  }

  /** @internal Extra delay of one TCP segment: an RTO (doubling) per lost transmission. */
  retransmitDelay(): number {
    let delay = 0;
    let rto = TCP_MIN_RTO_MS;
    for (let i = 0; i < 6 && this.random() < this.loss; i++) {
      delay += rto;
      rto *= 2;
    }
    return delay;
  }
}

export class MemoryTransport implements Transport {
  private addr: string | undefined;
  private packetHandler: ((bytes: Uint8Array, from: string) => void) | undefined;
  private streamHandler: ((stream: Stream) => void) | undefined;
  private readonly streams = new Set<MemoryStream>();
  private maxFrame = Number.MAX_SAFE_INTEGER;

  constructor(private readonly net: MemoryNetwork) {}

  async listen(options: ListenOptions): Promise<{ port: number }> {
    if (options.port === 0) throw new GossipError("memory transport: choose an explicit port");
    this.addr = `${options.advertiseAddr}:${options.port}`;
    this.maxFrame = options.maxFrameBytes;
    this.net.register(this.addr, this);
    return { port: options.port };
  }

  sendPacket(addr: string, bytes: Uint8Array): void {
    if (this.addr !== undefined) this.net.deliverPacket(this.addr, addr, bytes);
  }

  onPacket(handler: (bytes: Uint8Array, from: string) => void): void {
    this.packetHandler = handler;
  }

  onStream(handler: (stream: Stream) => void): void {
    this.streamHandler = handler;
  }

  openStream(addr: string, timeoutMs: number): Promise<Stream> {
    const local = this.addr;
    const clock = this.net.clock;
    return new Promise((resolve, reject) => {
      if (local === undefined) return reject(new GossipError("memory transport: not listening"));
      if (!this.net.canReach(local, addr)) {
        clock.setTimer(timeoutMs, () => reject(new GossipError(`connect ${addr}: timed out`)));
        return;
      }
      const rtt = this.net.oneWay() * 2 + this.net.retransmitDelay();
      clock.setTimer(Math.min(rtt, timeoutMs), () => {
        const peer = this.net.listener(addr);
        if (rtt > timeoutMs) return reject(new GossipError(`connect ${addr}: timed out`));
        if (!peer || this.addr === undefined) return reject(new GossipError(`connect ${addr}: refused`));
        const [mine, theirs] = MemoryStream.pair(
          this.net,
          local,
          addr,
          Math.min(this.maxFrame, peer.maxFrame),
        );
        this.track(mine);
        peer.track(theirs);
        peer.streamHandler?.(theirs);
        resolve(mine);
      });
    });
  }

  async close(): Promise<void> {
    if (this.addr !== undefined) this.net.unregister(this.addr, this);
    this.addr = undefined;
    for (const s of this.streams) s.close();
    this.streams.clear();
  }

  /** @internal */
  receivePacket(bytes: Uint8Array, from: string): void {
    if (this.addr !== undefined) this.packetHandler?.(bytes, from);
  }

  private track(s: MemoryStream): void {
    this.streams.add(s);
    s.onClose = () => this.streams.delete(s);
  }
}

class MemoryStream implements Stream {
  private peer: MemoryStream | undefined;
  private readonly queue: Uint8Array[] = [];
  private waiter: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private closed = false;
  private peerClosed = false;
  /** Frames in one direction never overtake each other (TCP ordering). */
  private lastArrival = 0;
  onClose: (() => void) | undefined;

  private constructor(
    private readonly net: MemoryNetwork,
    readonly remote: string,
    private readonly local: string,
    private readonly maxFrame: number,
  ) {}

  static pair(net: MemoryNetwork, a: string, b: string, maxFrame: number): [MemoryStream, MemoryStream] {
    const sa = new MemoryStream(net, b, a, maxFrame);
    const sb = new MemoryStream(net, a, b, maxFrame);
    sa.peer = sb;
    sb.peer = sa;
    return [sa, sb];
  }

  async write(frame: Uint8Array): Promise<void> {
    if (this.closed || this.peerClosed) throw new GossipError(`stream to ${this.remote}: closed`);
    if (frame.length > this.maxFrame)
      throw new GossipError(`stream frame of ${frame.length} bytes too large`);
    // A partition swallows the segment; TCP would keep retrying until the reader times out.
    if (!this.net.canReach(this.local, this.remote)) return;
    const now = this.net.clock.now();
    const arrival = Math.max(now + this.net.oneWay() + this.net.retransmitDelay(), this.lastArrival);
    this.lastArrival = arrival;
    const copy = new Uint8Array(frame);
    const peer = this.peer;
    this.net.clock.setTimer(arrival - now, () => peer?.receive(copy));
  }

  read(timeoutMs: number): Promise<Uint8Array> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    if (this.closed || this.peerClosed)
      return Promise.reject(new GossipError(`stream to ${this.remote}: closed`));
    return new Promise((resolve, reject) => {
      const timer = this.net.clock.setTimer(timeoutMs, () => {
        this.waiter = undefined;
        reject(new GossipError(`stream to ${this.remote}: read timed out`));
      });
      this.waiter = {
        resolve: (b) => {
          timer.cancel();
          resolve(b);
        },
        reject: (e) => {
          timer.cancel();
          reject(e);
        },
      };
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failWaiter();
    this.onClose?.();
    const peer = this.peer;
    const arrival = Math.max(this.net.clock.now() + this.net.oneWay(), this.lastArrival);
    this.net.clock.setTimer(arrival - this.net.clock.now(), () => peer?.remoteClosed());
  }

  private receive(frame: Uint8Array): void {
    if (this.closed) return;
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w.resolve(frame);
    else this.queue.push(frame);
  }

  private remoteClosed(): void {
    this.peerClosed = true;
    if (this.queue.length === 0) this.failWaiter();
  }

  private failWaiter(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(new GossipError(`stream to ${this.remote}: closed`));
  }
}
