/**
 * Every gossip parameter, documented where it is declared: unit, meaning, trade-off, what 0 means.
 *
 * The defaults target the trellis underlay: a LAN (RTT well under 5 ms) of up to ~100 hosts, with
 * the goals: an entry reaches every node of a 50-node cluster within 1 s (p99), a dead
 * node is removed everywhere within 5 s, and 10 % packet loss causes no false deaths. The
 * arithmetic behind each default is on the field; `bench/gossip-sim.ts` measures the result.
 * Profiles are deltas from the defaults, so a changed default shows up everywhere at once.
 */
import { invalid } from "../../common/errors.js";
import type { Keyring } from "./keyring.js";

export interface GossipTunables {
  /**
   * ms between failure-detection probes of one member (round-robin). Default 250.
   * Detection time scales with it: a dead node is first probed within ~1 interval (every node
   * probes one member per interval, so the cluster as a whole probes each member about once per
   * interval), and the suspicion timeout below is a multiple of it. 250 ms gives ~2-3 s to "dead
   * everywhere" at N=50 against the 5 s goal; cost is 4 small ping/ack pairs per node per second.
   * Memberlist's 1 s LAN default would put N=50 detection at ~8 s. 0 disables probing (no failure
   * detection at all; only for tests of other parts).
   */
  probeInterval: number;
  /**
   * ms to wait for a direct ack before asking `indirectChecks` others to probe. Default 100.
   * Must exceed the LAN RTT plus the event-loop stalls of a busy daemon (GC, crypto); too small
   * turns slowness into suspicion, too large delays detection. Scaled by local health (see
   * `awarenessMaxMultiplier`). Must be < probeInterval. 0 is invalid.
   */
  probeTimeout: number;
  /**
   * Members asked to probe a target on our behalf when the direct probe times out. Default 3.
   * More paths make one lossy link (ours or the target's) less likely to cause a suspicion: at
   * 10 % loss a probe fails only if the direct round trip and all k four-hop indirect paths fail
   * (~0.19 × 0.34^3 ≈ 0.8 %). 0 disables indirect probing.
   */
  indirectChecks: number;
  /**
   * Suspicion timeout multiplier. Default 4. The minimum suspicion time is
   * suspicionMult × max(1, log10(N)) × probeInterval (N=50: 1.7 s): the time a wrongly suspected
   * node has to hear the rumour and refute it. It also sets how many independent confirmations
   * shrink the timeout to that minimum: suspicionMult − 2 (Lifeguard). 0 declares a node dead as
   * soon as one probe fails (no suspicion; not recommended).
   */
  suspicionMult: number;
  /**
   * Upper bound of the suspicion timeout, as a multiple of the minimum. Default 6. A suspicion
   * nobody else confirms starts at the maximum and shrinks toward the minimum with each
   * confirmation, so one node with a bad network (the only suspecter) gives its victims a long
   * time to refute, while a node many peers see as silent dies at the minimum. Must be ≥ 1
   * (1 = no Lifeguard acceleration, fixed timeout).
   */
  suspicionMaxTimeoutMult: number;
  /**
   * Each broadcast (membership change, table entry) is sent retransmitMult × ceil(log10(N + 1))
   * times by every node that learns it. Default 6 (N=50: 12 sends per node). Gossip targets are
   * random, so a node receives an update ~limit times on average and misses it entirely with
   * probability ≈ e^(−limit × (1 − loss)); at 4 (memberlist's value) that was ~1 update in 300
   * in the N=50 simulation, which then waited for push-pull (seconds); at 6 none in 900. Costs
   * bytes only while updates flow. 0 disables UDP dissemination; updates then travel only by
   * push-pull (slow but still convergent).
   */
  retransmitMult: number;
  /**
   * ms between gossip rounds: pending broadcasts sent to `gossipNodes` random members, apart
   * from what piggy-backs on probes. Default 100. Propagation is epidemic, roughly
   * log_(gossipNodes+1)(N) rounds (N=50: ~3 rounds ≈ 300 ms, p99 well under 1 s). Idle clusters
   * send nothing on this tick. 0 disables the gossip tick (dissemination on probe traffic only,
   * ~probeInterval per hop).
   */
  gossipInterval: number;
  /** Members sent to per gossip round (fanout). Default 3. 0 disables the gossip tick. */
  gossipNodes: number;
  /**
   * ms a dead member still receives gossip, so a node wrongly declared dead hears it and
   * refutes. Default 10000. 0 never gossips to dead members (they can still rejoin by push-pull).
   */
  gossipToTheDeadMs: number;
  /**
   * ms between full-state TCP exchanges with one random live member (anti-entropy): digests are
   * compared, only differing table buckets travel. Default 10000. This bounds how long a node
   * that missed a broadcast stays wrong; each tick also retries one dead member (partition
   * healing) and, with no live member at all, the join seeds. 0 disables periodic push-pull
   * (join still uses it; a missed update may then stay missed).
   */
  pushPullInterval: number;
  /**
   * ms a table tombstone (deleted entry) is kept before it is reaped. Default 300000 (5 min).
   * It must outlast the time any node could still hold the live version (a partition, a node
   * that missed the delete) or the delete can be undone by anti-entropy: with push-pull every
   * 10 s, 5 min is ~30 rounds. An owner that is alive re-deletes a resurrected entry of its own,
   * so the risk is limited to entries of dead owners. 0 reaps tombstones on the next sweep.
   */
  tombstoneGraceMs: number;
  /**
   * ms a dead or left member stays in the member list (and its hidden table entries in the
   * table) before both are reaped. Default 900000 (15 min). While listed, a partitioned or
   * restarted node rejoins by itself (periodic reconnect) and its entries reappear instantly;
   * after, it needs a join. 0 reaps on the next sweep.
   */
  deadNodeReclaimMs: number;
  /** ms between sweeps that reap tombstones and dead members. Default 1000. Must be > 0. */
  reapInterval: number;
  /**
   * Maximum bytes of one UDP datagram we send, after encryption. Default 1400 (fits a 1500 MTU
   * underlay with IP/UDP headers and room to spare). Broadcasts that do not fit travel over TCP.
   * Must be ≥ 512.
   */
  udpBufferSize: number;
  /** ms allowed for a TCP connect plus one request/response on it. Default 5000. Must be > 0. */
  tcpTimeout: number;
  /**
   * Largest TCP frame accepted, bytes. Default 33554432 (32 MiB): one push-pull carries the
   * whole table on join. Larger frames are refused before buffering. Must be ≥ udpBufferSize.
   */
  maxStreamBytes: number;
  /** Largest table value, bytes (encoded). Default 65536. Larger set() calls throw. */
  maxValueBytes: number;
  /**
   * Lifeguard local health: probe timeout and interval are multiplied by (score + 1), score in
   * [0, awarenessMaxMultiplier − 1], raised by our own failed probes and refutations, lowered by
   * successful ones. A node whose own network or CPU is starved slows down instead of accusing
   * healthy peers. Default 8. 1 disables it.
   */
  awarenessMaxMultiplier: number;
  /**
   * Also try a TCP ping when a UDP probe fails. Default true. TCP retransmits, so under heavy UDP
   * loss a live node is still reached; costs a connection per failed probe.
   */
  tcpFallbackPing: boolean;
}

