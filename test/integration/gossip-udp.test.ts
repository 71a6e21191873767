/**
 * Gossip over real sockets: three GossipNodes with UdpTcpTransport on 127.0.0.1 (loopback only,
 * ports chosen by the kernel), encrypted with a shared key, test-profile timers. They join,
 * replicate an entry, detect a stopped node, and refuse a node with another key.
 */
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import test from "ava";
import {
  GossipNode,
  Keyring,
  type Member,
  silentLogger,
  testProfile,
  UdpTcpTransport,
} from "../../lib/overlay/gossip/index.js";

const LOOPBACK = "127.0.0.1";

function makeNode(name: string, key: Uint8Array): GossipNode {
  return new GossipNode(
    { ...testProfile(), name, advertiseAddr: LOOPBACK, port: 0, keyring: new Keyring([key]) },
    new UdpTcpTransport(),
    silentLogger(),
  );
}

/** Polls `pred` every 20 ms until it holds or `ms` pass (one retry helper with a deadline). */
async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

const stateOf = (node: GossipNode, name: string): Member["state"] | undefined =>
  node.members().find((m) => m.name === name)?.state;

test.serial("three encrypted nodes on loopback join, replicate, and detect a stopped node", async (t) => {
  const key = randomBytes(32);
  const nodes = ["a", "b", "c"].map((n) => makeNode(`it-${n}`, key));
  t.teardown(async () => {
    for (const n of nodes) await n.stop();
  });
  for (const n of nodes) await n.start();
  const [a, b, c] = nodes as [GossipNode, GossipNode, GossipNode];
  t.not(a.address, b.address);
  t.is(await b.join([a.address]), 1);
  t.is(await c.join([a.address, b.address]), 2);
  t.true(
    await until(() => nodes.every((n) => n.members().filter((m) => m.state === "alive").length === 3), 5_000),
  );

  b.table.set("endpoints/net1", "ep-b", { ip: "10.1.0.3", vtep: LOOPBACK });
  t.true(
    await until(() => nodes.every((n) => n.table.get("endpoints/net1", "ep-b")?.deleted === false), 3_000),
  );
  t.deepEqual(c.table.get("endpoints/net1", "ep-b")?.value, { ip: "10.1.0.3", vtep: LOOPBACK });
  t.true(await until(() => a.table.digest() === c.table.digest(), 3_000));

  const started = Date.now();
  await b.stop();
  const detected = await until(
    () =>
      stateOf(a, "it-b") === "dead" &&
      stateOf(c, "it-b") === "dead" &&
      a.table.get("endpoints/net1", "ep-b")?.deleted === true,
    10_000,
  );
  t.true(detected, "stopped node declared dead and its entry removed on both others");
  t.log(`dead on both others after ${Date.now() - started} ms (test profile: 100 ms probes)`);
  for (const n of [a, c]) {
    const s = n.stats();
    t.true(s.packetsSent > 0 && s.packetsReceived > 0 && s.bytesSent > 0);
    t.is(s.droppedUnauthenticated, 0);
    t.is(s.droppedMalformed, 0);
  }
});

test.serial(
  "a node with a different key is refused and its traffic counted as unauthenticated",
  async (t) => {
    const good = makeNode("it-good", randomBytes(32));
    const bad = makeNode("it-bad", randomBytes(32));
    t.teardown(async () => {
      await good.stop();
      await bad.stop();
    });
    await good.start();
    await bad.start();
    await t.throwsAsync(bad.join([good.address]), { message: /reached none/ });
    t.true(good.stats().droppedUnauthenticated >= 1);
    t.is(good.members().length, 1);
    t.is(bad.members().length, 1);
  },
);

test.serial("graceful leave is seen as 'left' over real sockets", async (t) => {
  const key = randomBytes(32);
  const a = makeNode("it-l-a", key);
  const b = makeNode("it-l-b", key);
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  await a.start();
  await b.start();
  await b.join([a.address]);
  t.true(await until(() => stateOf(a, "it-l-b") === "alive", 3_000));
  await b.leave(1_000);
  t.true(await until(() => stateOf(a, "it-l-b") === "left", 3_000));
});

test.serial("the TCP transport refuses a frame larger than the cap before buffering it", async (t) => {
  const transport = new UdpTcpTransport();
  t.teardown(() => transport.close());
  const { port } = await transport.listen({
    bindAddr: LOOPBACK,
    port: 0,
    advertiseAddr: LOOPBACK,
    maxFrameBytes: 1024,
  });
  let accepted = 0;
  transport.onStream((s) => {
    accepted++;
    s.read(2_000).catch(() => {});
  });
  const closed = await new Promise<boolean>((resolve) => {
    const sock = connect({ host: LOOPBACK, port }, () => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(64 * 1024 * 1024);
      sock.write(header);
    });
    sock.on("close", () => resolve(true));
    sock.on("error", () => {});
    setTimeout(() => resolve(false), 3_000).unref();
  });
  t.true(closed, "the server closed the connection");
  t.is(accepted, 1);
});

test.serial("listening on a port already in use fails with a clear error", async (t) => {
  const first = new UdpTcpTransport();
  const second = new UdpTcpTransport();
  t.teardown(async () => {
    await first.close();
    await second.close();
  });
  const opts = { bindAddr: LOOPBACK, port: 0, advertiseAddr: LOOPBACK, maxFrameBytes: 1024 };
  const { port } = await first.listen(opts);
  await t.throwsAsync(second.listen({ ...opts, port }), { message: /cannot bind UDP 127\.0\.0\.1:\d+/ });
});
