/**
 * Coexistence with a Docker engine on the same host. Docker sets the iptables FORWARD policy to DROP
 * and, with br_netfilter, even traffic inside one bridge passes that chain; a packet has to be
 * accepted by every base chain on the hook, so trellis's own nftables rules cannot help. Docker's
 * documented hook for other software is the DOCKER-USER chain: trellis keeps exactly one
 * `-i BRIDGE` and one `-o BRIDGE` ACCEPT there per network, marked with a comment so it only ever
 * touches its own rules. Filtering (isolation, internal networks) stays in trellis's nftables table.
 * Without Docker (no DOCKER-USER chain) this does nothing.
 */
import type { Logger } from "pino";
import type { Kernel } from "../kernel/types.js";

const CHAIN = "DOCKER-USER";
const MARK = "trellis";

function ruleArgs(direction: "-i" | "-o", bridge: string): string[] {
  return [direction, bridge, "-m", "comment", "--comment", MARK, "-j", "ACCEPT"];
}

export class DockerUserChain {
  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
  ) {}

  private running: Promise<void> = Promise.resolve();

  /** Makes trellis's rules in DOCKER-USER exactly one pair per bridge, in both families. */
  sync(bridges: string[]): Promise<void> {
    // One at a time: two overlapping runs would both see a rule missing and both insert it.
    const next = this.running.then(() => this.syncNow(bridges));
    this.running = next.catch(() => undefined);
    return next;
  }

  private async syncNow(bridges: string[]): Promise<void> {
    for (const family of [4, 6] as const) {
      const listed = await this.kernel.iptables(family, ["-S", CHAIN]);
      if (listed.code !== 0) continue; // no Docker engine (or no iptables) in this namespace
      const ours = listed.stdout
        .split("\n")
        .filter((l) => l.startsWith(`-A ${CHAIN} `) && l.includes(`--comment ${MARK} `))
        .map((l) => l.split(/\s+/).slice(2));
      const wanted = bridges.flatMap((b) => [ruleArgs("-i", b), ruleArgs("-o", b)]);
      const key = (args: string[]) => `${args[0]} ${args[1]}`;
      const have = new Set<string>();
      const want = new Set(wanted.map(key));
      for (const args of ours) {
        // unwanted, or a duplicate (left by an older trellis or by hand): delete
        if (!want.has(key(args)) || have.has(key(args))) await this.run(family, ["-D", CHAIN, ...args]);
        have.add(key(args));
      }
      for (const args of wanted) {
        if (!have.has(key(args))) await this.run(family, ["-I", CHAIN, ...args]);
      }
    }
  }

  private async run(family: 4 | 6, args: string[]) {
    const r = await this.kernel.iptables(family, args);
    if (r.code !== 0) this.log.warn({ family, args, stderr: r.stderr.trim() }, "DOCKER-USER update failed");
  }
}
