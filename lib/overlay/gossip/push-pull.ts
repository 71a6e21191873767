/**
 * Anti-entropy and join: a TCP exchange of full membership and of the table records whose
 * buckets differ. Three frames (see PushPullMsg):
 *
 *   initiator → peer   request   members + bucket digests
 *   peer → initiator   response  members (after merging the request's, so refutations are in)
 *                                + bucket digests + the peer's records in differing buckets
 *   initiator → peer   entries   the initiator's records in those buckets that the peer lacks
 *
 * After one exchange both sides hold the union (by last-writer-wins) of what either had in the
 * buckets that differed, so any missed broadcast is repaired on the next round.
 */
import type { GossipConfig } from "./config.js";
import { GossipError } from "./errors.js";
import type { Membership } from "./members.js";
import type { Envelope, PushPullMsg, WireRecord } from "./messages.js";
import type { GossipStats } from "./stats.js";
import type { ReplicatedTable } from "./table.js";
import { BucketDigest } from "./table-digest.js";
import type { Stream, Transport } from "./transport.js";
import type { Wire } from "./wire.js";

export interface SyncHost {
  config: GossipConfig;
  transport: Transport;
  wire: Wire;
  membership: Membership;
  table: ReplicatedTable;
  stats: GossipStats;
  /** Notes direct contact with a member (push-pull counts as contact). */
  touch(name: string): void;
}

const versionId = (r: WireRecord): string =>
  `${r.keyspace}\u0000${r.key}\u0000${r.lamport}\u0000${r.owner}\u0000${r.deleted ? 1 : 0}`;

/** Runs one push-pull with `addr` as the initiator. Throws on any failure (caller counts). */
export async function pushPull(host: SyncHost, addr: string, join: boolean): Promise<string> {
  const { config, wire, membership, table } = host;
  const stream = await host.transport.openStream(addr, config.tcpTimeout);
  host.stats.streamsOpened++;
  try {
    const myBuckets = table.bucketDigests();
    const request: PushPullMsg = {
      type: "push-pull",
      phase: "request",
      join,
      members: membership.snapshots(),
      buckets: myBuckets,
      records: [],
    };
    await wire.writeFrame(stream, [request]);
    const env = await wire.readFrame(stream, config.tcpTimeout);
    const response = findPushPull(env, "response");
    host.touch(env.from);
    membership.mergeRemote(response.members, env.from);
    const theirs = new Set(response.records.map(versionId));
    for (const rec of response.records) table.merge(rec);
    const differing = bucketsDiffering(myBuckets, response.buckets);
    const missing = table.recordsIn(differing).filter((r) => !theirs.has(versionId(r)));
    await wire.writeFrame(stream, [
      { ...request, phase: "entries", members: [], buckets: new Uint8Array(0), records: missing },
    ]);
    return env.from;
  } finally {
    stream.close();
  }
}

/** Serves a push-pull whose request frame has already been read. */
export async function servePushPull(host: SyncHost, stream: Stream, env: Envelope): Promise<void> {
  const { config, wire, membership, table } = host;
  const request = findPushPull(env, "request");
  membership.mergeRemote(request.members, env.from);
  const records = table.recordsIn(table.differingBuckets(request.buckets));
  const response: PushPullMsg = {
    type: "push-pull",
    phase: "response",
    join: request.join,
    members: membership.snapshots(),
    buckets: table.bucketDigests(),
    records,
  };
  await wire.writeFrame(stream, [response]);
  const final = findPushPull(await wire.readFrame(stream, config.tcpTimeout), "entries");
  for (const rec of final.records) table.merge(rec);
}

function findPushPull(env: Envelope, phase: PushPullMsg["phase"]): PushPullMsg {
  const msg = env.messages.find((m): m is PushPullMsg => m.type === "push-pull" && m.phase === phase);
  if (!msg) throw new GossipError(`push-pull: expected a ${phase} from ${env.from}`);
  return msg;
}

function bucketsDiffering(mine: Uint8Array, theirs: Uint8Array): Set<number> {
  const digest = new BucketDigest();
  digest.load(mine);
  return digest.differing(theirs);
}
