/**
 * The port flags of `service create`, and how `service ls` shows a service's ports.
 *   -p/--publish [mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp]
 *   -p/--publish published=P,target=T[,protocol=tcp|udp][,mode=ingress|host]   (Docker's long form)
 *   --port TARGET[/tcp|udp]     served at the VIP only, published nowhere
 * Unlike Docker, a published port is never picked for the user: a port without one is `--port`.
 */
import { flagValue } from "./args.js";
import { UsageError } from "./errors.js";
import { parsePort, parseProto } from "./publish.js";
import type { ServicePortWire } from "./wire.js";

export const SERVICE_PUBLISH_SYNTAX = "[mode=ingress|host,]PUBLISHED:TARGET[/tcp|udp]";
export const VIP_PORT_SYNTAX = "TARGET[/tcp|udp]";

type Mode = NonNullable<ServicePortWire["PublishMode"]>;

const LONG_KEYS = ["published", "target", "protocol", "mode"] as const;
type LongKey = (typeof LONG_KEYS)[number];

function parseMode(text: string): Mode {
  if (text === "ingress" || text === "host") return text;
  throw new Error(`mode "${text}" must be ingress or host`);
}

/** `TARGET[/proto]` or `PUBLISHED:TARGET[/proto]`, split into its parts. */
function splitProto(text: string): { ports: string[]; proto: ServicePortWire["Protocol"] } {
  const slash = text.indexOf("/");
  return {
    ports: (slash === -1 ? text : text.slice(0, slash)).split(":"),
    proto: slash === -1 ? "tcp" : parseProto(text.slice(slash + 1)),
  };
}

/** The comma-separated fields: `key=value` ones by key, and at most one without `=`. */
function splitFields(text: string): { keyed: Map<LongKey, string>; bare?: string } {
  const keyed = new Map<LongKey, string>();
  let bare: string | undefined;
  for (const field of text.split(",")) {
    const eq = field.indexOf("=");
    if (eq === -1) {
      if (bare !== undefined) throw new Error(`expected one ${SERVICE_PUBLISH_SYNTAX}`);
      bare = field;
      continue;
    }
    const key = field.slice(0, eq).trim().toLowerCase() as LongKey;
    if (!LONG_KEYS.includes(key)) {
      throw new Error(`unknown field "${field.slice(0, eq)}" (expected ${LONG_KEYS.join(", ")})`);
    }
    if (keyed.has(key)) throw new Error(`field "${key}" given twice`);
    keyed.set(key, field.slice(eq + 1));
  }
  return bare === undefined ? { keyed } : { keyed, bare };
}

const VIP_HINT = "use --port TARGET for a port served at the VIP only";

function shortForm(bare: string, mode: Mode): ServicePortWire {
  const { ports, proto } = splitProto(bare);
  if (ports.length !== 2) {
    throw new Error(`expected ${SERVICE_PUBLISH_SYNTAX}${ports.length === 1 ? ` (${VIP_HINT})` : ""}`);
  }
  return {
    Protocol: proto,
    TargetPort: parsePort("target", ports[1]!),
    PublishedPort: parsePort("published", ports[0]!),
    PublishMode: mode,
  };
}

function longForm(keyed: Map<LongKey, string>, mode: Mode): ServicePortWire {
  const target = keyed.get("target");
  const published = keyed.get("published");
  if (target === undefined) throw new Error("missing field target=");
  if (published === undefined) throw new Error(`missing field published= (${VIP_HINT})`);
  const protocol = keyed.get("protocol");
  return {
    Protocol: protocol === undefined ? "tcp" : parseProto(protocol),
    TargetPort: parsePort("target", target),
    PublishedPort: parsePort("published", published),
    PublishMode: mode,
  };
}

/** One -p value. Throws an Error whose message is the reason; the caller names the flag. */
export function parseServicePublish(text: string): ServicePortWire {
  const { keyed, bare } = splitFields(text);
  const modeText = keyed.get("mode");
  const mode = modeText === undefined ? "ingress" : parseMode(modeText);
  if (bare === undefined) return longForm(keyed, mode);
  const extra = [...keyed.keys()].find((k) => k !== "mode");
  if (extra !== undefined) throw new Error(`${extra}= cannot be combined with PUBLISHED:TARGET`);
  return shortForm(bare, mode);
}

/** One --port value. */
export function parseVipPort(text: string): ServicePortWire {
  const { ports, proto } = splitProto(text);
  if (ports.length !== 1) throw new Error(`expected ${VIP_PORT_SYNTAX} (use --publish to publish a port)`);
  return { Protocol: proto, TargetPort: parsePort("target", ports[0]!) };
}

/**
 * All port flags, -p first; refuses what the daemon would (a published port twice, a --port whose
 * target another flag already serves at the VIP) so a typo costs no round trip.
 */
export function parseServicePortFlags(
  publish: readonly string[],
  vipOnly: readonly string[],
): ServicePortWire[] {
  const published = new Map<string, string>();
  const targets = new Map<string, string>();
  const parsed: Array<readonly [string, ServicePortWire]> = [
    ...publish.map(
      (text) => [`--publish "${text}"`, flagValue("--publish", text, parseServicePublish)] as const,
    ),
    ...vipOnly.map((text) => [`--port "${text}"`, flagValue("--port", text, parseVipPort)] as const),
  ];
  for (const [flag, p] of parsed) {
    const target = `${p.TargetPort}/${p.Protocol}`;
    if (p.PublishedPort !== undefined) {
      const key = `${p.PublishedPort}/${p.Protocol}`;
      const earlier = published.get(key);
      if (earlier !== undefined) {
        throw new UsageError(`invalid ${flag}: published port ${key} already used by ${earlier}`);
      }
      published.set(key, flag);
    } else if (targets.has(target)) {
      throw new UsageError(
        `invalid ${flag}: VIP-only target port ${target} duplicates ${targets.get(target)}`,
      );
    }
    if (!targets.has(target)) targets.set(target, flag);
  }
  return parsed.map(([, p]) => p);
}

/** How `service ls` shows a port: `*:8080->80/tcp` (ingress), `host:8080->80/tcp`, `80/tcp` (VIP only). */
export function formatServicePort(p: {
  Protocol: string;
  TargetPort: number;
  PublishedPort?: number;
  PublishMode?: string;
}): string {
  const target = `${p.TargetPort}/${p.Protocol}`;
  if (p.PublishedPort === undefined) return target;
  return `${p.PublishMode === "host" ? "host" : "*"}:${p.PublishedPort}->${target}`;
}
