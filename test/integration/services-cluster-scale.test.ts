/**
 * 1 000 services on an overlay network of a three-host cluster, created on one host and removed
 * again: every host programs all of them (a /32 per VIP on its bridge, one element per VIP in its
 * service table), and after the removal no host keeps a rule, element, address or mesh port.
 */
import test from "ava";
import type { ServiceView } from "../../lib/ingress/spec.js";
import { type Lab, type LabDaemon, waitFor } from "../helpers/lab.js";
import { cluster } from "../helpers/overlay.js";

const COUNT = 1000;

async function hostState(lab: Lab, ns: string) {
  const addrs = (await lab.exec(ns, ["ip", "-4", "-o", "addr", "show"])).stdout;
  const table = await lab.exec(ns, ["nft", "-j", "list", "map", "ip", "trellis_svc", "services"], {
    allowFail: true,
  });
  const vipSet = await lab.exec(ns, ["nft", "-j", "list", "set", "inet", "trellis", "svc_vips"], {
    allowFail: true,
  });
  const elems = (out: string) =>
    (
      JSON.parse(out) as { nftables: Array<{ map?: { elem?: unknown[] }; set?: { elem?: unknown[] } }> }
    ).nftables
      .map((o) => (o.map ?? o.set)?.elem?.length ?? 0)
      .reduce((a, b) => a + b, 0);
  return {
    // the mesh port's own /32 is not a VIP
    vip32: addrs.split("\n").filter((l) => / inet \S+\/32 /.test(l) && !/ tm-/.test(l)).length,
    meshPorts: addrs.split("\n").filter((l) => / tm-/.test(l)).length,
    table: table.code === 0,
    serviceElements: table.code === 0 ? elems(table.stdout) : 0,
    vipSetElements: vipSet.code === 0 ? elems(vipSet.stdout) : 0,
  };
}

test("1 000 services across three hosts: all programmed everywhere, then nothing left anywhere", async (t) => {
  t.timeout(15 * 60_000);
  const { lab, hosts, daemons } = await cluster(t, 3);
  const [d1] = daemons as [LabDaemon];
  await d1.cli(["network", "create", "-d", "overlay", "--subnet", "10.170.0.0/20", "big"]);
  for (const d of daemons) {
    await waitFor(async () => (await d.api("GET", "/networks/big")).status === 200, {
      what: `big on ${d.host.name}`,
    });
  }
  const ids: string[] = [];
  for (let i = 0; i < COUNT; i++) {
    const r = await d1.api(
      "POST",
      "/trellis/services/create",
      { Name: `s${i}`, Networks: ["big"], Ports: [{ Protocol: "tcp", TargetPort: 80 }] },
      { timeoutMs: 30_000 },
    );
    t.is(r.status, 201, JSON.stringify(r.body));
    ids.push((r.body as ServiceView).ID);
  }
  const vips = new Set(
    ((await d1.api("GET", "/trellis/services")).body as ServiceView[]).map((s) => s.VirtualIPs[0]!.Addr),
  );
  t.is(vips.size, COUNT, "distinct VIPs");
  for (const [i, d] of daemons.entries()) {
    await waitFor(
      async () => {
        const s = await hostState(lab, hosts[i]!.ns);
        return s.vip32 === COUNT && s.serviceElements === COUNT && s.vipSetElements === COUNT;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `${d.host.name} programmed ${COUNT} services` },
    );
    t.is(((await d.api("GET", "/trellis/services")).body as unknown[]).length, COUNT);
  }
  for (const id of ids) {
    const r = await d1.api("DELETE", `/trellis/services/${id}`, undefined, { timeoutMs: 30_000 });
    t.is(r.status, 204, JSON.stringify(r.body));
  }
  for (const [i, d] of daemons.entries()) {
    await waitFor(
      async () => {
        const s = await hostState(lab, hosts[i]!.ns);
        return !s.table && s.vip32 === 0 && s.vipSetElements === 0 && s.meshPorts === 0;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `${d.host.name} left nothing behind` },
    );
    t.deepEqual((await d.api("GET", "/trellis/services")).body, []);
  }
  // and the network can go, on every host
  await d1.cli(["network", "rm", "big"]);
  for (const d of daemons) {
    await waitFor(async () => (await d.api("GET", "/networks/big")).status === 404, {
      what: `big gone on ${d.host.name}`,
    });
  }
});
