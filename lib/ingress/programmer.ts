/**
 * Keeps the kernel's service table equal to the desired services and SNAT entries: the only I/O of
 * the data plane. Each call is one atomic `nft -f` transaction. Normally it carries only the element
 * diff of the services that changed (their map elements, the selection groups they need first, and
 * the @vips addresses that no other service still holds) or of the SNAT map; when the last applied
 * state is unknown (first call, or a transaction failed, e.g. someone edited the table), or a change
 * would overfill a backend map that the last full render gave a size, the whole table is rendered and
 * replaces what is there.
 * A failed full resync is reported to the caller, who retries with back-off; the next call is a
 * full resync again. Calls are serialised, so the remembered state always matches what was applied.
 */
import type { Logger } from "pino";
import { invalid, KernelError, messageOf } from "../common/errors.js";
import type { NftOptions } from "../kernel/types.js";
import { countSlots, groupCapacity, vipAddresses } from "./layout.js";
import {
  type Backend,
  indexServices,
  meshKey,
  type Service,
  type SnatEntry,
  validateService,
  validateSnat,
  vipKey,
} from "./model.js";
import { renderChange, renderDeleteTable, renderSnatChange, renderTable, renderVipChange } from "./render.js";

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
  /** Services whose elements the transaction rewrote (every service for a full resync; 0 for a
   * change of the SNAT entries alone). */
  services: number;
  recovered?: string;
}

/** A private copy, field by field (a spread per object was a tenth of a 10 000-service sync). */
const clone = (s: Service): Service => ({
  id: s.id,
  name: s.name,
  vips: s.vips.map((v) => ({ ip: v.ip, port: v.port, proto: v.proto })),
  backends: s.backends.map(cloneBackend),
  mesh: s.mesh.map((m) => ({ proto: m.proto, port: m.port, backends: m.backends.map(cloneBackend) })),
  affinity: s.affinity,
});
const cloneBackend = (b: Backend): Backend => ({ ip: b.ip, port: b.port });

const sameList = <T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean =>
  a.length === b.length && a.every((x, i) => same(x, b[i]!));
const sameBackend = (x: Backend, y: Backend) => x.ip === y.ip && x.port === y.port;
/** Field by field, order included: a sync of 10 000 services, one of them changed, renders one. */
function sameService(a: Service, b: Service): boolean {
  return (
    a.name === b.name &&
    a.affinity === b.affinity &&
    sameList(a.vips, b.vips, (x, y) => x.ip === y.ip && x.port === y.port && x.proto === y.proto) &&
    sameList(a.backends, b.backends, sameBackend) &&
    sameList(
      a.mesh,
      b.mesh,
      (x, y) => x.proto === y.proto && x.port === y.port && sameList(x.backends, y.backends, sameBackend),
    )
  );
}

/** Counts how many services hold each VIP address: an address leaves @vips with its last holder. */
class AddressCount {
  private readonly counts = new Map<string, number>();
  add(ips: readonly string[]): void {
    for (const ip of ips) this.counts.set(ip, (this.counts.get(ip) ?? 0) + 1);
  }
  remove(ips: readonly string[]): void {
    for (const ip of ips) {
      const n = (this.counts.get(ip) ?? 0) - 1;
      if (n > 0) this.counts.set(ip, n);
      else this.counts.delete(ip);
    }
  }
  /** The service's VIP addresses, each once: addService/removeService allocate nothing for the
   * usual one address. */
  addService(s: Service): void {
    for (let i = 0; i < s.vips.length; i++) {
      const ip = s.vips[i]!.ip;
      if (!seenBefore(s, i)) this.counts.set(ip, (this.counts.get(ip) ?? 0) + 1);
    }
  }
  removeService(s: Service): void {
    for (let i = 0; i < s.vips.length; i++) if (!seenBefore(s, i)) this.remove([s.vips[i]!.ip]);
  }
  has(ip: string): boolean {
    return this.counts.has(ip);
  }
  clear(): void {
    this.counts.clear();
  }
  copy(): AddressCount {
    const out = new AddressCount();
    for (const [ip, n] of this.counts) out.counts.set(ip, n);
    return out;
  }
}

/** Whether the service's VIP i has an address that an earlier VIP of it has. */
function seenBefore(s: Service, i: number): boolean {
  const ip = s.vips[i]!.ip;
  for (let j = 0; j < i; j++) if (s.vips[j]!.ip === ip) return true;
  return false;
}

/** What the kernel holds, as last applied. */
interface Applied {
  services: Map<number, Service>;
  vips: AddressCount;
  snat: SnatEntry[];
  /** The selection groups the table holds (by backend map name): created on first use. */
  groups: Set<string>;
  /** The backend maps the full render gave a size (a limit), with the elements they hold. */
  sized: Map<string, { capacity: number; count: number }>;
}

