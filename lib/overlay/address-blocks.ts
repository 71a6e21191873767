/**
 * Overlay address allocation over the replicated table: reads claims and acknowledgements into a
 * BlockState, asks blocks.ts what to write, writes it, and hands out addresses only from blocks this
 * host owns (see blocks.ts for why that is partition-safe).
 *
 * Table layout, keyspace `ipam:<network id>`, each entry written only by the node in its key:
 *   claim/<block>/<claimer>  = 1          a claim on a block
 *   ack/<block>/<acker>      = <claimer>  the one claim this acker supports
 * A claim of a member that is dead or suspect (not one that left) still counts: it may only be
 * partitioned away and still handing out addresses from that block.
 */
import { exhausted } from "../common/errors.js";
import { formatAddress, parseCidr } from "../ipam/cidr.js";
import type { NetworkRecord, PoolRecord } from "../store/records.js";
import type { SqliteStore } from "../store/sqlite-store.js";
import { apply, type BlockAction, type BlockState, decide, emptyState, ownedBy } from "./blocks.js";
import type { Cluster } from "./cluster.js";

export const ipamKeyspace = (networkId: string) => `ipam:${networkId}`;
const stickyKey = (networkId: string) => `overlay-blocks:${networkId}`;

/** Host bits per block: at least 16 addresses per block, at most 256 blocks per subnet. */
export function blockBitsFor(subnet: string): number {
  const hostBits = 32 - parseCidr(subnet).prefixLen;
  return Math.min(hostBits, Math.max(4, hostBits - 8));
}

export class AddressBlocks {
  private readonly cursors = new Map<string, number>();

  constructor(
    private readonly cluster: Cluster,
    private readonly store: SqliteStore,
  ) {}

  electorate(): Set<string> {
    const names = this.cluster
      .members()
      .filter((m) => m.state !== "left")
      .map((m) => m.name);
    return new Set([...names, this.cluster.self]);
  }

  state(networkId: string): BlockState {
    const state = emptyState();
    for (const e of this.cluster.node.table.entries(ipamKeyspace(networkId))) {
      const [kind, blockText, author] = e.key.split("/");
      const block = Number(blockText);
      if (author !== e.owner || !Number.isInteger(block)) continue; // only authors write their keys
      const ownerState = this.cluster.stateOf(e.owner);
      if (kind === "claim") {
        const stillClaimed = !e.deleted || ownerState === "dead" || ownerState === "suspect";
        if (stillClaimed) apply(state, author, { kind: "claim", block });
      } else if (kind === "ack" && !e.deleted && typeof e.value === "string") {
        // apply() of a claim also records the claimer's self-ack; a separate ack overrides it
        const acks = state.acks.get(block) ?? new Map<string, string>();
        acks.set(author, e.value);
        state.acks.set(block, acks);
      }
    }
    return state;
  }

  /** Blocks this host owns: what the table says now, plus what it ever owned (never given up). */
  owned(networkId: string): number[] {
    const fromTable = ownedBy(this.state(networkId), this.cluster.self, this.electorate());
    const sticky = this.sticky(networkId);
    const merged = [...new Set([...sticky, ...fromTable])].sort((a, b) => a - b);
    if (merged.length !== sticky.length) this.store.setMeta(stickyKey(networkId), JSON.stringify(merged));
    return merged;
  }

  private sticky(networkId: string): number[] {
    const raw = this.store.getMeta(stickyKey(networkId));
    return raw ? (JSON.parse(raw) as number[]) : [];
  }

  forget(networkId: string): void {
    this.store.deleteMeta(stickyKey(networkId));
    this.cursors.delete(networkId);
  }

  /** One round of the claim protocol for this host; returns the actions written. */
  step(net: NetworkRecord, needBlock: boolean): BlockAction[] {
    const blockCount = 2 ** (32 - parseCidr(this.subnetOf(net)).prefixLen - net.overlay!.blockBits);
    const actions = decide({
      state: this.state(net.id),
      self: this.cluster.self,
      electorate: this.electorate(),
      blockCount,
      needBlock,
    });
    const table = this.cluster.node.table;
    const ks = ipamKeyspace(net.id);
    const me = this.cluster.self;
    for (const a of actions) {
      if (a.kind === "claim") {
        table.set(ks, `claim/${a.block}/${me}`, 1);
        table.set(ks, `ack/${a.block}/${me}`, me);
      } else if (a.kind === "withdraw") {
        table.delete(ks, `claim/${a.block}/${me}`);
        if (table.get(ks, `ack/${a.block}/${me}`)?.value === me) table.delete(ks, `ack/${a.block}/${me}`);
      } else if (a.kind === "ack") {
        table.set(ks, `ack/${a.block}/${me}`, a.claimer);
      } else {
        table.delete(ks, `ack/${a.block}/${me}`);
      }
    }
    return actions;
  }

  /** Re-announces claims on blocks this host owns (after a restart the table may have forgotten). */
  reassert(net: NetworkRecord): void {
    const table = this.cluster.node.table;
    const ks = ipamKeyspace(net.id);
    const me = this.cluster.self;
    for (const block of this.sticky(net.id)) {
      if (table.get(ks, `claim/${block}/${me}`)?.deleted !== false) table.set(ks, `claim/${block}/${me}`, 1);
      if (table.get(ks, `ack/${block}/${me}`)?.deleted !== false) table.set(ks, `ack/${block}/${me}`, me);
    }
  }

  private subnetOf(net: NetworkRecord): string {
    const pool = this.store.getPool(net.poolIds[0]!);
    if (!pool) throw exhausted(`network ${net.name} has no address pool`);
    return pool.subnet;
  }

  /** Addresses of the blocks this host owns, minus network, broadcast and gateway. */
  private usable(net: NetworkRecord, pool: PoolRecord): string[] {
    const subnet = parseCidr(pool.subnet);
    const blockSize = 2 ** net.overlay!.blockBits;
    const last = subnet.network + (1n << BigInt(32 - subnet.prefixLen)) - 1n;
    const out: string[] = [];
    for (const block of this.owned(net.id)) {
      const start = subnet.network + BigInt(block * blockSize);
      for (let i = 0; i < blockSize; i++) {
        const a = start + BigInt(i);
        if (a === subnet.network || a === last) continue;
        const text = formatAddress(4, a);
        if (text !== pool.gateway) out.push(text);
      }
    }
    return out;
  }

  /** How many addresses of owned blocks are still free. */
  freeCount(net: NetworkRecord, pool: PoolRecord): number {
    return this.usable(net, pool).filter((a) => !this.store.getAllocation(pool.id, a)).length;
  }

  /** A free address from an owned block (round robin), or undefined when they are full. */
  pick(net: NetworkRecord, pool: PoolRecord): string | undefined {
    const usable = this.usable(net, pool);
    const cursor = this.cursors.get(net.id) ?? -1;
    for (let step = 1; step <= usable.length; step++) {
      const index = (cursor + step) % usable.length;
      const address = usable[index]!;
      if (this.store.getAllocation(pool.id, address)) continue;
      this.cursors.set(net.id, index);
      return address;
    }
    return undefined;
  }

  /** Whether `address` lies in a block this host owns. */
  ownsAddress(net: NetworkRecord, pool: PoolRecord, address: string): boolean {
    const subnet = parseCidr(pool.subnet);
    const offset = parseCidr(`${address}/32`).network - subnet.network;
    const block = Number(offset >> BigInt(net.overlay!.blockBits));
    return this.owned(net.id).includes(block);
  }
}
