/**
 * The service data plane on real traffic, with the bridge firewall's `inet trellis` table beside the
 * service table (so the intra-subnet notrack rule is live). Two lab hosts carry one network
 * 10.78.0.0/24 as one L2 segment (a veth "wire" between their bridges stands in for VXLAN), with the
 * same gateway address and MAC on both bridges and every VIP as a /32 on both, as the daemon lays
 * them out. h1 has a client and two backends and a mesh port (10.78.0.251, its own MAC) like
 * lib/ingress/links.ts makes; h2 has one backend, "remote" for h1. A third lab host on the underlay
 * is the outside client of the routing mesh. Neighbour entries across the wire are static, as the
 * overlay programs them. Only h1 runs trellis's tables.
 */
import test, { type ExecutionContext } from "ava";
import { renderFirewall } from "../../lib/bridge/firewall.js";
import type { Service } from "../../lib/ingress/model.js";
import { ServiceProgrammer } from "../../lib/ingress/programmer.js";
import { nftApply } from "../../lib/kernel/nft.js";
import { Lab, type LabHost } from "../helpers/lab.js";
import { run } from "../helpers/proc.js";
import { type Counts, connections as countConnections, startBackend } from "../helpers/svc-traffic.js";

const NET = "10.78.0";
const GATEWAY_MAC = "02:00:0a:4e:00:01";
const MESH_IP = `${NET}.251`;
const MESH_MAC = "02:00:0a:4e:00:fb";
const VIP_LOCAL = `${NET}.250`;
const VIP_REMOTE = `${NET}.249`;
const PORT = 8080;
const MESH_PORT = 30080;
const MESH_EMPTY = 30081;
const MESH_REMOTE = 30082;
/** bit 24: lib/ingress/layout.ts MESH_MARK, as conntrack prints it */
const MARK = "mark=16777216";

interface Bed {
  lab: Lab;
  h1: LabHost;
  h2: LabHost;
  ext: LabHost;
  client: string;
  programmer: ServiceProgrammer;
  services: Service[];
}
let bed: Bed | undefined;