export class ServiceProgrammer {
  private readonly desired = new Map<number, Service>();
  /** VIP key → id of the desired service that owns it, so upsert checks conflicts in O(VIPs). */
  private vipOwner = new Map<string, number>();
  /** Published port key → id of the desired service that owns it. */
  private meshOwner = new Map<string, number>();
  private readonly desiredVips = new AddressCount();
  private desiredSnat: SnatEntry[] = [];
  /** What the kernel holds; undefined when unknown, which makes the next call a full resync. */
  private applied: Applied | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ServiceProgrammerOptions) {}

  /** Makes the desired state exactly `services`; one transaction for everything that changed. */
  async sync(services: readonly Service[]): Promise<ProgramResult> {
    // A service equal to the desired one keeps that copy (copies are never changed) and is not
    // validated again: the daemon syncs every service for each change, and copying and checking
    // 10 000 of them was most of such a call.
    const kept = services.map((s) => {
      const old = this.desired.get(s.id);
      return old && sameService(old, s) ? old : undefined;
    });
    const owners = indexServices(services, (i) => kept[i] !== undefined);
    const copies = services.map((s, i) => kept[i] ?? clone(s));
    return this.serial(() => {
      // Only what differs from the desired state so far is rendered (or the whole table, if unknown).
      const touched: number[] = [];
      const incoming = new Set<number>();
      for (const s of copies) {
        incoming.add(s.id);
        const old = this.desired.get(s.id);
        if (old === s || (old && sameService(old, s))) continue;
        touched.push(s.id);
        if (old) this.desiredVips.removeService(old);
        this.desired.set(s.id, s);
        this.desiredVips.addService(s);
      }
      for (const [id, old] of this.desired) {
        if (incoming.has(id)) continue;
        touched.push(id);
        this.desiredVips.removeService(old);
        this.desired.delete(id);
      }
      this.vipOwner = owners.vips;
      this.meshOwner = owners.mesh;
      return this.program(touched);
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
      for (const m of copy.mesh) {
        const owner = this.meshOwner.get(meshKey(m));
        if (owner !== undefined && owner !== copy.id)
          throw invalid(
            `service ${copy.name}: published port ${m.port}/${m.proto} belongs to service id ${owner}`,
          );
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

  /**
   * Makes the mesh SNAT map exactly `entries` (remote backend address → this host's mesh address on
   * its network): one transaction with the element diff, or a full render when the kernel's state is
   * unknown. Remembered: every later full render includes them.
   */
  async setSnat(entries: Array<{ backend: string; source: string }>): Promise<ProgramResult> {
    validateSnat(entries);
    const copies = entries.map((e) => ({ backend: e.backend, source: e.source }));
    return this.serial(async () => {
      this.desiredSnat = copies;
      const applied = this.applied;
      if (!applied) return this.full();
      const script = renderSnatChange(applied.snat, copies);
      if (script === "") return { mode: "none", services: 0 };
      try {
        await this.opts.nftApply(script, this.opts.nftOptions);
      } catch (err) {
        this.opts.log?.warn({ err }, "mesh SNAT diff failed; full resync");
        return { ...(await this.full()), recovered: messageOf(err) };
      }
      applied.snat = copies;
      return { mode: "diff", services: 0 };
    });
  }

  /** Replaces the whole table with the desired state, whatever the kernel holds now. */
  resync(): Promise<ProgramResult> {
    return this.serial(() => this.full());
  }

  /** Deletes the table (e.g. when the last service goes away for good); forgets every service and
   * SNAT entry. The next call renders the whole table again. */
  clear(): Promise<void> {
    return this.serial(async () => {
      this.forgetDesired();
      this.desiredSnat = [];
      this.applied = undefined;
      await this.opts.nftApply(renderDeleteTable(), this.opts.nftOptions);
    });
  }

  /** The services as last applied to the kernel; undefined when the next call must render the whole
   * table (the kernel's state is unknown, or there is no table). */
  appliedServices(): Service[] | undefined {
    return this.applied ? [...this.applied.services.values()].map(clone) : undefined;
  }

  /** The SNAT entries as last applied; undefined as for appliedServices(). */
  appliedSnat(): SnatEntry[] | undefined {
    return this.applied?.snat.map((e) => ({ ...e }));
  }

  private setDesired(s: Service): void {
    this.desired.set(s.id, s);
    for (const v of s.vips) this.vipOwner.set(vipKey(v), s.id);
    for (const m of s.mesh) this.meshOwner.set(meshKey(m), s.id);
    this.desiredVips.addService(s);
  }

  private deleteDesired(id: number): void {
    const old = this.desired.get(id);
    if (!old) return;
    for (const v of old.vips) this.vipOwner.delete(vipKey(v));
    for (const m of old.mesh) this.meshOwner.delete(meshKey(m));
    this.desiredVips.removeService(old);
    this.desired.delete(id);
  }

  private forgetDesired(): void {
    this.desired.clear();
    this.vipOwner.clear();
    this.meshOwner.clear();
    this.desiredVips.clear();
  }

  /** The @vips change for the addresses the given services held or hold: an address is added when
   * its first holder arrives and deleted when its last one goes, whatever else changed. */
  private vipChange(applied: Applied, ids: readonly number[]): { add: string[]; remove: string[] } {
    const touched = new Set<string>();
    for (const id of ids) {
      const before = applied.services.get(id);
      const after = this.desired.get(id);
      if (before) for (const ip of vipAddresses(before)) touched.add(ip);
      if (after) for (const ip of vipAddresses(after)) touched.add(ip);
    }
    const add: string[] = [];
    const remove: string[] = [];
    for (const ip of touched) {
      const want = this.desiredVips.has(ip);
      if (want !== applied.vips.has(ip)) (want ? add : remove).push(ip);
    }
    return { add, remove };
  }

  private async program(ids: number[]): Promise<ProgramResult> {
    const applied = this.applied;
    if (!applied) return this.full();
    const grown = this.slotDelta(applied, ids);
    if (!grown) {
      this.opts.log?.info("a sized backend map would overflow: full render");
      return this.full();
    }
    // Every deletion first, whichever service it belongs to: a VIP or port that moves from one service
    // to another in the same transaction must leave before it arrives.
    const deletes: string[] = [];
    const adds: string[] = [];
    const sortLines = (part: string) => {
      for (const line of part.split("\n")) {
        if (line !== "") (line.startsWith("delete ") ? deletes : adds).push(line);
      }
    };
    const changed: number[] = [];
    const groups = new Set(applied.groups);
    for (const id of ids) {
      const part = renderChange(applied.services.get(id), this.desired.get(id), groups);
      if (part === "") continue;
      sortLines(part);
      changed.push(id);
    }
    sortLines(renderVipChange(this.vipChange(applied, ids)));
    const script = deletes.length + adds.length > 0 ? `${[...deletes, ...adds].join("\n")}\n` : "";
    if (script === "") {
      this.remember(applied, ids, groups, grown); // e.g. a new name: nothing for the kernel
      return { mode: "none", services: 0 };
    }
    try {
      await this.opts.nftApply(script, this.opts.nftOptions);
    } catch (err) {
      this.opts.log?.warn({ err, services: changed }, "service table diff failed; full resync");
      return { ...(await this.full()), recovered: messageOf(err) };
    }
    this.remember(applied, ids, groups, grown);
    return { mode: "diff", services: changed.length };
  }

  /** Records the given services' desired state as applied, with the groups the table now holds and
   * the sized maps' new counts. */
  private remember(
    applied: Applied,
    ids: readonly number[],
    groups: Set<string>,
    grown: Map<string, number>,
  ) {
    // Every touched service, changed in the kernel or not: its VIP addresses are now counted.
    for (const id of ids) {
      const before = applied.services.get(id);
      if (before) applied.vips.removeService(before);
      const s = this.desired.get(id);
      if (s) {
        applied.services.set(id, s);
        applied.vips.addService(s);
      } else applied.services.delete(id);
    }
    applied.groups = groups;
    for (const [map, n] of grown) {
      const sized = applied.sized.get(map);
      if (sized) sized.count += n;
    }
  }

  /** How the given services' change moves each backend map's element count; undefined when it would
   * take a sized map past its size (the kernel would refuse the transaction). */
  private slotDelta(applied: Applied, ids: readonly number[]): Map<string, number> | undefined {
    const delta = new Map<string, number>();
    for (const id of ids) {
      const before = applied.services.get(id);
      if (before) countSlots(before, -1, delta);
      const after = this.desired.get(id);
      if (after) countSlots(after, 1, delta);
    }
    for (const [map, n] of delta) {
      const sized = applied.sized.get(map);
      if (sized && sized.count + n > sized.capacity) return undefined;
    }
    return delta;
  }

  private async full(): Promise<ProgramResult> {
    this.applied = undefined;
    const services = [...this.desired.values()];
    const snat = this.desiredSnat;
    try {
      await this.opts.nftApply(renderTable(services, snat), this.opts.nftOptions);
    } catch (err) {
      throw new KernelError(`program service table (full resync): ${messageOf(err)}`, undefined, {
        cause: err,
      });
    }
    const counts = new Map<string, number>();
    for (const s of services) countSlots(s, 1, counts);
    const sized = new Map<string, { capacity: number; count: number }>();
    for (const [map, count] of counts) {
      const capacity = groupCapacity(count);
      if (capacity !== undefined) sized.set(map, { capacity, count });
    }
    const vips = this.desiredVips.copy();
    this.applied = { services: new Map(this.desired), vips, snat, groups: new Set(counts.keys()), sized };
    return { mode: "full", services: services.length };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}
