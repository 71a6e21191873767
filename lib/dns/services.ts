/**
 * The services DNS answers for, fed by the service manager (not by the store, so a rebuild of the
 * endpoint records keeps them). Indexed like the endpoint records, network → lower-case name, so a
 * query costs one or two map lookups per network of the asker however many services exist, and the
 * addresses of each (service, network) are sorted once here rather than on every answer. No I/O.
 */
import { formatIp, type IpAddress, tryParseAddress } from "../ipam/cidr.js";
import { normalizeName } from "./names.js";
import type { Scope } from "./records.js";

export interface DnsServiceEntry {
  /** service id (64 hex) */
  id: string;
  /** as given by the user (case kept) */
  name: string;
  mode: "vip" | "dnsrr";
  /** the service's VIP on each of its networks (vip mode; empty in dnsrr mode) */
  vips: Array<{ networkId: string; ip: string }>;
  /** healthy backends' bare IPv4 addresses, per network */
  tasks: Array<{ networkId: string; ip: string }>;
  /**
   * The service's networks. Optional: the networks of `vips` and `tasks` are always added. Give it
   * in dnsrr mode, where nothing else names the networks of a service without a healthy backend, so
   * that its name stays (NODATA) instead of vanishing (NXDOMAIN) while every backend is down.
   */
  networks?: string[];
}

/** The prefix of the name that asks for a service's backends whatever its mode (Docker's). */
export const TASKS_PREFIX = "tasks.";

/** What one service answers on one of its networks. */
interface OnNetwork {
  id: string;
  /** as given */
  name: string;
  /** the service's own name: its VIP here (vip mode) or its healthy backends here (dnsrr); sorted */
  main: readonly string[];
  /** tasks.NAME: the healthy backends here, sorted */
  tasks: readonly string[];
}

interface VipOwner {
  id: string;
  name: string;
  networkId: string;
}

/** The canonical text of an IPv4 address, bare or as CIDR; undefined for anything else (services
 * are IPv4-only, so an IPv6 address given by mistake is left out rather than answered as A). */
function canonicalV4(text: string): IpAddress | undefined {
  const slash = text.indexOf("/");
  const ip = tryParseAddress(slash < 0 ? text : text.slice(0, slash));
  return ip?.family === 4 ? ip : undefined;
}

/** Per network, the distinct IPv4 addresses of `list`, in address order. */
function addressesByNetwork(list: ReadonlyArray<{ networkId: string; ip: string }>): Map<string, string[]> {
  const parsed = new Map<string, Map<string, bigint>>();
  for (const { networkId, ip } of list) {
    const addr = canonicalV4(ip);
    if (!addr) continue;
    const net = parsed.get(networkId) ?? new Map<string, bigint>();
    parsed.set(networkId, net);
    net.set(formatIp(addr), addr.value);
  }
  const out = new Map<string, string[]>();
  for (const [networkId, addrs] of parsed) {
    const sorted = [...addrs].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    out.set(
      networkId,
      sorted.map(([text]) => text),
    );
  }
  return out;
}

/** Distinct addresses of several lists, in address order (only when two services share a name). */
function merged(lists: ReadonlyArray<readonly string[]>): string[] {
  const all = new Map<string, bigint>();
  for (const list of lists) for (const ip of list) all.set(ip, canonicalV4(ip)?.value ?? 0n);
  return [...all].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)).map(([ip]) => ip);
}

export class ServiceRecords {
  private readonly entries = new Map<string, DnsServiceEntry>();
  /** networkId → lower-case service name → the services of that name there (one, in practice) */
  private readonly names = new Map<string, Map<string, OnNetwork[]>>();
  /** canonical VIP → the services holding it, with the network */
  private readonly vips = new Map<string, VipOwner[]>();
  /** Bumped on every change, like DnsRecords.generation (which includes it). */
  generation = 0;

  get size(): number {
    return this.entries.size;
  }

