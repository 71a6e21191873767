/**
 * Keeps the kernel's VIP table equal to the desired services: the only I/O of the load balancer.
 * Each call is one atomic `nft -f` transaction. Normally it carries only the element diff of the
 * services that changed; when the last applied state is unknown (first call, or a transaction
 * failed, e.g. someone edited the table) the whole table is rendered and replaces what is there.
 * A failed full resync is reported to the caller, who retries with back-off; the next call is a
 * full resync again. Calls are serialised, so the remembered state always matches what was applied.
 */
import type { Logger } from "pino";
import { invalid, KernelError, messageOf } from "../common/errors.js";
import type { NftOptions } from "../kernel/types.js";
import { type Service, validateService, validateServices, vipKey } from "./model.js";
import { renderChange, renderDeleteTable, renderTable } from "./render.js";

export interface ServiceProgrammerOptions {
  /** Applies one script atomically: Kernel.nftApply, lib/kernel/nft.ts's nftApply, or a test double. */
  nftApply: (script: string, opts?: NftOptions) => Promise<void>;
  /** Passed to every nftApply call, e.g. the namespace that holds the table. Default: none. */
  nftOptions?: NftOptions;
  log?: Logger;
}

/** What one call did. `recovered` holds the error of a diff that failed before a full resync worked. */
export interface ProgramResult {
  mode: "none" | "diff" | "full";
  /** Services whose elements the transaction rewrote (every service for a full resync). */
  services: number;
  recovered?: string;
}

const clone = (s: Service): Service => ({
  ...s,
  vips: s.vips.map((v) => ({ ...v })),
  backends: s.backends.map((b) => ({ ...b })),
});

export class ServiceProgrammer {
  private readonly desired = new Map<number, Service>();
  /** VIP key → id of the desired service that owns it, so upsert checks conflicts in O(VIPs). */
  private readonly vipOwner = new Map<string, number>();
  /** What the kernel holds; undefined when unknown, which makes the next call a full resync. */
  private applied: Map<number, Service> | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ServiceProgrammerOptions) {}

  /** Makes the desired state exactly `services`; one transaction for everything that changed. */
  async sync(services: readonly Service[]): Promise<ProgramResult> {
    validateServices(services);
    const copies = services.map(clone);
    return this.serial(() => {
      const touched = new Set([...this.desired.keys(), ...copies.map((s) => s.id)]);
      this.desired.clear();
      this.vipOwner.clear();
      for (const s of copies) this.setDesired(s);
      return this.program([...touched]);
    });
  }

  /** Creates or replaces one service: the fast path for a backend joining, leaving or failing. */
  async upsert(service: Service): Promise<ProgramResult> {
    validateService(service);
    const copy = clone(service);
    return this.serial(() => {
      for (const v of copy.vips) {
        const owner = this.vipOwner.get(vipKey(v));
        if (owner !== undefined && owner !== copy.id)
          throw invalid(`service ${copy.name}: ${v.ip}:${v.port}/${v.proto} belongs to service id ${owner}`);
      }
      this.deleteDesired(copy.id);
      this.setDesired(copy);
      return this.program([copy.id]);
    });
  }

  /** Removes one service (no-op when unknown). Its established connections keep their conntrack NAT. */
  remove(id: number): Promise<ProgramResult> {
    return this.serial(() => {
      this.deleteDesired(id);
      return this.program([id]);
    });
  }

  /** Replaces the whole table with the desired state, whatever the kernel holds now. */
  resync(): Promise<ProgramResult> {
    return this.serial(() => this.full());
  }

  /** Deletes the table (e.g. when the last service goes away for good); forgets every service. The
   * next call renders the whole table again. */
  clear(): Promise<void> {
    return this.serial(async () => {
      this.desired.clear();
      this.vipOwner.clear();
      this.applied = undefined;
      await this.opts.nftApply(renderDeleteTable(), this.opts.nftOptions);
    });
  }

  /** The services as last applied to the kernel; undefined when the next call must render the whole
   * table (the kernel's state is unknown, or there is no table). */
  appliedServices(): Service[] | undefined {
    return this.applied ? [...this.applied.values()].map(clone) : undefined;
  }

  private setDesired(s: Service): void {
    this.desired.set(s.id, s);
    for (const v of s.vips) this.vipOwner.set(vipKey(v), s.id);
  }

  private deleteDesired(id: number): void {
    const old = this.desired.get(id);
    if (!old) return;
    for (const v of old.vips) this.vipOwner.delete(vipKey(v));
    this.desired.delete(id);
  }

  private async program(ids: number[]): Promise<ProgramResult> {
    const applied = this.applied;
    if (!applied) return this.full();
    const parts: string[] = [];
    const changed: number[] = [];
    for (const id of ids) {
      const part = renderChange(applied.get(id), this.desired.get(id));
      if (part === "") continue;
      parts.push(part);
      changed.push(id);
    }
    if (parts.length === 0) return { mode: "none", services: 0 };
    try {
      await this.opts.nftApply(parts.join(""), this.opts.nftOptions);
    } catch (err) {
      this.opts.log?.warn({ err, services: changed }, "service table diff failed; full resync");
      return { ...(await this.full()), recovered: messageOf(err) };
    }
    for (const id of changed) {
      const s = this.desired.get(id);
      if (s) applied.set(id, s);
      else applied.delete(id);
    }
    return { mode: "diff", services: changed.length };
  }

  private async full(): Promise<ProgramResult> {
    this.applied = undefined;
    const services = [...this.desired.values()];
    try {
      await this.opts.nftApply(renderTable(services), this.opts.nftOptions);
    } catch (err) {
      throw new KernelError(`program service table (full resync): ${messageOf(err)}`, undefined, {
        cause: err,
      });
    }
    this.applied = new Map(services.map((s) => [s.id, s]));
    return { mode: "full", services: services.length };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}
