/**
 * A minimal typed event emitter. A listener that throws is logged, never allowed to break the
 * protocol path that emitted the event.
 */
import type { GossipLogger } from "./log.js";

// biome-ignore lint/suspicious/noExplicitAny: listener argument tuples are checked per event map
type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [E in keyof Events]: Listener }> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  constructor(private readonly log: GossipLogger) {}

  on<E extends keyof Events>(event: E, listener: Events[E]): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return this;
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): this {
    this.listeners.get(event)?.delete(listener);
    return this;
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        this.log.error({ err, event: String(event) }, "gossip event listener threw");
      }
    }
  }
}
