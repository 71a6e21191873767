/**
 * SWIM failure detection, one probe at a time:
 *   1. ping the target; wait probeTimeout (× local health) for its ack;
 *   2. on silence, ask `indirectChecks` random members to ping it for us (they answer ack, or
 *      nack when they cannot reach it either), and try a TCP ping in parallel;
 *   3. nothing by the end of the probe interval → suspect it.
 * Lifeguard: missed nacks mean *our* network is the problem, so they lower our health (slowing us
 * down) rather than counting against the target alone.
 */

import { formatAddress } from "./address.js";
import type { Awareness } from "./awareness.js";
import type { Clock, Timer } from "./clock.js";
import type { GossipConfig } from "./config.js";
import type { Membership } from "./members.js";
import type { AckMsg, IndirectPingMsg, Message, NackMsg, PingMsg } from "./messages.js";
import { pickRandom, type Random } from "./random.js";
import type { GossipStats } from "./stats.js";

export interface ProberHost {
  config: GossipConfig;
  clock: Clock;
  random: Random;
  awareness: Awareness;
  membership: Membership;
  stats: GossipStats;
  sendPacket(addr: string, messages: Message[]): void;
  /** TCP ping; resolves true on an ack within `timeoutMs`. */
  streamPing(addr: string, target: string, timeoutMs: number): Promise<boolean>;
}

/** Waits for the ack (and counts nacks) of one sequence number. */
class AckWaiter {
  acked = false;
  nacks = 0;
  private wake: ((acked: boolean) => void) | undefined;
  private timer: Timer | undefined;

  constructor(private readonly clock: Clock) {}

  ack(): void {
    this.acked = true;
    this.settle();
  }

  /** Resolves true as soon as acked, false when `ms` pass first. */
  wait(ms: number): Promise<boolean> {
    if (this.acked) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.clock.setTimer(ms, () => this.settle());
    });
  }

  settle(): void {
    this.timer?.cancel();
    const wake = this.wake;
    this.wake = undefined;
    wake?.(this.acked);
  }
}

export class Prober {
  private seq: number;
  private readonly waiters = new Map<number, AckWaiter>();
  private stopped = false;

  constructor(private readonly host: ProberHost) {
    // A random start makes a late ack from a previous run of this node useless, not misleading.
    this.seq = Math.floor(host.random() * 0xffffffff);
  }

  /** Probes one member end to end; resolves when the probe is decided. */
  async probe(target: string): Promise<void> {
    const { config, awareness, membership, stats } = this.host;
    const member = membership.address(target);
    if (!member) return;
    const addr = formatAddress(member.addr, member.port);
    const timeout = awareness.scale(config.probeTimeout);
    const interval = awareness.scale(config.probeInterval);
    stats.probes++;
    const { seq, waiter } = this.expect();
    try {
      this.host.sendPacket(addr, [{ type: "ping", seq, target }]);
      if (await waiter.wait(timeout)) {
        awareness.apply(-1);
        return;
      }
      if (this.stopped) return;
      const helpers = pickRandom(
        membership.upOthers().filter((n) => n !== target),
        config.indirectChecks,
        this.host.random,
      );
      for (const h of helpers) {
        const via = membership.address(h)!;
        const req: IndirectPingMsg = {
          type: "indirect-ping",
          seq,
          target,
          addr: member.addr,
          port: member.port,
          nack: true,
        };
        this.host.sendPacket(formatAddress(via.addr, via.port), [req]);
      }
      if (config.tcpFallbackPing) {
        void this.host.streamPing(addr, target, interval - timeout).then((ok) => ok && waiter.ack());
      }
      if ((await waiter.wait(interval - timeout)) || this.stopped) return;
      // Lifeguard: helpers that did not even nack suggest our own links are failing.
      awareness.apply(helpers.length > 0 ? helpers.length - waiter.nacks : 1);
      stats.probesFailed++;
      stats.suspicionsRaised++;
      membership.suspect(target);
    } finally {
      this.waiters.delete(seq);
    }
  }

  /** Answers a direct ping addressed to us. */
  handlePing(msg: PingMsg, from: string): void {
    if (msg.target !== this.host.config.name) return; // meant for whoever lived here before us
    this.host.sendPacket(from, [{ type: "ack", seq: msg.seq }]);
  }

  /** Pings a target on a peer's behalf and relays the outcome. */
  async handleIndirect(msg: IndirectPingMsg, from: string): Promise<void> {
    const { config, awareness } = this.host;
    const { seq, waiter } = this.expect();
    try {
      this.host.sendPacket(formatAddress(msg.addr, msg.port), [{ type: "ping", seq, target: msg.target }]);
      const timeout = awareness.scale(config.probeTimeout);
      let acked = await waiter.wait(timeout);
      if (!acked && msg.nack && !this.stopped) {
        this.host.sendPacket(from, [{ type: "nack", seq: msg.seq }]);
        acked = await waiter.wait(Math.max(0, awareness.scale(config.probeInterval) - timeout));
      }
      if (acked && !this.stopped) this.host.sendPacket(from, [{ type: "ack", seq: msg.seq }]);
    } finally {
      this.waiters.delete(seq);
    }
  }

  handleAck(msg: AckMsg): void {
    this.waiters.get(msg.seq)?.ack();
  }

  handleNack(msg: NackMsg): void {
    const w = this.waiters.get(msg.seq);
    if (w) w.nacks++;
  }

  /** Wakes every pending probe (node stopping) so no promise is left hanging. */
  stop(): void {
    this.stopped = true;
    for (const w of this.waiters.values()) w.settle();
    this.waiters.clear();
  }

  private expect(): { seq: number; waiter: AckWaiter } {
    this.seq = (this.seq + 1) >>> 0;
    const waiter = new AckWaiter(this.host.clock);
    this.waiters.set(this.seq, waiter);
    return { seq: this.seq, waiter };
  }
}
