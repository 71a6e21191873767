/**
 * A whole cluster in one process, on a MemoryNetwork and a VirtualClock: what the protocol tests
 * and `bench/gossip-sim.ts` drive. Deterministic for a given seed (node randomness derives from
 * it). Not used by the daemon.
 */
import { VirtualClock } from "./clock.js";
import type { GossipTunables } from "./config.js";
import type { Keyring } from "./keyring.js";
import { silentLogger } from "./log.js";
import { MemoryNetwork } from "./memory-transport.js";
import type { MemberState } from "./messages.js";
import { GossipNode } from "./node.js";
import { deriveSeed, seededRandom } from "./random.js";

export interface SimOptions {
  n: number;
  seed?: number;
  /** Datagram loss probability. */
  loss?: number;
  latencyMs?: { min: number; max: number };
  tunables?: Partial<GossipTunables>;
  /** Keyring for node i (undefined = plaintext). */
  keyring?: (i: number) => Keyring | undefined;
}

/** A death reported for a node the simulation never stopped. */
export interface FalseDeath {
  observer: string;
  victim: string;
  at: number;
}

export class SimCluster {
  readonly clock = new VirtualClock();
  readonly net: MemoryNetwork;
  readonly nodes: GossipNode[] = [];
  /** Nodes the test stopped on purpose; deaths of anyone else are false. */
  readonly stopped = new Set<string>();
  readonly falseDeaths: FalseDeath[] = [];
  private readonly seed: number;

  constructor(private readonly options: SimOptions) {
    this.seed = options.seed ?? 1;
    this.net = new MemoryNetwork({
      clock: this.clock,
      seed: this.seed,
      loss: options.loss ?? 0,
      latencyMs: options.latencyMs ?? { min: 1, max: 3 },
    });
    for (let i = 0; i < options.n; i++) this.nodes.push(this.makeNode(i));
  }

  static nameOf(i: number): string {
    return `node-${String(i).padStart(3, "0")}`;
  }

  static addrOf(i: number): string {
    return `10.0.${i >> 8}.${(i & 255) + 1}`;
  }

  /** The "addr:port" of node i. */
  address(i: number): string {
    return `${SimCluster.addrOf(i)}:7946`;
  }

  /** Builds node i (again, e.g. to restart it); does not start it. */
  makeNode(i: number, keyring = this.options.keyring?.(i)): GossipNode {
    const name = SimCluster.nameOf(i);
    const node = new GossipNode(
      { ...this.options.tunables, name, advertiseAddr: SimCluster.addrOf(i), port: 7946, keyring },
      this.net.transport(),
      silentLogger(),
      { clock: this.clock, random: seededRandom(deriveSeed(this.seed, name)) },
    );
    node.on("member", (m) => {
      if ((m.state === "dead" || m.state === "left") && !this.stopped.has(m.name)) {
        this.falseDeaths.push({ observer: name, victim: m.name, at: this.clock.now() });
      }
    });
    return node;
  }

  /** Runs the virtual clock until `promise` settles (or `maxMs` pass) and returns its outcome. */
  async drive<T>(promise: Promise<T>, maxMs = 60_000): Promise<T> {
    let done = false;
    const tracked = promise.finally(() => {
      done = true;
    });
    tracked.catch(() => {});
    await this.clock.runUntil(() => done, maxMs);
    return tracked;
  }

  /** Starts every node and joins each to node 0 (one after another, as daemons would boot). */
  async startAll(): Promise<void> {
    for (const node of this.nodes) await this.drive(node.start());
    for (let i = 1; i < this.nodes.length; i++) await this.drive(this.nodes[i]!.join([this.address(0)]));
  }

  /** Advances until every running node sees every running node alive (or `maxMs`); ms or -1. */
  converge(maxMs = 30_000): Promise<number> {
    return this.clock.runUntil(() => this.allSeeAllAlive(), maxMs);
  }

  running(): GossipNode[] {
    return this.nodes.filter((n) => !this.stopped.has(n.name));
  }

  allSeeAllAlive(): boolean {
    const live = this.running();
    return live.every((node) => {
      const states = new Map(node.members().map((m) => [m.name, m.state]));
      return live.every((other) => states.get(other.name) === "alive");
    });
  }

  /** True when every running node has the same table digest. */
  tablesConverged(): boolean {
    const digests = new Set(this.running().map((n) => n.table.digest()));
    return digests.size === 1;
  }

  /** True when every running node other than `name` lists it in `state`. */
  seenAs(name: string, state: MemberState): boolean {
    return this.running()
      .filter((n) => n.name !== name)
      .every((n) => n.members().find((m) => m.name === name)?.state === state);
  }

  /** True when no running node lists another running node as dead or left. */
  noneDeclaredDown(): boolean {
    const live = new Set(this.running().map((n) => n.name));
    return this.running().every((n) =>
      n.members().every((m) => !live.has(m.name) || m.state === "alive" || m.state === "suspect"),
    );
  }

  /** True when every running node sees (keyspace, key) live, optionally with this owner. */
  visibleEverywhere(keyspace: string, key: string, owner?: string): boolean {
    return this.running().every((n) => {
      const e = n.table.get(keyspace, key);
      return e !== undefined && !e.deleted && (owner === undefined || e.owner === owner);
    });
  }

  /** True when no running node sees (keyspace, key) live. */
  goneEverywhere(keyspace: string, key: string): boolean {
    return this.running().every((n) => n.table.get(keyspace, key)?.deleted !== false);
  }

  /** Replaces node i by a fresh process with the same name (a restart), started and joined to `seed`. */
  async restart(i: number, seed = 0): Promise<GossipNode> {
    await this.nodes[i]!.stop();
    const node = this.makeNode(i);
    this.nodes[i] = node;
    this.stopped.delete(node.name);
    await this.drive(node.start());
    await this.drive(node.join([this.address(seed)]));
    return node;
  }

  /** Stops node i without a goodbye (a crash). */
  async kill(i: number): Promise<void> {
    const node = this.nodes[i]!;
    this.stopped.add(node.name);
    await node.stop();
  }

  async stopAll(): Promise<void> {
    for (const node of this.nodes) {
      this.stopped.add(node.name);
      await node.stop();
    }
  }
}
