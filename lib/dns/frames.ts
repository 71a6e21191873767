/** DNS over TCP frames each message with a two-byte length (RFC 1035 §4.2.2; RFC 7766). */

/** Collects stream chunks and yields whole messages. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Feeds a chunk; returns the messages it completed (possibly none). */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (this.pending.length >= 2) {
      const len = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + len) break;
      out.push(this.pending.subarray(2, 2 + len));
      this.pending = this.pending.subarray(2 + len);
    }
    return out;
  }

  /** Bytes waiting for the rest of their message. */
  get buffered(): number {
    return this.pending.length;
  }
}

/** The message with its length prefix; messages over 65535 bytes cannot be framed. */
export function frame(msg: Buffer): Buffer {
  if (msg.length > 0xffff) throw new RangeError(`DNS message of ${msg.length} bytes is too long for TCP`);
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}
