/**
 * From messages to what the transport carries and back, for one node: envelopes, sealing,
 * datagram packing with piggy-backed broadcasts, stream frames, and the counters for each.
 */

import type { BroadcastQueue } from "./broadcast-queue.js";
import { decodeEnvelope, encodeEnvelopeParts, encodeMessage, envelopeOverhead, framedSize } from "./codec.js";
import { GossipDecodeError } from "./errors.js";
import type { Keyring } from "./keyring.js";
import type { Envelope, Message } from "./messages.js";
import { seal, sealOverhead, unseal } from "./seal.js";
import type { GossipStats } from "./stats.js";
import type { Stream, Transport } from "./transport.js";

export class Wire {
  constructor(
    private readonly self: string,
    private readonly transport: Transport,
    private readonly keyring: Keyring | undefined,
    private readonly queue: BroadcastQueue,
    private readonly stats: GossipStats,
    private readonly udpBufferSize: number,
  ) {}

  /** Bytes of envelope payload one datagram can carry. */
  get packetBudget(): number {
    return this.udpBufferSize - sealOverhead(this.keyring) - envelopeOverhead(this.self, 255);
  }

  /**
   * Sends `messages` in one datagram, topped up with pending broadcasts (piggy-backing). Returns
   * false when there was nothing to send. Messages that would not fit are the caller's bug.
   */
  sendPacket(addr: string, messages: readonly Message[], piggyback = true): boolean {
    const parts = messages.map(encodeMessage);
    let used = parts.reduce((n, p) => n + framedSize(p), 0);
    if (piggyback) {
      const extra = this.queue.take(this.packetBudget - used, framedSize);
      for (const p of extra) used += framedSize(p);
      parts.push(...extra);
    }
    if (parts.length === 0) return false;
    const bytes = seal(encodeEnvelopeParts(this.self, parts), this.keyring);
    this.stats.packetsSent++;
    this.stats.bytesSent += bytes.length;
    this.transport.sendPacket(addr, bytes);
    return true;
  }

  /** Sends pre-encoded messages as one stream frame. */
  async writeFrame(
    stream: Stream,
    messages: readonly Message[],
    encoded: readonly Uint8Array[] = [],
  ): Promise<void> {
    const parts = [...messages.map(encodeMessage), ...encoded];
    const bytes = seal(encodeEnvelopeParts(this.self, parts), this.keyring);
    this.stats.streamBytesSent += bytes.length;
    await stream.write(bytes);
  }

  /** Reads and opens one stream frame; throws GossipDecodeError (counted) or a stream error. */
  async readFrame(stream: Stream, timeoutMs: number): Promise<Envelope> {
    const bytes = await stream.read(timeoutMs);
    this.stats.streamBytesReceived += bytes.length;
    return this.open(bytes);
  }

  /** Opens a received datagram; undefined (and counted) when it must be dropped. */
  openPacket(bytes: Uint8Array): Envelope | undefined {
    this.stats.packetsReceived++;
    this.stats.bytesReceived += bytes.length;
    try {
      return this.open(bytes);
    } catch (err) {
      if (err instanceof GossipDecodeError) return undefined;
      throw err;
    }
  }

  private open(bytes: Uint8Array): Envelope {
    try {
      const env = decodeEnvelope(unseal(bytes, this.keyring));
      this.stats.skippedUnknown += env.skipped;
      return env;
    } catch (err) {
      if (err instanceof GossipDecodeError) {
        if (err.reason === "unauthenticated") this.stats.droppedUnauthenticated++;
        else this.stats.droppedMalformed++;
      }
      throw err;
    }
  }
}
