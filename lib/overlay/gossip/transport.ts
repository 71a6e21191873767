/**
 * How a gossip node reaches its peers: unreliable datagrams (probes, piggy-backed updates) and
 * reliable framed streams (push-pull, TCP fallback pings, updates too big for a datagram).
 * Addresses are "host:port" strings (see address.ts). Two implementations: `UdpTcpTransport`
 * (real sockets) and `MemoryTransport` (an in-process network that tests and simulations drive).
 * Bytes handed to a transport are already sealed; transports never look inside.
 */

/** A reliable, ordered, message-framed connection. */
export interface Stream {
  /** The peer's "host:port" as seen by the transport. */
  readonly remote: string;
  /** Sends one frame. Rejects when the stream is closed or the frame exceeds the frame cap. */
  write(frame: Uint8Array): Promise<void>;
  /** The next frame. Rejects on timeout, on close by either side, or on a connection error. */
  read(timeoutMs: number): Promise<Uint8Array>;
  /** Closes both directions; idempotent. */
  close(): void;
}

export interface ListenOptions {
  /** Address to bind (may be a wildcard). */
  bindAddr: string;
  /** Port for both UDP and TCP; 0 picks a free one. */
  port: number;
  /** Address peers dial; the in-memory network registers the node under it. */
  advertiseAddr: string;
  /** Largest stream frame accepted, bytes; larger ones are refused before buffering. */
  maxFrameBytes: number;
}

export interface Transport {
  /** Starts listening; resolves with the port actually bound. */
  listen(options: ListenOptions): Promise<{ port: number }>;
  /** Fire-and-forget; failures are the protocol's business (it retries by design), not thrown. */
  sendPacket(addr: string, bytes: Uint8Array): void;
  /** Registers the one packet handler. `from` is the sender's "host:port". */
  onPacket(handler: (bytes: Uint8Array, from: string) => void): void;
  /** Connects; rejects on refusal or when `timeoutMs` passes. */
  openStream(addr: string, timeoutMs: number): Promise<Stream>;
  /** Registers the one handler for inbound streams. */
  onStream(handler: (stream: Stream) => void): void;
  /** Stops listening and closes every open stream. Idempotent. */
  close(): Promise<void>;
}
