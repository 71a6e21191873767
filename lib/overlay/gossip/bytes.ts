/**
 * Byte-level primitives of the wire format: a growable writer and a bounds-checked reader.
 * Every length or count read from the wire is checked against the bytes actually left before
 * anything is allocated, so a hostile length field cannot make us allocate more than the packet.
 */
import { decodeError } from "./errors.js";

const MAX_VARINT = Number.MAX_SAFE_INTEGER;
const utf8Encoder = new TextEncoder();

export class Writer {
  private buf: Uint8Array;
  private len = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }

  get length(): number {
    return this.len;
  }

  u8(v: number): this {
    this.reserve(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setUint32(this.len, v >>> 0);
    this.len += 4;
    return this;
  }

  /** Unsigned LEB128, 0..2^53-1. */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    let rest = v;
    while (rest >= 0x80) {
      this.u8((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    return this.u8(rest);
  }

  /** Length-prefixed bytes. */
  bytes(b: Uint8Array): this {
    this.varint(b.length);
    return this.raw(b);
  }

  /** Length-prefixed UTF-8. */
  string(s: string): this {
    return this.bytes(utf8Encoder.encode(s));
  }

  raw(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** The written bytes (a copy the caller owns). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

export class Reader {
  private pos = 0;
  private readonly view: DataView;
  private static readonly utf8 = new TextDecoder("utf-8", { fatal: true });

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  u8(): number {
    this.need(1, "u8");
    return this.buf[this.pos++]!;
  }

  u32(): number {
    this.need(4, "u32");
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      value += (b & 0x7f) * scale;
      if (value > MAX_VARINT) throw decodeError("bad-value", "varint exceeds 2^53-1");
      if ((b & 0x80) === 0) return value;
      scale *= 0x80;
    }
    throw decodeError("bad-value", "varint longer than 8 bytes");
  }

  /** Length-prefixed bytes, at most `max`; returns a view into the buffer (no copy). */
  bytes(max = Number.MAX_SAFE_INTEGER): Uint8Array {
    const n = this.varint();
    if (n > max) throw decodeError("too-long", `field of ${n} bytes exceeds the limit of ${max}`);
    return this.raw(n);
  }

  string(max = 65535): string {
    const b = this.bytes(max);
    try {
      return Reader.utf8.decode(b);
    } catch {
      throw decodeError("bad-value", "invalid UTF-8 in a string field");
    }
  }

  raw(n: number): Uint8Array {
    this.need(n, "bytes");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /**
   * A count of following elements, each at least `minSize` bytes: rejected before any array is
   * allocated when the buffer cannot possibly hold that many.
   */
  count(minSize: number, what: string): number {
    const n = this.varint();
    if (n * minSize > this.remaining) {
      throw decodeError("too-long", `${what} count ${n} exceeds what ${this.remaining} bytes can hold`);
    }
    return n;
  }

  /** Asserts every byte was consumed. */
  end(what: string): void {
    if (this.remaining !== 0) throw decodeError("trailing", `${this.remaining} bytes after ${what}`);
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) {
      throw decodeError("truncated", `${what} needs ${n} bytes, ${this.remaining} left`);
    }
  }
}
