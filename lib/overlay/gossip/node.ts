/**
 * GossipNode: one member of the cluster. It wires the parts together and owns the timers:
 *   probe tick   (probeInterval × health)  SWIM failure detection, prober.ts
 *   gossip tick  (gossipInterval)          pending broadcasts to `gossipNodes` random members
 *   sync tick    (pushPullInterval)        anti-entropy with one live member, plus one reconnect
 *                                          attempt to a dead member (partition healing)
 *   reap tick    (reapInterval)            dead members and tombstones past their grace
 * Everything else reacts to packets and streams.
 */
import { formatAddress } from "./address.js";
import { Awareness } from "./awareness.js";
import { BroadcastQueue, retransmitLimit } from "./broadcast-queue.js";
import { type Clock, realClock, type Timer } from "./clock.js";
import { encodeMessage, framedSize } from "./codec.js";
import { type GossipConfig, type GossipOptions, resolveConfig } from "./config.js";
import { Emitter } from "./emitter.js";
import { GossipError } from "./errors.js";
import { Inbound } from "./inbound.js";
import type { Keyring } from "./keyring.js";
import type { GossipLogger } from "./log.js";
import { isUp, type Member, Membership } from "./members.js";
import type { MemberState, Message, WireRecord } from "./messages.js";
import { Prober } from "./prober.js";
import { pushPull } from "./push-pull.js";
import { pickRandom, type Random } from "./random.js";
import { emptyStats, type GossipStats } from "./stats.js";
import { ReplicatedTable } from "./table.js";
import type { Stream, Transport } from "./transport.js";
import { Wire } from "./wire.js";

export type NodeEvents = { member: (member: Member, previous: MemberState | undefined) => void };

/** Injectable time and randomness (simulations); production uses the defaults. */
export interface GossipDeps {
  clock?: Clock;
  random?: Random;
}

export class GossipNode {
  readonly config: GossipConfig;
  readonly table: ReplicatedTable;
  readonly keyring: Keyring | undefined;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly counters = emptyStats();
  private readonly events: Emitter<NodeEvents>;
  private readonly queue: BroadcastQueue;
  private readonly awareness: Awareness;
  private readonly membership: Membership;
  private readonly wire: Wire;
  private readonly prober: Prober;
  private readonly inbound: Inbound;
  private readonly timers = new Set<Timer>();
  private seeds: string[] = [];
  private phase: "new" | "running" | "stopped" = "new";
  private probing = false;

  constructor(
    options: GossipOptions,
    private readonly transport: Transport,
    private readonly log: GossipLogger,
    deps: GossipDeps = {},
  ) {
    this.config = resolveConfig(options);
    this.keyring = options.keyring;
    this.clock = deps.clock ?? realClock();
    this.random = deps.random ?? Math.random;
    this.events = new Emitter(log);
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.queue = new BroadcastQueue(() => retransmitLimit(this.config.retransmitMult, this.membership.size));
    this.membership = new Membership(this.membershipHost(), this.config.advertiseAddr, this.config.port);
    this.table = new ReplicatedTable(this.tableHost());
    this.wire = new Wire(
      this.config.name,
      transport,
      this.keyring,
      this.queue,
      this.counters,
      this.config.udpBufferSize,
    );
    this.prober = new Prober({
      ...this.shared(),
      awareness: this.awareness,
      membership: this.membership,
      stats: this.counters,
      sendPacket: (addr, messages) => this.wire.sendPacket(addr, messages),
      streamPing: (addr, target, ms) => this.streamPing(addr, target, ms),
    });
    this.inbound = new Inbound({
      config: this.config,
      log,
      wire: this.wire,
      membership: this.membership,
      table: this.table,
      prober: this.prober,
      stats: this.counters,
      sync: () => this.syncHost(),
      running: () => this.phase === "running",
      enqueueRecord: (rec) => this.enqueueRecord(rec),
    });
  }

  // ------------------------------------------------------------------------------ lifecycle

  /** Binds the transport and starts the timers. The node is then a cluster of one. */
  async start(): Promise<void> {
    if (this.phase !== "new") throw new GossipError("gossip: start() may be called once");
    this.transport.onPacket((bytes, from) => this.inbound.onPacket(bytes, from));
    this.transport.onStream((stream) => void this.inbound.onStream(stream));
    const { port } = await this.transport.listen({
      bindAddr: this.config.bindAddr,
      port: this.config.port,
      advertiseAddr: this.config.advertiseAddr,
      maxFrameBytes: this.config.maxStreamBytes,
    });
    this.membership.self.port = port;
    this.phase = "running";
    const c = this.config;
    // Random first offsets, so nodes started together do not tick in lockstep.
    this.every(
      () => this.awareness.scale(c.probeInterval),
      c.probeInterval > 0,
      () => this.probeTick(),
    );
    this.every(
      () => c.gossipInterval,
      c.gossipInterval > 0 && c.gossipNodes > 0,
      () => this.gossipTick(),
    );
    this.every(
      () => c.pushPullInterval,
      c.pushPullInterval > 0,
      () => this.syncTick(),
    );
    this.every(
      () => c.reapInterval,
      true,
      () => this.reapTick(),
    );
    this.log.info({ name: c.name, addr: this.address }, "gossip: started");
  }

