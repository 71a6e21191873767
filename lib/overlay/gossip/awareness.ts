/**
 * Lifeguard local health awareness: a score in [0, max − 1] that rises when our own probing
 * looks unhealthy (missed nacks, failed probes, having to refute a suspicion about ourselves) and
 * falls with every successful probe. Probe timeouts and intervals are multiplied by score + 1,
 * so a node whose CPU or network is starved slows its failure detector down instead of
 * declaring healthy peers dead.
 */
export class Awareness {
  private score = 0;

  constructor(private readonly max: number) {}

  /** Adjusts the score by `delta`, clamped. */
  apply(delta: number): void {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
  }

  get health(): number {
    return this.score;
  }

  /** `ms` scaled by the current health. */
  scale(ms: number): number {
    return ms * (this.score + 1);
  }
}
