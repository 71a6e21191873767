/**
 * The encryption keys of one node: 32-byte AES-256 keys, the first one primary. The primary
 * encrypts everything we send; every installed key decrypts. Rotation without a restart, done on
 * every node in three steps that each keep the cluster talking:
 *   1. add(new)  — everyone can now decrypt the new key, still sends with the old;
 *   2. use(new)  — everyone sends with the new key, still accepts the old;
 *   3. remove(old).
 */
import { createHash } from "node:crypto";
import { invalid } from "../../common/errors.js";

export const KEY_BYTES = 32;
/** Bytes of the key id carried in each sealed packet. */
export const KEY_ID_BYTES = 4;

interface InstalledKey {
  key: Uint8Array;
  id: number;
}

export class Keyring {
  private keys: InstalledKey[] = [];

  /** `keys[0]` becomes the primary. At least one key; each exactly 32 bytes; no duplicates. */
  constructor(keys: readonly Uint8Array[]) {
    if (keys.length === 0) throw invalid("gossip keyring: at least one key is required");
    for (const key of keys) this.add(key);
  }

  /** Parses a base64 key as `--gossip-key FILE` holds it (whitespace ignored). */
  static parseKey(base64: string): Uint8Array {
    const key = Buffer.from(base64.trim(), "base64");
    checkKey(key);
    return new Uint8Array(key);
  }

  /** Installs a key for decryption; no-op when already installed. */
  add(key: Uint8Array): void {
    checkKey(key);
    if (this.find(key) !== undefined) return;
    const id = keyId(key);
    if (this.byId(id) !== undefined) throw invalid("gossip keyring: key id collision, generate another key");
    this.keys.push({ key: new Uint8Array(key), id });
  }

  /** Makes an installed key the primary (the one we encrypt with). */
  use(key: Uint8Array): void {
    const i = this.find(key);
    if (i === undefined) throw invalid("gossip keyring: key is not installed; add it first");
    const [entry] = this.keys.splice(i, 1);
    this.keys.unshift(entry!);
  }

  /** Uninstalls a key; the primary cannot be removed (use another key first). */
  remove(key: Uint8Array): void {
    const i = this.find(key);
    if (i === undefined) return;
    if (i === 0) throw invalid("gossip keyring: cannot remove the primary key; use another key first");
    this.keys.splice(i, 1);
  }

  primary(): { key: Uint8Array; id: number } {
    return this.keys[0]!;
  }

  /** The key with this id, if installed. */
  byId(id: number): Uint8Array | undefined {
    return this.keys.find((k) => k.id === id)?.key;
  }

  /** Installed keys, primary first (copies). */
  list(): Uint8Array[] {
    return this.keys.map((k) => new Uint8Array(k.key));
  }

  private find(key: Uint8Array): number | undefined {
    const i = this.keys.findIndex((k) => Buffer.compare(k.key, key) === 0);
    return i < 0 ? undefined : i;
  }
}

/** A key's public id: the first 4 bytes of its SHA-256, so a receiver picks the key directly. */
export function keyId(key: Uint8Array): number {
  return createHash("sha256").update(key).digest().readUInt32BE(0);
}

function checkKey(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) {
    throw invalid(`gossip keyring: a key must be ${KEY_BYTES} bytes, got ${key.length}`);
  }
}