async function ip(args: string[]): Promise<void> {
  const r = await run(["ip", ...args]);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** The network's bridge on a host: the shared gateway address and MAC, every VIP as a /32. */
async function bridge(lab: Lab, host: LabHost): Promise<void> {
  await ip(["-n", host.ns, "link", "add", "br0", "address", GATEWAY_MAC, "type", "bridge"]);
  await ip(["-n", host.ns, "addr", "add", `${NET}.1/24`, "dev", "br0"]);
  for (const vip of [VIP_LOCAL, VIP_REMOTE])
    await ip(["-n", host.ns, "addr", "add", `${vip}/32`, "dev", "br0"]);
  await ip(["-n", host.ns, "link", "set", "br0", "up"]);
  await lab.exec(host.ns, [
    "sysctl",
    "-qw",
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.br0.send_redirects=0",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
  ]);
}

/** A container on the host's bridge at NET.<n> with a fixed MAC, its default route via the gateway. */
async function container(lab: Lab, host: LabHost, name: string, n: number): Promise<string> {
  const ns = await lab.addContainer(name);
  const mac = `02:00:0a:4e:00:${n.toString(16).padStart(2, "0")}`;
  await ip([
    "-n",
    host.ns,
    "link",
    "add",
    `ve-${name}`,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "address",
    mac,
    "netns",
    ns,
  ]);
  await ip(["-n", host.ns, "link", "set", `ve-${name}`, "master", "br0", "up"]);
  await ip(["-n", ns, "addr", "add", `${NET}.${n}/24`, "dev", "eth0"]);
  await ip(["-n", ns, "link", "set", "eth0", "up"]);
  await ip(["-n", ns, "route", "add", "default", "via", `${NET}.1`]);
  return ns;
}

const backend = (n: number) => ({ ip: `${NET}.${n}`, port: PORT });

test.before(async () => {
  const lab = await Lab.create();
  try {
    const h1 = await lab.addHost("h1");
    const h2 = await lab.addHost("h2");
    const ext = await lab.addHost("ext");
    await bridge(lab, h1);
    await bridge(lab, h2);
    // one L2 segment across the two hosts
    await ip(["-n", h1.ns, "link", "add", "wire", "type", "veth", "peer", "name", "wire", "netns", h2.ns]);
    for (const h of [h1, h2]) await ip(["-n", h.ns, "link", "set", "wire", "master", "br0", "up"]);
    const client = await container(lab, h1, "cl", 2);
    for (const n of [11, 12]) await startBackend(lab, await container(lab, h1, `be${n}`, n), `be${n}`, PORT);
    const remote = await container(lab, h2, "rb21", 21);
    await startBackend(lab, remote, "rb21", PORT);
    // h1's mesh port: the mesh address on a veth of its own, the peer on the bridge
    await ip([
      "-n",
      h1.ns,
      "link",
      "add",
      "mesh0",
      "address",
      MESH_MAC,
      "type",
      "veth",
      "peer",
      "name",
      "mesh0p",
    ]);
    await ip(["-n", h1.ns, "link", "set", "mesh0p", "master", "br0", "up"]);
    await ip(["-n", h1.ns, "addr", "add", `${MESH_IP}/32`, "dev", "mesh0"]);
    await ip(["-n", h1.ns, "link", "set", "mesh0", "up"]);
    await ip([
      "-n",
      h1.ns,
      "neigh",
      "replace",
      `${NET}.21`,
      "lladdr",
      "02:00:0a:4e:00:15",
      "dev",
      "br0",
      "nud",
      "permanent",
    ]);
    await ip([
      "-n",
      remote,
      "neigh",
      "replace",
      MESH_IP,
      "lladdr",
      MESH_MAC,
      "dev",
      "eth0",
      "nud",
      "permanent",
    ]);
    // a service of the host itself, which must not answer on a VIP
    await startBackend(lab, h1.ns, "host", 9999);

    const netns = `/run/netns/${h1.ns}`;
    const firewall = renderFirewall({
      networks: [
        {
          id: "n1",
          bridgeName: "br0",
          internal: false,
          masquerade: true,
          subnets4: [`${NET}.0/24`],
          gateways4: [`${NET}.1`],
          services: true,
        },
      ],
      ports: [],
      serviceVips: [VIP_LOCAL, VIP_REMOTE],
    });
    await nftApply(firewall, { netns });
    const services: Service[] = [
      {
        id: 1,
        name: "local",
        vips: [
          { ip: VIP_LOCAL, port: 80, proto: "tcp" },
          { ip: VIP_LOCAL, port: 80, proto: "udp" },
        ],
        backends: [backend(11), backend(12)],
        mesh: [
          { proto: "tcp", port: MESH_PORT, backends: [backend(11), backend(12)] },
          { proto: "udp", port: MESH_PORT, backends: [backend(11), backend(12)] },
          { proto: "tcp", port: MESH_EMPTY, backends: [] },
        ],
        affinity: "none",
      },
      {
        id: 2,
        name: "remote",
        vips: [{ ip: VIP_REMOTE, port: 80, proto: "tcp" }],
        backends: [backend(21)],
        mesh: [{ proto: "tcp", port: MESH_REMOTE, backends: [backend(21)] }],
        affinity: "none",
      },
    ];
    const programmer = new ServiceProgrammer({ nftApply: (script) => nftApply(script, { netns }) });
    await programmer.sync(services);
    await programmer.setSnat([{ backend: `${NET}.21`, source: MESH_IP }]);
    bed = { lab, h1, h2, ext, client, programmer, services };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
});

test.after.always(async () => {
  await bed?.lab.destroy();
});

/** COUNT new connections (4 at a time) from ns to dest:port. */
function connections(
  ns: string,
  proto: "tcp" | "udp",
  dest: string,
  port: number,
  count: number,
  timeoutMs = 3000,
) {
  return countConnections(bed!.lab, ns, { proto, ip: dest, port, count, conc: 4, timeoutMs });
}

/** The markers of the servers that answered and the client addresses they saw. */
function seen(r: Counts): { markers: string[]; addresses: string[] } {
  return { markers: Object.keys(r.markers).sort(), addresses: Object.keys(r.clients).sort() };
}

/** Only refusals: nobody answered and every attempt failed as given. */
const refusedOnly = (r: Counts) => ({ markers: r.markers, errors: r.errors });

/** conntrack entries in h1 matching the filter arguments, one line each. */
async function conntrack(args: string[]): Promise<string[]> {
  const r = await bed!.lab.exec(bed!.h1.ns, ["conntrack", "-L", ...args], { allowFail: true });
  if (r.code !== 0) throw new Error(`conntrack -L ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

function assertReaches(t: ExecutionContext, r: Counts, count: number, markers: string[], address: string) {
  t.deepEqual(r.errors, {});
  t.is(
    Object.values(r.markers).reduce((a, b) => a + b, 0),
    count,
  );
  t.deepEqual(seen(r), { markers, addresses: [address] });
}

test.serial(
  "(a) a container reaches a VIP on its own bridge over TCP; the backend sees the client's own address",
  async (t) => {
    const { client } = bed!;
    const r = await connections(client, "tcp", VIP_LOCAL, 80, 40);
    assertReaches(t, r, 40, ["be11", "be12"], `${NET}.2`);
    // the flows to the VIP are tracked (the reply was bridged and un-DNATed) ...
    const vip = await conntrack(["-p", "tcp", "--orig-dst", VIP_LOCAL]);
    t.true(vip.length >= 40, `${vip.length} entries`);
    t.true(
      vip.every((l) => /dst=10\.78\.0\.250 .* src=10\.78\.0\.1[12] dst=10\.78\.0\.2 /.test(l)),
      vip[0],
    );
    // ... and so are direct flows inside a network that carries a service: it is exempt from the
    // notrack rule as a whole, so that a backend removed from the service still drains
    const direct = await connections(client, "tcp", `${NET}.11`, PORT, 4);
    assertReaches(t, direct, 4, ["be11"], `${NET}.2`);
    t.is((await conntrack(["-p", "tcp", "--orig-dst", `${NET}.11`])).length, 4, "direct flows are tracked");
  },
);

test.serial("(a) UDP to the VIP: every backend, the client's own address", async (t) => {
  const r = await connections(bed!.client, "udp", VIP_LOCAL, 80, 40);
  assertReaches(t, r, 40, ["be11", "be12"], `${NET}.2`);
});

test.serial(
  "(a) a VIP answers its own ports only: other ports are refused, the host's services stay off it, ICMP works",
  async (t) => {
    const { client } = bed!;
    const tcp = await connections(client, "tcp", VIP_LOCAL, 9999, 8);
    t.deepEqual(refusedOnly(tcp), { markers: {}, errors: { ECONNREFUSED: 8 } });
    // UDP is refused by ICMP, which the kernel rate-limits (a burst of 6): stay under it
    const udp = await connections(client, "udp", VIP_LOCAL, 9999, 2);
    t.deepEqual(refusedOnly(udp), { markers: {}, errors: { ECONNREFUSED: 2 } });
    // the same host service on the gateway address answers
    const gateway = await connections(client, "tcp", `${NET}.1`, 9999, 2);
    assertReaches(t, gateway, 2, ["host"], `${NET}.2`);
    const ping = await bed!.lab.exec(client, ["ping", "-c", "1", "-W", "5", VIP_LOCAL], { allowFail: true });
    t.is(ping.code, 0, ping.stdout + ping.stderr);
  },
);

test.serial(
  "(b) routing mesh: a client on the underlay reaches a local backend, which sees the client's address",
  async (t) => {
    const { ext, h1 } = bed!;
    for (const proto of ["tcp", "udp"] as const) {
      const r = await connections(ext.ns, proto, h1.underlayIp, MESH_PORT, 40);
      assertReaches(t, r, 40, ["be11", "be12"], ext.underlayIp);
    }
    const marked = await conntrack(["-p", "tcp", "--orig-port-dst", String(MESH_PORT)]);
    t.true(marked.length >= 40);
    t.true(
      marked.every((l) => l.includes(MARK)),
      "mesh connections carry the mark",
    );
    t.false(
      marked.some((l) => l.includes(`dst=${MESH_IP}`)),
      "a local backend: no SNAT",
    );
  },
);

test.serial("(b) a published port with no backend is refused at once (RST), on TCP", async (t) => {
  const { ext, h1 } = bed!;
  const r = await connections(ext.ns, "tcp", h1.underlayIp, MESH_EMPTY, 10);
  t.deepEqual(refusedOnly(r), { markers: {}, errors: { ECONNREFUSED: 10 } }, "refused, not timed out");
});

test.serial("(b) the host reaches its own published port on a local address, not on loopback", async (t) => {
  const { h1 } = bed!;
  const r = await connections(h1.ns, "tcp", h1.underlayIp, MESH_PORT, 10);
  t.deepEqual(r.errors, {});
  t.deepEqual(seen(r).markers, ["be11", "be12"]);
  const loopback = await connections(h1.ns, "tcp", "127.0.0.1", MESH_PORT, 2);
  t.deepEqual(refusedOnly(loopback), { markers: {}, errors: { ECONNREFUSED: 2 } });
});

test.serial(
  "(c) a remote backend: mesh connections are SNATed to the mesh address, and only those",
  async (t) => {
    const { ext, h1, client } = bed!;
    const r = await connections(ext.ns, "tcp", h1.underlayIp, MESH_REMOTE, 10);
    assertReaches(t, r, 10, ["rb21"], MESH_IP);
    const entries = await conntrack(["-p", "tcp", "--orig-port-dst", String(MESH_REMOTE)]);
    t.is(entries.length, 10);
    const reply = new RegExp(
      `src=${ext.underlayIp} dst=${h1.underlayIp} .* src=10\\.78\\.0\\.21 dst=${MESH_IP} sport=${PORT} `,
    );
    t.true(
      entries.every((l) => reply.test(l) && l.includes(MARK)),
      entries[0],
    );
    // the host's own connection to a VIP whose backend is remote: SNATed too
    const own = await connections(h1.ns, "tcp", VIP_REMOTE, 80, 4);
    assertReaches(t, own, 4, ["rb21"], MESH_IP);
    // a container's connection to the same VIP is not: the reply crosses back over the wire into
    // h1's bridge, where conntrack undoes the DNAT, and the backend sees the container's address
    const fromContainer = await connections(client, "tcp", VIP_REMOTE, 80, 10);
    assertReaches(t, fromContainer, 10, ["rb21"], `${NET}.2`);
  },
);

test.serial(
  "(c) without its SNAT element, a remote backend's mesh connection does not complete",
  async (t) => {
    const { ext, h1, programmer } = bed!;
    t.is((await programmer.setSnat([])).mode, "diff");
    try {
      const r = await connections(ext.ns, "tcp", h1.underlayIp, MESH_REMOTE, 2, 1500);
      t.deepEqual(r.markers, {}, "the backend answered the client directly, from the wrong address");
    } finally {
      await programmer.setSnat([{ backend: `${NET}.21`, source: MESH_IP }]);
    }
    const again = await connections(ext.ns, "tcp", h1.underlayIp, MESH_REMOTE, 2);
    assertReaches(t, again, 2, ["rb21"], MESH_IP);
  },
);
