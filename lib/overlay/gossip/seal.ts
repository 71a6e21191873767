/**
 * The outermost layer of every datagram and stream frame: plaintext, or AES-256-GCM.
 *
 *   plaintext:  u8 0 | envelope
 *   sealed:     u8 1 | u32 key id | 12-byte random nonce | ciphertext | 16-byte tag
 *
 * The first 5 bytes are authenticated as associated data, so the key id cannot be swapped. A
 * node with a keyring accepts only sealed input; one without accepts only plaintext. Anything
 * else fails with reason "unauthenticated" and the caller drops and counts it. Pure functions:
 * no I/O, only node:crypto.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { decodeError } from "./errors.js";
import type { Keyring } from "./keyring.js";

const PLAIN = 0;
const SEALED = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 5;

/** Bytes sealing adds (or 1 without a keyring); used to budget datagrams. */
export function sealOverhead(keyring: Keyring | undefined): number {
  return keyring ? HEADER_BYTES + NONCE_BYTES + TAG_BYTES : 1;
}

export function seal(plain: Uint8Array, keyring: Keyring | undefined): Uint8Array {
  if (!keyring) {
    const out = new Uint8Array(plain.length + 1);
    out[0] = PLAIN;
    out.set(plain, 1);
    return out;
  }
  const { key, id } = keyring.primary();
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = SEALED;
  header.writeUInt32BE(id, 1);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
}

export function unseal(bytes: Uint8Array, keyring: Keyring | undefined): Uint8Array {
  const kind = bytes[0];
  if (kind === PLAIN) {
    if (keyring) throw decodeError("unauthenticated", "plaintext input while a key is required");
    return plainView(bytes, 1, bytes.length - 1);
  }
  if (kind !== SEALED) throw decodeError("bad-version", `unknown seal kind ${String(kind)}`);
  if (!keyring) throw decodeError("unauthenticated", "encrypted input but no keyring configured");
  if (bytes.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES) {
    throw decodeError("truncated", "sealed input shorter than its header");
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const key = keyring.byId(buf.readUInt32BE(1));
  if (!key) throw decodeError("unauthenticated", "sealed with a key that is not installed");
  const nonce = buf.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
  const tag = buf.subarray(buf.length - TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAAD(buf.subarray(0, HEADER_BYTES));
  decipher.setAuthTag(tag);
  try {
    const body = buf.subarray(HEADER_BYTES + NONCE_BYTES, buf.length - TAG_BYTES);
    const out = Buffer.concat([decipher.update(body), decipher.final()]);
    return plainView(out, 0, out.length);
  } catch {
    throw decodeError("unauthenticated", "authentication tag mismatch");
  }
}

/** A plain Uint8Array over the same memory (transports hand us Buffers; their slice() is a view). */
function plainView(b: Uint8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + offset, length);
}
