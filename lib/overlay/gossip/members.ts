/**
 * SWIM membership state: who is in the cluster, in which state, at which incarnation, and the
 * rules for changing that on alive / suspect / dead news.
 *
 *  - Incarnation numbers order news about one member: only the member itself increments its
 *    own, to refute a suspicion or death claim about it ("I am alive at incarnation i + 1").
 *  - alive(i) beats anything at a lower incarnation; suspect(i) and dead(i) beat alive(i).
 *  - A suspicion becomes a death only after a Lifeguard timeout (suspicion.ts), shrunk by
 *    independent confirmations.
 *  - dead from the member itself means it left gracefully ("left", not "dead").
 *  - Dead and left members stay listed for `deadNodeReclaimMs` (so a comeback is recognised and
 *    their hidden table entries reappear), then are reaped.
 * Every accepted change is re-broadcast (the epidemic), and reported to the host.
 */
import type { Clock } from "./clock.js";
import type { GossipConfig } from "./config.js";
import type { GossipLogger } from "./log.js";
import type { AliveMsg, DeadMsg, MemberSnapshot, MemberState, Message, SuspectMsg } from "./messages.js";
import { type Random, shuffle } from "./random.js";
import { Suspicion, suspicionBounds } from "./suspicion.js";

/** A member as the API reports it. */
export interface Member {
  name: string;
  addr: string;
  port: number;
  state: MemberState;
  incarnation: number;
  /** ms since we last heard from it directly (0 for ourselves, -1 if never). */
  lastContactMs: number;
}

interface MemberRecord {
  name: string;
  addr: string;
  port: number;
  state: MemberState;
  incarnation: number;
  /** Local ms of the last state change (starts the reap and gossip-to-the-dead windows). */
  changedAt: number;
  /** Local ms of the last packet or stream from it; undefined if never. */
  lastContact: number | undefined;
}

export interface MembershipHost {
  config: GossipConfig;
  clock: Clock;
  random: Random;
  log: GossipLogger;
  /** Queue a membership message for dissemination (keyed by member name). */
  broadcast(msg: Message, onDone?: () => void): void;
  /** Queue a membership message unless one about the same member is still being sent. */
  rebroadcast(msg: Message): void;
  /** A member appeared or changed state or address; `previous` is undefined for a new member. */
  changed(member: Member, previous: MemberState | undefined): void;
  /** We refuted news about ourselves; `declaredDown` when it said dead or left. */
  refuted(declaredDown: boolean): void;
}

export const isUp = (s: MemberState | undefined): boolean => s === "alive" || s === "suspect";

export class Membership {
  private readonly members = new Map<string, MemberRecord>();
  private readonly suspicions = new Map<string, Suspicion>();
  private probeOrder: string[] = [];
  private probeIndex = 0;
  /** Set while leaving: our own "left" is then news, not a claim to refute. */
  leaving = false;

  constructor(
    private readonly host: MembershipHost,
    addr: string,
    port: number,
  ) {
    const self = host.config.name;
    const now = host.clock.now();
    this.members.set(self, {
      name: self,
      addr,
      port,
      state: "alive",
      incarnation: 0,
      changedAt: now,
      lastContact: now,
    });
  }

  get self(): MemberRecord {
    return this.members.get(this.host.config.name)!;
  }

  /** Members in the list, any state, self included (what N means in the formulas). */
  get size(): number {
    return this.members.size;
  }

  state(name: string): MemberState | undefined {
    return this.members.get(name)?.state;
  }

