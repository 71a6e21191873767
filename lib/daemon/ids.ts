import { createHash, randomBytes } from "node:crypto";
import type { NetnsRef } from "../kernel/types.js";

/** 64 lower-case hex characters, like Docker's network and endpoint ids. */
export function newId(): string {
  return randomBytes(32).toString("hex");
}

/** A namespace's stable identity shown as its "container id": same namespace, same id. */
export function containerIdOf(ns: NetnsRef): string {
  return createHash("sha256").update(`netns:${ns.dev}:${ns.ino}`).digest("hex");
}

/** Default endpoint name: the `ip netns` name, the last path element, or pid-N. */
export function defaultEndpointName(ref: string, ns: NetnsRef): string {
  if (ref.startsWith("pid:")) return `pid-${ref.slice(4)}`;
  const m = /^\/proc\/(\d+)\/ns\/net$/.exec(ns.path);
  if (m) return `pid-${m[1]}`;
  const parts = ns.path.split("/").filter(Boolean);
  return parts[parts.length - 1] ?? ref;
}