/** Everything `new GossipNode()` accepts: identity, addresses, keyring and any tunable. */
export interface GossipOptions extends Partial<GossipTunables> {
  /** Unique node name, stable across restarts of the same host (e.g. the host's ID). */
  name: string;
  /** Address other nodes reach us at (IP of the underlay interface). */
  advertiseAddr: string;
  /** Address to bind; default advertiseAddr. "0.0.0.0" binds every IPv4 interface. */
  bindAddr?: string;
  /** UDP and TCP port, default 7946. 0 = any free port (tests); advertised as the bound port. */
  port?: number;
  /** Keys for AES-256-GCM; without a keyring everything travels in plaintext. */
  keyring?: Keyring;
}

export interface GossipConfig extends GossipTunables {
  readonly name: string;
  readonly advertiseAddr: string;
  readonly bindAddr: string;
  readonly port: number;
}

export const DEFAULT_PORT = 7946;

export const DEFAULTS: Readonly<GossipTunables> = Object.freeze({
  probeInterval: 250,
  probeTimeout: 100,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 6,
  gossipInterval: 100,
  gossipNodes: 3,
  gossipToTheDeadMs: 10_000,
  pushPullInterval: 10_000,
  tombstoneGraceMs: 300_000,
  deadNodeReclaimMs: 900_000,
  reapInterval: 1_000,
  udpBufferSize: 1400,
  tcpTimeout: 5_000,
  maxStreamBytes: 32 * 1024 * 1024,
  maxValueBytes: 64 * 1024,
  awarenessMaxMultiplier: 8,
  tcpFallbackPing: true,
});