  /** Where to reach a member, if known. */
  address(name: string): { addr: string; port: number; incarnation: number } | undefined {
    return this.members.get(name);
  }

  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((m) => this.view(m));
  }

  snapshots(): MemberSnapshot[] {
    return [...this.members.values()].map(({ name, addr, port, incarnation, state }) => ({
      name,
      addr,
      port,
      incarnation,
      state,
    }));
  }

  touch(name: string): void {
    const m = this.members.get(name);
    if (m) m.lastContact = this.host.clock.now();
  }

  /** Next member to probe: round-robin over a list reshuffled every round; alive or suspect only. */
  nextProbeTarget(): string | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeIndex < this.probeOrder.length) {
        const name = this.probeOrder[this.probeIndex++]!;
        if (isUp(this.members.get(name)?.state)) return name;
      }
      this.probeOrder = shuffle(
        this.others().filter((n) => isUp(this.state(n))),
        this.host.random,
      );
      this.probeIndex = 0;
    }
    return undefined;
  }

  /** Members that are up (alive or suspect), not ourselves. */
  upOthers(): string[] {
    return this.others().filter((n) => isUp(this.state(n)));
  }

  /** Dead (not left) members: reconnect candidates. */
  deadOthers(): string[] {
    return this.others().filter((n) => this.state(n) === "dead");
  }

  /** Gossip targets: members that are up, plus the recently dead so a wrong verdict gets refuted. */
  gossipCandidates(): string[] {
    const now = this.host.clock.now();
    const window = this.host.config.gossipToTheDeadMs;
    return this.others().filter((n) => {
      const m = this.members.get(n)!;
      return isUp(m.state) || (m.state === "dead" && now - m.changedAt < window);
    });
  }

  // ------------------------------------------------------------------------------ news rules

  handleAlive(a: AliveMsg): void {
    const self = this.self;
    if (a.name === self.name) {
      const differs = a.addr !== self.addr || a.port !== self.port;
      if (
        !this.leaving &&
        (a.incarnation > self.incarnation || (a.incarnation === self.incarnation && differs))
      ) {
        this.refute(a.incarnation, false);
      }
      return;
    }
    const m = this.members.get(a.name);
    if (!m) {
      const now = this.host.clock.now();
      const added: MemberRecord = { ...pick(a), state: "alive", changedAt: now, lastContact: undefined };
      this.members.set(a.name, added);
      this.host.broadcast(a);
      this.host.changed(this.view(added), undefined);
      return;
    }
    if (a.incarnation <= m.incarnation) return;
    const previous = m.state;
    const moved = m.addr !== a.addr || m.port !== a.port;
    this.clearSuspicion(m.name);
    Object.assign(m, pick(a));
    this.host.broadcast(a);
    if (previous !== "alive" || moved) this.transition(m, "alive", previous);
  }

  handleSuspect(s: SuspectMsg): void {
    const m = this.members.get(s.name);
    if (m && s.incarnation < m.incarnation) this.correctStale(m);
    if (!m || s.incarnation < m.incarnation || !isUp(m.state)) return;
    if (s.name === this.self.name) {
      if (!this.leaving) this.refute(s.incarnation, false);
      return;
    }
    if (m.state === "suspect" && s.incarnation === m.incarnation) {
      // Lifeguard: an independent confirmation shortens the timeout; pass it on so others count it too.
      if (this.suspicions.get(m.name)?.confirm(s.from)) this.host.broadcast(s);
      return;
    }
    // A suspicion at a higher incarnation means the member refuted the one we hold (we missed
    // the alive): ours is void, start over from the new one.
    const previous = m.state;
    this.clearSuspicion(m.name);
    m.incarnation = s.incarnation;
    const bounds = suspicionBounds(this.host.config, this.size);
    const suspicion = new Suspicion(this.host.clock, bounds, s.from, () =>
      this.suspicionExpired(m.name, s.incarnation),
    );
    this.suspicions.set(m.name, suspicion);
    this.host.broadcast(s);
    if (previous === "alive") this.transition(m, "suspect", previous);
  }

  handleDead(d: DeadMsg): void {
    const m = this.members.get(d.name);
    if (m && d.incarnation < m.incarnation) this.correctStale(m);
    if (!m || d.incarnation < m.incarnation || !isUp(m.state)) return;
    if (d.name === this.self.name && !this.leaving) {
      this.refute(d.incarnation, true);
      return;
    }
    const previous = m.state;
    this.clearSuspicion(m.name);
    m.incarnation = d.incarnation;
    this.host.broadcast(d);
    this.transition(m, d.from === d.name ? "left" : "dead", previous);
  }

  /**
   * Merges a peer's full member list (push-pull). A peer's "dead" becomes our suspicion, not a
   * verdict: the member gets a chance to refute (memberlist does the same).
   */
  mergeRemote(remote: MemberSnapshot[], from: string): void {
    for (const r of remote) {
      const { name, incarnation } = r;
      if (r.state === "alive") this.handleAlive({ type: "alive", ...pick(r) });
      else if (r.state === "left") this.handleDead({ type: "dead", name, incarnation, from: name });
      else if (!this.alreadySuspected(name, incarnation)) {
        // Another node's state is hearsay, not its own failed probe: it may start a suspicion
        // but must never count as a Lifeguard confirmation of one we hold.
        this.handleSuspect({ type: "suspect", name, incarnation, from });
      }
    }
  }

  private alreadySuspected(name: string, incarnation: number): boolean {
    const m = this.members.get(name);
    return m?.state === "suspect" && m.incarnation === incarnation;
  }

  /** Our own failed probe: start (or confirm) a suspicion. */
  suspect(name: string): void {
    const m = this.members.get(name);
    if (m) this.handleSuspect({ type: "suspect", name, incarnation: m.incarnation, from: this.self.name });
  }

  /** Graceful leave: our own "left" news (also broadcast). */
  leave(onSent: () => void): void {
    this.leaving = true;
    const self = this.self;
    const msg: DeadMsg = { type: "dead", name: self.name, incarnation: self.incarnation, from: self.name };
    this.host.broadcast(msg, onSent);
    this.transition(self, "left", "alive");
  }

  /** Removes dead/left members older than deadNodeReclaimMs; returns their names. */
  reap(): string[] {
    const now = this.host.clock.now();
    const reaped: string[] = [];
    for (const m of this.members.values()) {
      if (isUp(m.state) || m.name === this.self.name) continue;
      if (now - m.changedAt >= this.host.config.deadNodeReclaimMs) reaped.push(m.name);
    }
    for (const name of reaped) this.members.delete(name);
    return reaped;
  }

  stop(): void {
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
  }

  // ------------------------------------------------------------------------------- internals

  private refute(claimed: number, declaredDown: boolean): void {
    const self = this.self;
    self.incarnation = Math.max(self.incarnation, claimed) + 1;
    const { name, addr, port, incarnation } = self;
    this.host.log.info({ incarnation, declaredDown }, "gossip: refuting news about ourselves");
    this.host.broadcast({ type: "alive", name, incarnation, addr, port });
    this.host.refuted(declaredDown);
  }

  /**
   * Someone still spreads a suspicion or death older than what we know (it missed the
   * refutation: gossip targets are random, so one node can miss all of them). Spreading our
   * newer "alive" again reaches it long before its suspicion times out into a false death.
   */
  private correctStale(m: MemberRecord): void {
    if (m.state !== "alive") return;
    const { name, incarnation, addr, port } = m;
    this.host.rebroadcast({ type: "alive", name, incarnation, addr, port });
  }

  private suspicionExpired(name: string, incarnation: number): void {
    this.suspicions.delete(name);
    const m = this.members.get(name);
    if (m?.state !== "suspect" || m.incarnation !== incarnation) return;
    this.host.log.info({ member: name, incarnation }, "gossip: suspicion timed out, declaring dead");
    this.handleDead({ type: "dead", name, incarnation, from: this.self.name });
  }

  private clearSuspicion(name: string): void {
    this.suspicions.get(name)?.cancel();
    this.suspicions.delete(name);
  }

  private transition(m: MemberRecord, state: MemberState, previous: MemberState): void {
    m.state = state;
    m.changedAt = this.host.clock.now();
    this.host.changed(this.view(m), previous);
  }

  private others(): string[] {
    const self = this.self.name;
    return [...this.members.keys()].filter((n) => n !== self);
  }

  private view(m: MemberRecord): Member {
    const { name, addr, port, state, incarnation } = m;
    const now = this.host.clock.now();
    const lastContactMs =
      name === this.self.name ? 0 : m.lastContact === undefined ? -1 : now - m.lastContact;
    return { name, addr, port, state, incarnation, lastContactMs };
  }
}

function pick(a: { name: string; incarnation: number; addr: string; port: number }) {
  return { name: a.name, incarnation: a.incarnation, addr: a.addr, port: a.port };
}
