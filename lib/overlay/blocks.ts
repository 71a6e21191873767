/**
 * Cluster-wide address blocks for overlay networks, with no central allocator.
 *
 * An overlay subnet is cut into equal blocks. A host hands out addresses only from blocks it owns,
 * so two hosts can never give out the same address. A block is owned by the host whose claim has
 * been acknowledged by a strict majority of the electorate (the cluster's members, minus those that
 * left gracefully). Every member acknowledges at most one claim per block at a time, so two claims
 * on one block can never both reach a majority — not during a partition either: the minority side
 * cannot win any new block and keeps allocating from what it already owns.
 *
 * Claims and acknowledgements are entries of the replicated table (keyspace "ipam"), written by
 * their author only. This module is the pure decision logic: given what the table holds, who owns
 * what, and what this host should write next.
 */

export interface BlockState {
  /** block index → claimers */
  claims: Map<number, Set<string>>;
  /** block index → (acker → claimer it acknowledges) */
  acks: Map<number, Map<string, string>>;
}

export type BlockAction =
  | { kind: "ack"; block: number; claimer: string }
  | { kind: "unack"; block: number }
  | { kind: "claim"; block: number }
  | { kind: "withdraw"; block: number };

export function emptyState(): BlockState {
  return { claims: new Map(), acks: new Map() };
}

export const majority = (electorate: number): number => Math.floor(electorate / 2) + 1;

function ackCount(
  state: BlockState,
  block: number,
  claimer: string,
  electorate: ReadonlySet<string>,
): number {
  let n = 0;
  for (const [acker, target] of state.acks.get(block) ?? []) {
    if (target === claimer && electorate.has(acker)) n++;
  }
  return n;
}

/** The host that owns a block, if any claim on it has a majority of the electorate's acks. */
export function ownerOf(
  state: BlockState,
  block: number,
  electorate: ReadonlySet<string>,
): string | undefined {
  for (const claimer of state.claims.get(block) ?? []) {
    if (ackCount(state, block, claimer, electorate) >= majority(electorate.size)) return claimer;
  }
  return undefined;
}

/** The claim a member should support: the most acknowledged, ties to the lowest name (deterministic). */
function preferred(state: BlockState, block: number, electorate: ReadonlySet<string>): string | undefined {
  let best: string | undefined;
  let bestAcks = -1;
  for (const claimer of [...(state.claims.get(block) ?? [])].sort()) {
    const n = ackCount(state, block, claimer, electorate);
    if (n > bestAcks) {
      best = claimer;
      bestAcks = n;
    }
  }
  return best;
}

export interface DecideInput {
  state: BlockState;
  self: string;
  electorate: ReadonlySet<string>;
  blockCount: number;
  /** this host needs one more block (its owned blocks are full) */
  needBlock: boolean;
}

/** What `self` should write next. Applying the actions and re-deciding converges. */
export function decide(input: DecideInput): BlockAction[] {
  const { state, self, electorate } = input;
  const actions: BlockAction[] = [];
  const blocks = new Set([...state.claims.keys(), ...state.acks.keys()]);
  for (const block of blocks) {
    const claimers = state.claims.get(block) ?? new Set<string>();
    const myAck = state.acks.get(block)?.get(self);
    const owner = ownerOf(state, block, electorate);
    if (claimers.has(self) && owner !== self && owner !== undefined) {
      actions.push({ kind: "withdraw", block }); // someone else won
      continue;
    }
    if (claimers.has(self) && owner === undefined) {
      const rival = preferred(state, block, electorate);
      if (rival !== undefined && rival !== self && claimers.size > 1) {
        actions.push({ kind: "withdraw", block }); // yield to the preferred claim so one can win
        continue;
      }
    }
    if (myAck !== undefined && !claimers.has(myAck)) {
      actions.push({ kind: "unack", block }); // the claim I supported is gone
      continue;
    }
    if (myAck === undefined && claimers.size > 0) {
      const choice = owner ?? preferred(state, block, electorate);
      if (choice !== undefined) actions.push({ kind: "ack", block, claimer: choice });
    }
  }
  if (input.needBlock && !hasPendingClaim(state, self, electorate)) {
    const free = firstFreeBlock(state, input.blockCount);
    if (free !== undefined) actions.push({ kind: "claim", block: free });
  }
  return actions;
}

function hasPendingClaim(state: BlockState, self: string, electorate: ReadonlySet<string>): boolean {
  for (const [block, claimers] of state.claims) {
    if (claimers.has(self) && ownerOf(state, block, electorate) !== self) return true;
  }
  return false;
}

function firstFreeBlock(state: BlockState, blockCount: number): number | undefined {
  for (let b = 0; b < blockCount; b++) {
    if ((state.claims.get(b)?.size ?? 0) === 0 && (state.acks.get(b)?.size ?? 0) === 0) return b;
  }
  return undefined;
}

/** Blocks `self` owns. */
export function ownedBy(state: BlockState, self: string, electorate: ReadonlySet<string>): number[] {
  const out: number[] = [];
  for (const [block, claimers] of state.claims) {
    if (claimers.has(self) && ownerOf(state, block, electorate) === self) out.push(block);
  }
  return out.sort((a, b) => a - b);
}

/** Applies one host's action to a state (what the table will hold once it replicates). */
export function apply(state: BlockState, author: string, action: BlockAction): void {
  const claims = state.claims.get(action.block) ?? new Set<string>();
  const acks = state.acks.get(action.block) ?? new Map<string, string>();
  state.claims.set(action.block, claims);
  state.acks.set(action.block, acks);
  switch (action.kind) {
    case "claim":
      claims.add(author);
      acks.set(author, author);
      break;
    case "withdraw":
      claims.delete(author);
      if (acks.get(author) === author) acks.delete(author);
      break;
    case "ack":
      acks.set(author, action.claimer);
      break;
    case "unack":
      acks.delete(author);
      break;
  }
  if (claims.size === 0) state.claims.delete(action.block);
  if (acks.size === 0) state.acks.delete(action.block);
}