/**
 * The trellis LAN profile. The defaults are already tuned for the LAN the overlay runs on, so
 * the delta is empty; the function exists so callers name the environment they assume, and a
 * future default aimed elsewhere does not silently change LAN behaviour.
 */
export function lanProfile(): GossipTunables {
  return { ...DEFAULTS };
}

/**
 * Fast timers for real-socket tests: detection in ~1 s on 3 nodes, anti-entropy every second,
 * reaping within seconds. Not for production: 40 ms probe timeouts fail under any real load.
 */
export function testProfile(): GossipTunables {
  return {
    ...DEFAULTS,
    probeInterval: 100,
    probeTimeout: 40,
    gossipInterval: 30,
    gossipToTheDeadMs: 2_000,
    pushPullInterval: 1_000,
    tombstoneGraceMs: 5_000,
    deadNodeReclaimMs: 10_000,
    reapInterval: 200,
    tcpTimeout: 1_000,
  };
}

/** Merges options over the defaults and validates once, at the edge. Throws INVALID_ARGUMENT. */
export function resolveConfig(options: GossipOptions): GossipConfig {
  const { keyring: _keyring, ...rest } = options;
  const config: GossipConfig = {
    ...DEFAULTS,
    ...definedOnly(rest),
    name: options.name,
    advertiseAddr: options.advertiseAddr,
    bindAddr: options.bindAddr ?? options.advertiseAddr,
    port: options.port ?? DEFAULT_PORT,
  };
  validate(config);
  return Object.freeze(config);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function validate(c: GossipConfig): void {
  if (!c.name || c.name.length > 255) throw invalid("gossip: name must be 1-255 characters");
  if (!c.advertiseAddr) throw invalid("gossip: advertiseAddr is required");
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535) {
    throw invalid(`gossip: port ${c.port} is out of range 0-65535`);
  }
  const nonNegative: Array<keyof GossipTunables> = [
    "probeInterval",
    "indirectChecks",
    "suspicionMult",
    "retransmitMult",
    "gossipInterval",
    "gossipNodes",
    "gossipToTheDeadMs",
    "pushPullInterval",
    "tombstoneGraceMs",
    "deadNodeReclaimMs",
  ];
  for (const key of nonNegative) {
    const v = c[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw invalid(`gossip: ${key} must be a number ≥ 0, got ${String(v)}`);
    }
  }
  atLeast(c, "probeTimeout", 1);
  atLeast(c, "suspicionMaxTimeoutMult", 1);
  atLeast(c, "reapInterval", 1);
  atLeast(c, "udpBufferSize", 512);
  atLeast(c, "tcpTimeout", 1);
  atLeast(c, "maxStreamBytes", c.udpBufferSize);
  atLeast(c, "maxValueBytes", 1);
  atLeast(c, "awarenessMaxMultiplier", 1);
  if (c.probeInterval > 0 && c.probeTimeout >= c.probeInterval) {
    throw invalid("gossip: probeTimeout must be less than probeInterval");
  }
}

function atLeast(c: GossipConfig, key: keyof GossipTunables, min: number): void {
  const v = c[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v < min) {
    throw invalid(`gossip: ${key} must be a number ≥ ${min}, got ${String(v)}`);
  }
}