  /** Creates or replaces the service with this id. */
  set(entry: DnsServiceEntry): void {
    this.unindex(entry.id);
    const copy: DnsServiceEntry = {
      id: entry.id,
      name: entry.name,
      mode: entry.mode,
      vips: entry.mode === "vip" ? entry.vips.map((v) => ({ ...v })) : [],
      tasks: entry.tasks.map((t) => ({ ...t })),
      ...(entry.networks ? { networks: [...entry.networks] } : {}),
    };
    this.entries.set(copy.id, copy);
    const vips = addressesByNetwork(copy.vips);
    const tasks = addressesByNetwork(copy.tasks);
    const networks = new Set([...(copy.networks ?? []), ...vips.keys(), ...tasks.keys()]);
    const lname = normalizeName(copy.name);
    for (const networkId of networks) {
      const here = tasks.get(networkId) ?? [];
      const main = copy.mode === "vip" ? (vips.get(networkId) ?? []) : here;
      const byName = this.names.get(networkId) ?? new Map<string, OnNetwork[]>();
      this.names.set(networkId, byName);
      byName.set(lname, [...(byName.get(lname) ?? []), { id: copy.id, name: copy.name, main, tasks: here }]);
      for (const ip of vips.get(networkId) ?? []) {
        this.vips.set(ip, [...(this.vips.get(ip) ?? []), { id: copy.id, name: copy.name, networkId }]);
      }
    }
    this.generation++;
  }

  /** Removes the service; an unknown id is a no-op (and leaves the generation, so memos stay). */
  remove(id: string): void {
    if (this.unindex(id)) this.generation++;
  }

  /**
   * The addresses a query for `lname` gets on network `networkId`: the service's own name (VIP or
   * backends by mode) or tasks.NAME (backends). Undefined when no service answers to the name there;
   * an empty list when one does but has nothing to give (NODATA, not NXDOMAIN).
   */
  addressesOn(networkId: string, lname: string): readonly string[] | undefined {
    const byName = this.names.get(networkId);
    if (!byName) return undefined;
    const own = byName.get(lname);
    const ofTasks = lname.startsWith(TASKS_PREFIX) ? byName.get(lname.slice(TASKS_PREFIX.length)) : undefined;
    if (!ofTasks) {
      if (!own) return undefined;
      return own.length === 1 ? own[0]!.main : merged(own.map((s) => s.main));
    }
    if (!own && ofTasks.length === 1) return ofTasks[0]!.tasks;
    return merged([...(own ?? []).map((s) => s.main), ...ofTasks.map((s) => s.tasks)]);
  }

  /** The names of the services whose VIP this is on the scope's networks, in scope order. */
  namesOfVip(scope: Scope, ip: string): string[] {
    const owners = this.vips.get(ip);
    if (!owners) return [];
    const out: string[] = [];
    for (const net of scope) for (const o of owners) if (o.networkId === net) out.push(o.name);
    return [...new Set(out)];
  }

  /** Every network some service is on. */
  networks(): string[] {
    return [...this.names.keys()];
  }

  get(id: string): DnsServiceEntry | undefined {
    return this.entries.get(id);
  }

  private unindex(id: string): boolean {
    const old = this.entries.get(id);
    if (!old) return false;
    this.entries.delete(id);
    const lname = normalizeName(old.name);
    for (const [networkId, byName] of this.names) {
      const left = byName.get(lname)?.filter((s) => s.id !== id);
      if (left === undefined) continue;
      if (left.length > 0) byName.set(lname, left);
      else byName.delete(lname);
      if (byName.size === 0) this.names.delete(networkId);
    }
    for (const v of old.vips) {
      const ip = canonicalV4(v.ip);
      if (!ip) continue;
      const key = formatIp(ip);
      const left = this.vips.get(key)?.filter((o) => o.id !== id);
      if (left && left.length > 0) this.vips.set(key, left);
      else this.vips.delete(key);
    }
    return true;
  }
}
