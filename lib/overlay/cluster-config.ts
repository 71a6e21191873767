/** trellisd's cluster flags (overlay networks, gossip on 7946), parsed once at the edge. */
import { invalid } from "../common/errors.js";
import { tryParseAddress } from "../ipam/cidr.js";

export type GossipProfileName = "default" | "lan" | "test";

export interface ClusterConfig {
  /** this host's underlay address: the VXLAN VTEP and the gossip address others reach; no default */
  advertiseAddr?: string;
  /** address the gossip sockets bind; default: advertiseAddr */
  bindAddr?: string;
  /** gossip port, UDP and TCP; default 7946 */
  gossipPort: number;
  /** seeds to join at start, HOST[:PORT]; default none (a cluster of one until someone joins) */
  join: string[];
  /** file with a base64 32-byte AES-256-GCM key; default none (gossip unencrypted) */
  gossipKeyFile?: string;
  /** unique node name; default: a name generated once and kept in the state dir */
  nodeName?: string;
  /** timer profile: "default" (LAN timers), "lan" or "test" (fast timers for labs and tests) */
  gossipProfile: GossipProfileName;
  /** ms between audits of the kernel's VXLAN FDB/neighbour entries against the table; 0 = never */
  auditIntervalMs: number;
}

export const CLUSTER_DEFAULTS: ClusterConfig = {
  gossipPort: 7946,
  join: [],
  gossipProfile: "default",
  auditIntervalMs: 10_000,
};

export const CLUSTER_USAGE = `  --advertise-addr IP          this host's underlay address (VXLAN VTEP, gossip); needed for overlay networks
  --join HOST[:PORT],...       cluster members to join at start (gossip port default 7946)
  --gossip-port N              gossip port, UDP and TCP (default 7946)
  --gossip-bind IP             address the gossip sockets bind (default: the advertise address)
  --gossip-key FILE            base64 32-byte key: gossip authenticated and encrypted (AES-256-GCM)
  --node-name NAME             unique node name (default: generated once, kept in the state dir)
  --gossip-profile P           default|lan|test timers (test: fast, for labs)
  --overlay-audit-interval MS  compare VXLAN FDB/neighbour entries with the table and repair (default 10000, 0 = never)`;

function ipv4(flag: string, raw: string): string {
  if (tryParseAddress(raw)?.family !== 4) throw invalid(`invalid ${flag} "${raw}": expected an IPv4 address`);
  return raw;
}

export function parseSeed(raw: string, defaultPort: number): string {
  const m = /^([^:]+)(?::(\d+))?$/.exec(raw.trim());
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!m?.[1] || port < 1 || port > 65535) throw invalid(`invalid cluster address "${raw}": use HOST[:PORT]`);
  return `${m[1]}:${port}`;
}

/** Applies one cluster flag; returns false when `flag` is not a cluster flag. */
export function applyClusterFlag(config: ClusterConfig, flag: string, value: () => string): boolean {
  switch (flag) {
    case "--advertise-addr":
      config.advertiseAddr = ipv4(flag, value());
      return true;
    case "--gossip-bind":
      config.bindAddr = ipv4(flag, value());
      return true;
    case "--gossip-port": {
      const raw = value();
      const port = Number(raw);
      if (!/^\d+$/.test(raw) || port < 1 || port > 65535)
        throw invalid(`invalid ${flag} "${raw}": a port 1-65535`);
      config.gossipPort = port;
      return true;
    }
    case "--join":
      config.join = value()
        .split(",")
        .filter((s) => s.trim() !== "")
        .map((s) => s.trim());
      return true;
    case "--gossip-key":
      config.gossipKeyFile = value();
      return true;
    case "--node-name": {
      const name = value();
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw invalid(`invalid ${flag} "${name}"`);
      config.nodeName = name;
      return true;
    }
    case "--gossip-profile": {
      const p = value();
      if (p !== "default" && p !== "lan" && p !== "test")
        throw invalid(`invalid ${flag} "${p}": default, lan or test`);
      config.gossipProfile = p;
      return true;
    }
    case "--overlay-audit-interval": {
      const raw = value();
      if (!/^\d+$/.test(raw)) throw invalid(`invalid ${flag} "${raw}": milliseconds >= 0`);
      config.auditIntervalMs = Number(raw);
      return true;
    }
    default:
      return false;
  }
}
