/**
 * Why the listeners are not bound to 127.0.0.11:53 itself: a socket bound to 127.0.0.11:53 makes a
 * container's own server on 0.0.0.0:53 (a DNS server in a container, a published port 53) fail with
 * EADDRINUSE. So, like Docker, the listeners bind ephemeral ports on 127.0.0.11 and a rule in the
 * container's own namespace sends 127.0.0.11:53 there (and the replies back from 53): trellis's
 * table `ip trellis_dns`, replaced in one nft transaction per change. Operations on one container run in order, so a removal queued by
 * a disconnect can never undo the redirect of a reconnect that follows it.
 */
import type { Logger } from "pino";
import { messageOf } from "../common/errors.js";
import type { Kernel, NetnsRef } from "../kernel/types.js";

export const REDIRECT_TABLE = "trellis_dns";

export interface RedirectPorts {
  /** where 127.0.0.11:53 goes, per protocol */
  udp: number;
  tcp: number;
}

/**
 * The nft transaction that (re)creates the redirect: declare, delete, define, so it works whether
 * or not the table exists, and replaces the ports of an earlier daemon atomically. The rewrite is
 * stateless (notrack, port set both ways): no conntrack entry per query, which NAT would cost on
 * every packet; both directions are locally generated on lo, so the output hook sees them all.
 */
export function redirectScript(address: string, port: number, to: RedirectPorts): string {
  return [
    `table ip ${REDIRECT_TABLE}`,
    `delete table ip ${REDIRECT_TABLE}`,
    `table ip ${REDIRECT_TABLE} {`,
    "  chain output {",
    "    type filter hook output priority raw; policy accept;",
    `    ip daddr ${address} udp dport ${port} notrack udp dport set ${to.udp}`,
    `    ip saddr ${address} udp sport ${to.udp} notrack udp sport set ${port}`,
    `    ip daddr ${address} tcp dport ${port} notrack tcp dport set ${to.tcp}`,
    `    ip saddr ${address} tcp sport ${to.tcp} notrack tcp sport set ${port}`,
    "  }",
    "}",
    "",
  ].join("\n");
}

export function removalScript(): string {
  return `table ip ${REDIRECT_TABLE}\ndelete table ip ${REDIRECT_TABLE}\n`;
}

export class Redirects {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
  ) {}

  /** Points address:port at the listener ports inside the namespace; rejects if nft refuses. */
  apply(containerId: string, netns: NetnsRef, script: string): Promise<void> {
    return this.enqueue(containerId, () => this.kernel.nftApply(script, { netns }));
  }

  /** Removes the redirect; a namespace that is gone is not an error. Never rejects. */
  remove(containerId: string, netns: NetnsRef): Promise<void> {
    return this.enqueue(containerId, () => this.kernel.nftApply(removalScript(), { netns })).catch((err) =>
      this.log.debug({ containerId, err: messageOf(err) }, "DNS redirect not removed (namespace gone?)"),
    );
  }

  /** Resolves when every queued operation of the container has finished (successfully or not). */
  settled(containerId: string): Promise<void> {
    return (this.queues.get(containerId) ?? Promise.resolve()).then(
      () => undefined,
      () => undefined,
    );
  }

  private enqueue(containerId: string, op: () => Promise<void>): Promise<void> {
    const run = this.settled(containerId).then(op);
    this.queues.set(containerId, run);
    void run
      .catch(() => undefined)
      .finally(() => {
        if (this.queues.get(containerId) === run) this.queues.delete(containerId);
      });
    return run;
  }
}
