/**
 * Active health of this host's backends (`--health-tcp PORT`): a TCP connect from the host to the
 * backend's address every interval. A backend starts unhealthy and becomes healthy on its first
 * successful probe (no traffic before it listens); it turns unhealthy after FAILURES_TO_FAIL
 * consecutive failures, so one lost SYN does not flap it. Backends of services without a check are
 * "unchecked": their liveness is their host's, as gossip sees it.
 */
import net from "node:net";
import type { BackendHealth } from "./spec.js";

export const FAILURES_TO_FAIL = 2;

export interface ProbeTarget {
  key: string;
  ip: string;
  port: number;
}

/** Resolves true when a TCP connection to ip:port is accepted within timeoutMs. */
export function probeTcp(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export class HealthChecker {
  private readonly state = new Map<string, { health: BackendHealth; failures: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    /** the probes to run now (the backends with a check, this host's only) */
    private readonly targets: () => ProbeTarget[],
    /** called when a backend's health changes */
    private readonly onChange: (key: string, health: BackendHealth) => void,
    private readonly intervalMs = 1000,
    private readonly probe: (ip: string, port: number, timeoutMs: number) => Promise<boolean> = probeTcp,
  ) {}

  /** The health a backend has now; one without a check is "unchecked". */
  healthOf(key: string, checked: boolean): BackendHealth {
    if (!checked) return "unchecked";
    return this.state.get(key)?.health ?? "unhealthy";
  }

  forget(key: string): void {
    this.state.delete(key);
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One probe of every target, in parallel; rounds never overlap. */
  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const targets = this.targets();
      const live = new Set(targets.map((t) => t.key));
      for (const key of this.state.keys()) if (!live.has(key)) this.state.delete(key);
      const timeout = Math.max(100, Math.min(1000, this.intervalMs - 50));
      await Promise.all(
        targets.map(async (t) => {
          const ok = await this.probe(t.ip, t.port, timeout);
          const s = this.state.get(t.key) ?? { health: "unhealthy" as BackendHealth, failures: 0 };
          const before = s.health;
          if (ok) {
            s.failures = 0;
            s.health = "healthy";
          } else {
            s.failures++;
            if (s.health === "healthy" && s.failures >= FAILURES_TO_FAIL) s.health = "unhealthy";
          }
          this.state.set(t.key, s);
          if (s.health !== before) this.onChange(t.key, s.health);
        }),
      );
    } finally {
      this.running = false;
    }
  }
}
