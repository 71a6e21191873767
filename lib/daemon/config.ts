/** trellisd's flags, each with its default. Parsed once at the edge into a typed config. */
import { invalid } from "../common/errors.js";
import { DEFAULT_CACHE_SIZE } from "../dns/forwarder.js";
import { normalizeName } from "../dns/names.js";
import { parseUpstreamList, type Upstream } from "../dns/upstreams.js";
import {
  applyClusterFlag,
  CLUSTER_DEFAULTS,
  CLUSTER_USAGE,
  type ClusterConfig,
} from "../overlay/cluster-config.js";
import { applyDockerPluginFlag, DOCKER_PLUGIN_USAGE, type DockerPluginConfig } from "../plugin/config.js";

export interface DaemonConfig {
  /** where the store lives; default /var/lib/trellis */
  stateDir: string;
  /** the API's unix socket (mode 0660); default /run/trellis/trellis.sock */
  socket: string;
  /** pino level: trace, debug, info, warn, error, fatal */
  logLevel: string;
  /** how often to look for endpoints whose namespace vanished, in ms; 0 disables */
  sweepIntervalMs: number;
  /** embedded DNS: where other names are forwarded; undefined = the daemon's /etc/resolv.conf */
  dnsUpstreams?: Upstream[];
  /** embedded DNS: search domains stripped from names; undefined = the daemon's /etc/resolv.conf */
  dnsSearch?: string[];
  /** embedded DNS: forwarded answers cached at most; 0 disables the cache; undefined = 10 000 */
  dnsCacheSize?: number;
  /** overlay networks and the gossip cluster (lib/overlay/cluster-config.ts) */
  cluster: ClusterConfig;
  /** the Docker network/IPAM plugin protocol (lib/plugin/config.ts); undefined = not served */
  dockerPlugin?: DockerPluginConfig;
}

export const DEFAULTS: DaemonConfig = {
  stateDir: "/var/lib/trellis",
  socket: "/run/trellis/trellis.sock",
  logLevel: "info",
  sweepIntervalMs: 5000,
  cluster: CLUSTER_DEFAULTS,
};

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export const USAGE = `Usage: trellisd [--state-dir DIR] [--socket PATH] [--log-level LEVEL]

Runs the trellis network daemon in the foreground.

  --state-dir DIR     persistent state (default ${DEFAULTS.stateDir})
  --socket PATH       API socket, Docker Engine API compatible (default ${DEFAULTS.socket})
  --log-level LEVEL   ${LEVELS.join("|")} (default ${DEFAULTS.logLevel})
  --sweep-interval MS how often to drop endpoints whose namespace is gone (default ${DEFAULTS.sweepIntervalMs}, 0 = never)
  --dns-upstream IP[:PORT],...  embedded DNS forwards other names there (default: nameservers of /etc/resolv.conf)
  --dns-search DOMAIN,...       domains a trellis name may be asked with (default: search of /etc/resolv.conf)
  --dns-cache-size N            forwarded answers cached at most (default ${DEFAULT_CACHE_SIZE}, 0 = no cache)
${CLUSTER_USAGE}
${DOCKER_PLUGIN_USAGE}
  -h, --help          this help
  --version           print the version`;

export type ParsedArgs = { kind: "run"; config: DaemonConfig } | { kind: "help" } | { kind: "version" };

/** Digits only: Number() would also take " ", "1e3" and "0x10". */
function nonNegativeInt(flag: string, raw: string, what: string): number {
  if (!/^\d+$/.test(raw)) throw invalid(`invalid ${flag} "${raw}": ${what}`);
  return Number(raw);
}

export function parseDaemonArgs(argv: string[]): ParsedArgs {
  const config = { ...DEFAULTS, cluster: { ...CLUSTER_DEFAULTS, join: [] } };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h" || arg === "--help") return { kind: "help" };
    if (arg === "--version") return { kind: "version" };
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const take = (): string => {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === "") throw invalid(`flag ${flag} needs a value`);
      return value;
    };
    switch (flag) {
      case "--state-dir":
        config.stateDir = take();
        break;
      case "--socket":
        config.socket = take();
        break;
      case "--log-level": {
        const level = take();
        if (!LEVELS.includes(level))
          throw invalid(`invalid --log-level "${level}" (use ${LEVELS.join(", ")})`);
        config.logLevel = level;
        break;
      }
      case "--sweep-interval": {
        config.sweepIntervalMs = nonNegativeInt(flag, take(), "milliseconds >= 0");
        break;
      }
      case "--dns-upstream":
        config.dnsUpstreams = parseUpstreamList(take());
        break;
      case "--dns-search":
        config.dnsSearch = take()
          .split(",")
          .map(normalizeName)
          .filter((d) => d !== "");
        break;
      case "--dns-cache-size": {
        config.dnsCacheSize = nonNegativeInt(flag, take(), "an integer >= 0");
        break;
      }
      default:
        if (!applyClusterFlag(config.cluster, flag, take) && !applyDockerPluginFlag(config, flag, take))
          throw invalid(`unknown flag "${arg}"`);
    }
  }
  return { kind: "run", config };
}
