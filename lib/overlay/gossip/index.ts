/**
 * trellis gossip: cluster membership, failure detection and a replicated endpoint table over
 * UDP + TCP (port 7946), with no external store. SWIM with Lifeguard's refinements, after the
 * design of hashicorp/memberlist; written for trellis, not ported.
 *
 * ## Contract (what the overlay driver uses)
 *
 * ```ts
 * const node = new GossipNode(
 *   { name, advertiseAddr, bindAddr, port, keyring, ...tunables },  // GossipOptions, config.ts
 *   new UdpTcpTransport(),        // or new MemoryNetwork({ clock }).transport() in tests
 *   log,                          // pino logger (or silentLogger())
 * );
 * await node.start();                              // bind bindAddr:port (UDP + TCP), start timers
 * const reached = await node.join(["10.99.0.11:7946"]); // push-pull with each seed; throws if none answered
 * node.members();                                  // Member[]: name, addr, port, state, incarnation, lastContactMs
 * node.on("member", (m, previous) => ...);         // new member (previous undefined), state or address change
 * node.table.set("endpoints/net1", id, { mac, ip, vtep });   // owner = this node, Lamport tick
 * node.table.delete("endpoints/net1", id);         // tombstone, reaped after tombstoneGraceMs
 * node.table.get(ks, key); node.table.entries(ks); // TableEntry: key, value, owner, lamport, deleted
 * node.table.on("change", (ev) => ...);            // once per effective change, local or remote
 * node.keyring?.add(k); node.keyring?.use(k); node.keyring?.remove(old); // rotate without restart
 * node.stats();                                    // bytes/packets, drops (unauthenticated, malformed), probes, ...
 * await node.leave(1000);                          // broadcast "left", then stop
 * await node.stop();                               // stop without goodbye
 * ```
 *
 * ## Semantics the driver can rely on
 * - Table entries are last-writer-wins by (lamport, owner, deleted, value): every node that has
 *   seen the same versions holds the same table (`table.digest()` equal), in any delivery order.
 * - A node that missed a broadcast converges at the next push-pull (every pushPullInterval).
 * - When a member is declared dead or leaves, its entries read as deleted everywhere and a
 *   "change" event with `deleted: true` fires for each. They come back (events again) if the
 *   member is seen alive again within deadNodeReclaimMs; after that they are purged.
 * - Events carry the *visible* state: `deleted: true` means "remove it from the data plane",
 *   whether it was a delete, a tombstone winning, or the owner dying.
 * - A restarted node adopts the versions the cluster still holds for it; the driver should
 *   compare `entries()` owned by `node.name` with what it really has and set/delete the
 *   difference. Its new writes win (its Lamport clock starts at wall-clock ms and jumps past
 *   everything it learns).
 * - JSON values are returned as stored: treat them as read-only.
 * - Keyring rotation is per node: the caller runs add → use → remove on every node (e.g. the
 *   `trellis cluster rotate-key` fan-out), waiting for each step to reach all nodes.
 */
export { formatAddress, type HostPort, parseAddress } from "./address.js";
export { type Clock, realClock, type Timer, VirtualClock } from "./clock.js";
export {
  DEFAULT_PORT,
  DEFAULTS,
  type GossipConfig,
  type GossipOptions,
  type GossipTunables,
  lanProfile,
  resolveConfig,
  testProfile,
} from "./config.js";
export { type DecodeFailure, GossipDecodeError, GossipError } from "./errors.js";
export { KEY_BYTES, Keyring } from "./keyring.js";
export { type GossipLogger, silentLogger } from "./log.js";
export type { Member } from "./members.js";
export { MemoryNetwork, type MemoryNetworkOptions, MemoryTransport } from "./memory-transport.js";
export type { JsonValue, MemberState, TableValue } from "./messages.js";
export { type GossipDeps, GossipNode, type NodeEvents } from "./node.js";
export { deriveSeed, type Random, seededRandom } from "./random.js";
export { type FalseDeath, SimCluster, type SimOptions } from "./sim.js";
export type { GossipStats } from "./stats.js";
export { ReplicatedTable, type TableEntry } from "./table.js";
export type { ListenOptions, Stream, Transport } from "./transport.js";
export { UdpTcpTransport } from "./udp-tcp-transport.js";
