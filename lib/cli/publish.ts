/**
 * `-p/--publish [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]` for `network connect`.
 * A narrower grammar than Docker's (no ranges, no IPv6 host address, no container-port-only
 * form) because trellis publishes per endpoint and needs both ports explicitly.
 */
import { flagValue } from "./args.js";
import { UsageError } from "./errors.js";
import { parseIPv4 } from "./ip.js";
import type { PublishWire } from "./wire.js";

export type Proto = "tcp" | "udp";

export interface PublishSpec {
  proto: Proto;
  /** bare IPv4; absent = every local address */
  hostIp?: string;
  hostPort: number;
  containerPort: number;
}

export const PUBLISH_SYNTAX = "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]";

/** Throws an Error whose message is the reason; `which` names the port ("host", "target", ...). */
export function parsePort(which: string, text: string): number {
  // Digits only: Number() would also accept "0x50", " 80" and "8e1".
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535 || text.startsWith("0")) {
    throw new Error(`${which} port "${text}" must be a number from 1 to 65535`);
  }
  return Number(text);
}

export function parseProto(text: string): Proto {
  if (text === "tcp" || text === "udp") return text;
  throw new Error(`protocol "${text}" must be tcp or udp`);
}

/** Throws an Error whose message is the reason; the caller names the flag. */
export function parsePublish(text: string): PublishSpec {
  const slash = text.indexOf("/");
  const proto = slash === -1 ? "tcp" : parseProto(text.slice(slash + 1));
  const parts = (slash === -1 ? text : text.slice(0, slash)).split(":");
  if (parts.length > 3) throw new Error(`host IP must be an IPv4 address; expected ${PUBLISH_SYNTAX}`);
  if (parts.length < 2) throw new Error(`expected ${PUBLISH_SYNTAX}`);
  const [hostPort, containerPort] = parts.slice(-2) as [string, string];
  const spec: PublishSpec = {
    proto,
    hostPort: parsePort("host", hostPort),
    containerPort: parsePort("container", containerPort),
  };
  if (parts.length === 3) {
    const hostIp = parts[0]!;
    try {
      parseIPv4(hostIp);
    } catch {
      throw new Error(`host IP "${hostIp}" must be an IPv4 address`);
    }
    spec.hostIp = hostIp;
  }
  return spec;
}

/** The canonical text form; parsePublish(formatPublish(p)) deep-equals p. */
export function formatPublish(p: PublishSpec): string {
  const host = p.hostIp === undefined ? "" : `${p.hostIp}:`;
  return `${host}${p.hostPort}:${p.containerPort}/${p.proto}`;
}

/** Parsed -p values; an exact duplicate is almost certainly a typo, so it is refused here. */
export function parsePublishFlags(values: readonly string[]): PublishWire[] {
  const seen = new Map<string, string>();
  return values.map((text) => {
    const p = flagValue("--publish", text, parsePublish);
    const key = `${p.proto} ${p.hostIp ?? ""} ${p.hostPort}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new UsageError(
        `invalid --publish "${text}": host port already published by --publish "${earlier}"`,
      );
    }
    seen.set(key, text);
    return {
      Proto: p.proto,
      ...(p.hostIp === undefined ? {} : { HostIp: p.hostIp }),
      HostPort: p.hostPort,
      ContainerPort: p.containerPort,
    };
  });
}
