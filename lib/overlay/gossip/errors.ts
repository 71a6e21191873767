/**
 * Gossip-specific errors. Decode failures have their own class so the receive path can tell
 * "hostile or corrupt bytes" (drop and count) from a bug (let it surface).
 */
import { TrellisError } from "../../common/errors.js";

/** Why a buffer failed to decode; stable strings for counters and tests. */
export type DecodeFailure =
  | "truncated" // a field runs past the end of the buffer
  | "too-long" // a length or count exceeds what the buffer (or a configured cap) can hold
  | "bad-version" // wire version we do not speak
  | "bad-type" // unknown message or value type where one is required
  | "bad-value" // a field holds a value outside its domain (bad UTF-8, bad JSON, varint overflow)
  | "trailing" // bytes left over after a complete message
  | "unauthenticated"; // AES-GCM authentication failed, unknown key id, or plaintext where a key is required

/** Thrown by the pure codec (and the seal layer) for any malformed input. Never anything else. */
export class GossipDecodeError extends TrellisError {
  readonly reason: DecodeFailure;
  constructor(reason: DecodeFailure, message: string) {
    super("INVALID_ARGUMENT", `gossip decode: ${message}`);
    this.reason = reason;
    this.name = "GossipDecodeError";
  }
}

/** A protocol operation failed (join reached nobody, stream closed, timeout). */
export class GossipError extends TrellisError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("INTERNAL", message, options);
    this.name = "GossipError";
  }
}

export const decodeError = (reason: DecodeFailure, message: string): GossipDecodeError =>
  new GossipDecodeError(reason, message);