  /**
   * Push-pull with every seed ("host:port"); resolves with how many answered, throws when none
   * did. The seeds are remembered: with no live member left, the sync tick retries them.
   */
  async join(seeds: readonly string[]): Promise<number> {
    this.assertRunning();
    const targets = seeds.filter((s) => s !== this.address);
    this.seeds = [...new Set([...this.seeds, ...targets])];
    const results = await Promise.allSettled(targets.map((s) => pushPull(this.syncHost(), s, true)));
    const reached = results.filter((r) => r.status === "fulfilled").length;
    if (reached === 0 && targets.length > 0) {
      const reasons = results.map(
        (r, i) => `${targets[i]}: ${r.status === "rejected" ? String(r.reason) : "ok"}`,
      );
      throw new GossipError(`gossip: join reached none of ${targets.length} seeds (${reasons.join("; ")})`);
    }
    this.log.info({ reached, seeds: targets.length }, "gossip: joined");
    return reached;
  }

  /** Broadcasts "left", waits up to `timeoutMs` for it to be sent, then stops. */
  async leave(timeoutMs: number): Promise<void> {
    if (this.phase !== "running") return;
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(timeoutMs, resolve);
      this.membership.leave(() => {
        timer.cancel();
        resolve();
      });
      if (this.membership.upOthers().length === 0) resolve();
      else this.gossipTick();
    });
    await this.stop();
  }

  /** Stops at once, without a goodbye (peers will detect the silence). Idempotent. */
  async stop(): Promise<void> {
    if (this.phase === "stopped") return;
    this.phase = "stopped";
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    this.prober.stop();
    this.membership.stop();
    this.queue.clear();
    await this.transport.close();
  }

  // ------------------------------------------------------------------------------------ API

  /** Every known member, self included, sorted by name. */
  members(): Member[] {
    return this.membership.list();
  }

  /** "addr:port" peers use for this node. */
  get address(): string {
    const s = this.membership.self;
    return formatAddress(s.addr, s.port);
  }

  get name(): string {
    return this.config.name;
  }

  stats(): GossipStats {
    return { ...this.counters, broadcastsQueued: this.queue.size, health: this.awareness.health };
  }

  on<E extends keyof NodeEvents>(event: E, listener: NodeEvents[E]): this {
    this.events.on(event, listener);
    return this;
  }

  off<E extends keyof NodeEvents>(event: E, listener: NodeEvents[E]): this {
    this.events.off(event, listener);
    return this;
  }

  // ---------------------------------------------------------------------------------- ticks

  private probeTick(): void {
    if (this.probing) return;
    const target = this.membership.nextProbeTarget();
    if (!target) return;
    this.probing = true;
    this.prober
      .probe(target)
      .catch((err: unknown) => this.log.error({ err, target }, "gossip: probe failed unexpectedly"))
      .finally(() => {
        this.probing = false;
      });
  }

  private gossipTick(): void {
    if (this.queue.size === 0) return;
    const targets = pickRandom(this.membership.gossipCandidates(), this.config.gossipNodes, this.random);
    for (const name of targets) {
      const m = this.membership.address(name)!;
      const addr = formatAddress(m.addr, m.port);
      this.wire.sendPacket(addr, []);
      const big = this.queue.takeOversized(this.wire.packetBudget, framedSize);
      if (big.length > 0) void this.sendOverStream(addr, big);
    }
  }

  private syncTick(): void {
    const up = this.membership.upOthers();
    const partner = pickRandom(up, 1, this.random)[0];
    if (partner) this.syncWith(partner);
    // Reconnect: a dead member may be alive behind a healed partition; it refutes once reached.
    const dead = pickRandom(this.membership.deadOthers(), 1, this.random)[0];
    if (dead) this.syncWith(dead);
    const seed = up.length === 0 ? pickRandom(this.seeds, 1, this.random)[0] : undefined;
    if (seed) this.runSync(seed);
  }

  private reapTick(): void {
    for (const name of this.membership.reap()) {
      this.log.info({ member: name }, "gossip: reaped member");
      this.table.purgeOwner(name);
    }
    this.table.reap();
  }

  private syncWith(name: string): void {
    const m = this.membership.address(name)!;
    this.runSync(formatAddress(m.addr, m.port));
  }

  private runSync(addr: string): void {
    pushPull(this.syncHost(), addr, false)
      .then(() => this.counters.pushPulls++)
      .catch((err: unknown) => {
        this.counters.pushPullsFailed++;
        this.log.debug({ peer: addr, err: String(err) }, "gossip: push-pull failed");
      });
  }

  // ------------------------------------------------------------------------------- sending

  private async streamPing(addr: string, target: string, timeoutMs: number): Promise<boolean> {
    if (timeoutMs <= 0 || this.phase !== "running") return false;
    let stream: Stream | undefined;
    try {
      stream = await this.transport.openStream(addr, timeoutMs);
      this.counters.streamsOpened++;
      const seq = Math.floor(this.random() * 0xffffffff);
      await this.wire.writeFrame(stream, [{ type: "ping", seq, target }]);
      const env = await this.wire.readFrame(stream, timeoutMs);
      return env.from === target && env.messages.some((m) => m.type === "ack" && m.seq === seq);
    } catch {
      return false;
    } finally {
      stream?.close();
    }
  }

  private async sendOverStream(addr: string, encoded: Uint8Array[]): Promise<void> {
    let stream: Stream | undefined;
    try {
      stream = await this.transport.openStream(addr, this.config.tcpTimeout);
      this.counters.streamsOpened++;
      await this.wire.writeFrame(stream, [], encoded);
    } catch (err) {
      this.log.debug({ peer: addr, err: String(err) }, "gossip: stream broadcast failed");
    } finally {
      stream?.close();
    }
  }

  private enqueueRecord(rec: WireRecord): void {
    this.queue.enqueue(`t/${rec.keyspace}/${rec.key}`, encodeMessage({ type: "entry", record: rec }));
  }

  // --------------------------------------------------------------------------------- wiring

  private every(interval: () => number, enabled: boolean, fn: () => void): void {
    if (!enabled) return;
    const schedule = (ms: number): void => {
      const timer = this.clock.setTimer(ms, () => {
        this.timers.delete(timer);
        if (this.phase !== "running") return;
        try {
          fn();
        } catch (err) {
          this.log.error({ err }, "gossip: periodic task failed");
        }
        schedule(interval());
      });
      this.timers.add(timer);
    };
    schedule(Math.floor(this.random() * interval()));
  }

  private assertRunning(): void {
    if (this.phase !== "running") throw new GossipError("gossip: node is not running (call start() first)");
  }

  private shared() {
    return { config: this.config, clock: this.clock, random: this.random, log: this.log };
  }

  private membershipHost() {
    return {
      ...this.shared(),
      broadcast: (msg: Message, onDone?: () => void) => {
        if (msg.type === "alive" || msg.type === "suspect" || msg.type === "dead") {
          this.queue.enqueue(`m/${msg.name}`, encodeMessage(msg), onDone);
        }
      },
      rebroadcast: (msg: Message) => {
        if (msg.type === "alive" && !this.queue.has(`m/${msg.name}`)) {
          this.queue.enqueue(`m/${msg.name}`, encodeMessage(msg));
        }
      },
      changed: (member: Member, previous: MemberState | undefined) => {
        this.log.debug({ member: member.name, state: member.state, previous }, "gossip: member changed");
        this.table.ownerChanged(member.name, isUp(previous));
        this.events.emit("member", member, previous);
      },
      refuted: (declaredDown: boolean) => {
        this.counters.refutations++;
        this.awareness.apply(1);
        // We were declared gone and our entries hidden; say again what we own.
        if (declaredDown) for (const rec of this.table.ownLive()) this.enqueueRecord(rec);
      },
    };
  }

  private tableHost() {
    return {
      self: this.config.name,
      clock: this.clock,
      log: this.log,
      maxValueBytes: this.config.maxValueBytes,
      tombstoneGraceMs: this.config.tombstoneGraceMs,
      isOwnerLive: (owner: string) => owner === this.config.name || isUp(this.membership.state(owner)),
      isOwnerKnown: (owner: string) => this.membership.state(owner) !== undefined,
      broadcast: (rec: WireRecord) => this.enqueueRecord(rec),
    };
  }

  private syncHost() {
    return {
      config: this.config,
      transport: this.transport,
      wire: this.wire,
      membership: this.membership,
      table: this.table,
      stats: this.counters,
      touch: (name: string) => this.membership.touch(name),
    };
  }
}
