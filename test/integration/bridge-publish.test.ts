/**
 * Published ports without a userland proxy: DNAT from nftables maps, reached from another machine on
 * the underlay, from the host itself, and from containers (hairpin), and changed element by element.
 */
import test from "ava";
import { Lab } from "../helpers/lab.js";
import { createNetwork, fetchMarker, inspect, mapElements, request, startServer } from "../helpers/net.js";

test("a published port is reached from another host, from the host itself and from containers (hairpin)", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const client = await lab.addHost("client"); // an outside machine on the lab underlay
  const d = await lab.startDaemon(host);
  await createNetwork(d, "web", ["--subnet", "10.40.0.0/24"]);
  await createNetwork(d, "other", ["--subnet", "10.40.1.0/24"]);
  const server = await lab.addContainer("server");
  const peer = await lab.addContainer("peer");
  const stranger = await lab.addContainer("stranger");
  await d.cli(["network", "connect", "-p", "8080:80", "web", server]);
  await d.cli(["network", "connect", "web", peer]);
  await d.cli(["network", "connect", "other", stranger]);
  await startServer(lab, server, 80, "published");
  t.is(await fetchMarker(lab, client.ns, host.underlayIp, 8080), "published", "from another host");
  t.is(await fetchMarker(lab, host.ns, host.underlayIp, 8080), "published", "from the host itself");
  t.is(await fetchMarker(lab, peer, host.underlayIp, 8080), "published", "hairpin from the same network");
  t.is(await fetchMarker(lab, server, host.underlayIp, 8080), "published", "hairpin from the server itself");
  t.is(
    await fetchMarker(lab, stranger, host.underlayIp, 8080),
    "published",
    "from another network via the host",
  );
  t.is(
    await fetchMarker(lab, client.ns, host.underlayIp, 8081),
    undefined,
    "an unpublished port stays closed",
  );
  const containers = (await inspect(d, "web")).Containers as Record<
    string,
    { Name: string; Ports: string[] }
  >;
  t.deepEqual(Object.values(containers).find((c) => c.Name === server)?.Ports, ["0.0.0.0:8080->80/tcp"]);
  // the client's address is visible to the backend: no masquerade on the way in
  t.is((await request(lab, client.ns, host.underlayIp, 8080))?.client, client.underlayIp);
});

test("publishing is incremental: 32 ports on connect change only that endpoint's map elements", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "many", ["--subnet", "10.41.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  const c2 = await lab.addContainer("c2");
  await d.cli(["network", "connect", "-p", "7000:70", "many", c1]);
  const before = await mapElements(lab, host.ns, "pub4_tcp");
  t.is(before.length, 1);
  const publish = Array.from({ length: 32 }, (_, i) => ["-p", `${9000 + i}:${100 + i}`]).flat();
  const started = process.hrtime.bigint();
  await d.cli(["network", "connect", ...publish, "many", c2]);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.log(`connect with 32 published ports took ${ms.toFixed(1)} ms end to end through the CLI`);
  t.is((await mapElements(lab, host.ns, "pub4_tcp")).length, 33);
  await startServer(lab, c2, 131, "port-131");
  t.is(await fetchMarker(lab, host.ns, host.underlayIp, 9031), "port-131");
  await d.cli(["network", "disconnect", "many", c2]);
  t.is((await mapElements(lab, host.ns, "pub4_tcp")).length, 1, "disconnect removed exactly its 32 elements");
  // The same at the API (no CLI process start): timing is logged, never asserted.
  const body = {
    Container: c2,
    Trellis: {
      Publish: Array.from({ length: 32 }, (_, i) => ({
        Proto: "tcp",
        HostPort: 9100 + i,
        ContainerPort: 100 + i,
      })),
    },
  };
  const t0 = process.hrtime.bigint();
  t.is((await d.api("POST", "/networks/many/connect", body)).status, 200);
  t.log(
    `connect with 32 published ports took ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms at the API`,
  );
  t.is((await mapElements(lab, host.ns, "pub4_tcp")).length, 33);
  await d.cli(["network", "disconnect", "many", c2]);
  const conflict = await d.cli(["network", "connect", "-p", "7000:71", "many", c2], { allowFail: true });
  t.is(conflict.code, 1);
  t.regex(conflict.stderr, /7000\/tcp is already published/);
});

test("a port published on one host address answers there only; UDP works too", async (t) => {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const client = await lab.addHost("client");
  const d = await lab.startDaemon(host);
  await createNetwork(d, "n", ["--subnet", "10.42.0.0/24"]);
  const c1 = await lab.addContainer("c1");
  await d.cli(["network", "connect", "-p", `${host.underlayIp}:8181:80`, "-p", "5353:5300/udp", "n", c1]);
  await startServer(lab, c1, 80, "specific");
  t.is(await fetchMarker(lab, client.ns, host.underlayIp, 8181), "specific");
  t.is(await fetchMarker(lab, host.ns, "10.42.0.1", 8181), undefined, "not published on the gateway address");
  await startServer(lab, c1, 5300, "udp-pong", "udp");
  t.is(await fetchMarker(lab, client.ns, host.underlayIp, 5353, "udp"), "udp-pong");
});
