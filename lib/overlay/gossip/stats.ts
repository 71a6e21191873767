/**
 * Counters a node keeps about itself; `node.stats()` returns a copy. Byte counts are what went
 * on the wire (after sealing).
 */
export interface GossipStats {
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  streamsOpened: number;
  streamsAccepted: number;
  streamBytesSent: number;
  streamBytesReceived: number;
  /** Packets/frames that failed authentication (wrong key, plaintext while keyed, tampering). */
  droppedUnauthenticated: number;
  /** Packets/frames that authenticated (or needed none) but did not decode. */
  droppedMalformed: number;
  /** Messages of unknown types skipped inside valid envelopes. */
  skippedUnknown: number;
  /** Probes started / probes that ended without any ack (direct, indirect or TCP). */
  probes: number;
  probesFailed: number;
  /** Suspicions we raised from our own probes; refutations we had to send about ourselves. */
  suspicionsRaised: number;
  refutations: number;
  /** Push-pull exchanges we initiated that completed / failed. */
  pushPulls: number;
  pushPullsFailed: number;
  /** Broadcasts currently queued for dissemination. */
  broadcastsQueued: number;
  /** Lifeguard local health score (0 = healthy). */
  health: number;
}

export function emptyStats(): GossipStats {
  return {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    streamsOpened: 0,
    streamsAccepted: 0,
    streamBytesSent: 0,
    streamBytesReceived: 0,
    droppedUnauthenticated: 0,
    droppedMalformed: 0,
    skippedUnknown: 0,
    probes: 0,
    probesFailed: 0,
    suspicionsRaised: 0,
    refutations: 0,
    pushPulls: 0,
    pushPullsFailed: 0,
    broadcastsQueued: 0,
    health: 0,
  };
}
