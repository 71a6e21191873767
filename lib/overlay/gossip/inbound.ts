/**
 * The receive path of a node: datagrams and inbound streams, decoded and dispatched to the part
 * that owns each message type. Hostile input ends as a counted decode error; a bug ends as a log
 * line, never as an exception on the event loop.
 */
import type { GossipConfig } from "./config.js";
import type { GossipLogger } from "./log.js";
import type { Membership } from "./members.js";
import type { Envelope, Message, WireRecord } from "./messages.js";
import type { Prober } from "./prober.js";
import { type SyncHost, servePushPull } from "./push-pull.js";
import type { GossipStats } from "./stats.js";
import type { ReplicatedTable } from "./table.js";
import type { Stream } from "./transport.js";
import type { Wire } from "./wire.js";

export interface InboundHost {
  config: GossipConfig;
  log: GossipLogger;
  wire: Wire;
  membership: Membership;
  table: ReplicatedTable;
  prober: Prober;
  stats: GossipStats;
  sync(): SyncHost;
  running(): boolean;
  /** Queue a table version for dissemination. */
  enqueueRecord(rec: WireRecord): void;
}

export class Inbound {
  constructor(private readonly h: InboundHost) {}

  onPacket(bytes: Uint8Array, from: string): void {
    if (!this.h.running()) return;
    try {
      const env = this.h.wire.openPacket(bytes);
      if (env) this.dispatch(env, from);
    } catch (err) {
      // Only a bug gets here (hostile input is a counted decode error); never take the daemon down.
      this.h.log.error({ err, peer: from }, "gossip: packet handling failed");
    }
  }

  private dispatch(env: Envelope, from: string): void {
    if (env.from === this.h.config.name) return;
    this.h.membership.touch(env.from);
    for (const msg of env.messages) this.handle(msg, from);
  }

  private handle(msg: Message, from: string): void {
    switch (msg.type) {
      case "ping":
        this.h.prober.handlePing(msg, from);
        break;
      case "indirect-ping":
        void this.h.prober.handleIndirect(msg, from);
        break;
      case "ack":
        this.h.prober.handleAck(msg);
        break;
      case "nack":
        this.h.prober.handleNack(msg);
        break;
      case "alive":
        this.h.membership.handleAlive(msg);
        break;
      case "suspect":
        this.h.membership.handleSuspect(msg);
        break;
      case "dead":
        this.h.membership.handleDead(msg);
        break;
      case "entry":
        // Pass on what was news here: every node that learns an update spreads it (epidemic).
        if (this.h.table.merge(msg.record)) this.h.enqueueRecord(msg.record);
        break;
      case "push-pull":
        break; // only meaningful on a stream
    }
  }

  async onStream(stream: Stream): Promise<void> {
    this.h.stats.streamsAccepted++;
    try {
      if (!this.h.running()) return;
      const env = await this.h.wire.readFrame(stream, this.h.config.tcpTimeout);
      if (env.from === this.h.config.name) return;
      this.h.membership.touch(env.from);
      if (env.messages.some((m) => m.type === "push-pull"))
        return await servePushPull(this.h.sync(), stream, env);
      const ping = env.messages.find((m) => m.type === "ping");
      if (ping?.type === "ping" && ping.target === this.h.config.name) {
        await this.h.wire.writeFrame(stream, [{ type: "ack", seq: ping.seq }]);
      }
      this.dispatch({ ...env, messages: env.messages.filter((m) => m.type !== "ping") }, stream.remote);
    } catch (err) {
      this.h.log.debug({ peer: stream.remote, err: String(err) }, "gossip: inbound stream failed");
    } finally {
      stream.close();
    }
  }
}
