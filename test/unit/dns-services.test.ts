/**
 * Service names through the real resolver and handler chain, with real DNS wire messages: the VIP
 * (vip mode), the backends (dnsrr, tasks.NAME), NODATA without backends, scope, PTR of a VIP,
 * shadowing of container names, case/dot/search domain, memo invalidation, and survival of a
 * DnsService rebuild; a property over random services and scopes.
 */
import test from "ava";
import * as dns from "dns-packet";
import fc from "fast-check";
import { pino } from "pino";
import { DaemonEvents } from "../../lib/daemon/events.js";
import type { Final } from "../../lib/dns/chain.js";
import { LOCAL_TTL, singleLabelNxdomain, trellisNames } from "../../lib/dns/handlers.js";
import { DnsRecords } from "../../lib/dns/records.js";
import { Resolver } from "../../lib/dns/resolver.js";
import { DnsService } from "../../lib/dns/service.js";
import type { DnsServiceEntry } from "../../lib/dns/services.js";
import type { EndpointRecord, NetworkRecord } from "../../lib/store/records.js";
import { dnsEndpoint, resolverOver } from "../helpers/dns-fixture.js";
import { FakeKernel } from "../helpers/fake-kernel.js";

const WEB = "a".repeat(64);
const RR = "b".repeat(64);

/** vip mode on net-a and net-b; backends given out of address order on purpose */
const web = (extra: Partial<DnsServiceEntry> = {}): DnsServiceEntry => ({
  id: WEB,
  name: "Web",
  mode: "vip",
  vips: [
    { networkId: "net-a", ip: "10.1.0.100" },
    { networkId: "net-b", ip: "10.2.0.100" },
  ],
  tasks: [
    { networkId: "net-a", ip: "10.1.0.11" },
    { networkId: "net-b", ip: "10.2.0.10" },
    { networkId: "net-a", ip: "10.1.0.9" },
  ],
  ...extra,
});

const rr = (extra: Partial<DnsServiceEntry> = {}): DnsServiceEntry => ({
  id: RR,
  name: "rr",
  mode: "dnsrr",
  vips: [],
  tasks: [
    { networkId: "net-a", ip: "10.1.0.21" },
    { networkId: "net-a", ip: "10.1.0.20" },
  ],
  ...extra,
});

const ep = dnsEndpoint;

function setup() {
  const records = new DnsRecords();
  records.setSubnets("net-a", ["10.1.0.0/24"]);
  records.setSubnets("net-b", ["10.2.0.0/24"]);
  records.setSubnets("net-c", ["10.3.0.0/24"]);
  records.add(ep("ca", "net-a", "c-a", "client-a", { ipv4: "10.1.0.2" }));
  records.add(ep("cb", "net-b", "c-b", "client-b", { ipv4: "10.2.0.2" }));
  records.add(ep("cc", "net-c", "c-c", "client-c", { ipv4: "10.3.0.2" }));
  // c-ba joins net-b first: its scope order is [net-b, net-a]
  records.add(ep("cba1", "net-b", "c-ba", "client-ba", { ipv4: "10.2.0.3" }));
  records.add(ep("cba2", "net-a", "c-ba", "client-ba", { ipv4: "10.1.0.3" }));
  records.add(ep("t1", "net-a", "task-1", "web-task-1", { ipv4: "10.1.0.9" }));
  records.services.set(web());
  records.services.set(rr());
  return resolverOver(records);
}

const query = (name: string, type: dns.RecordType = "A", id = 4242): Buffer =>
  dns.encode({ id, type: "query", flags: dns.RECURSION_DESIRED, questions: [{ name, type }] });

function ask(resolver: Resolver, asker: string, name: string, type: dns.RecordType = "A") {
  const out = resolver.answer(asker, query(name, type), "udp");
  if (out instanceof Promise || !out) throw new Error("local answers must be synchronous replies");
  return dns.decode(out);
}

const rc = (p: dns.DecodedPacket) => (p as { rcode?: string }).rcode;
const datas = (p: dns.DecodedPacket) => (p.answers ?? []).map((a) => (a as { data: unknown }).data);
const ttls = (p: dns.DecodedPacket) => (p.answers ?? []).map((a) => (a as { ttl?: number }).ttl);
const finalDatas = (f: Final) =>
  f.kind === "answer" ? f.answers.map((a) => (a as { data: unknown }).data) : [];
/** NOERROR with no records: the name exists, nothing of this type. */
const nodata = (p: dns.DecodedPacket) => rc(p) === "NOERROR" && (p.answers ?? []).length === 0 && p.flag_aa;

test("vip mode: the name gives the VIP on each scope network, in scope order, authoritative, local TTL", (t) => {
  const { resolver, forwarded } = setup();
  const r = ask(resolver, "c-a", "web");
  t.deepEqual(datas(r), ["10.1.0.100"]);
  t.true(r.flag_aa);
  t.deepEqual(ttls(r), [LOCAL_TTL]);
  t.is(r.answers?.[0]?.type, "A");
  t.deepEqual(datas(ask(resolver, "c-b", "web")), ["10.2.0.100"]);
  t.deepEqual(datas(ask(resolver, "c-ba", "web")), ["10.2.0.100", "10.1.0.100"]);
  t.deepEqual(datas(ask(resolver, "c-ba", "web", "ANY" as dns.RecordType)), ["10.2.0.100", "10.1.0.100"]);
  t.is(forwarded.length, 0);
});

test("tasks.NAME gives the healthy backends in both modes; dnsrr names give them too; address order", (t) => {
  const { resolver } = setup();
  t.deepEqual(datas(ask(resolver, "c-a", "tasks.web")), ["10.1.0.9", "10.1.0.11"]);
  t.deepEqual(datas(ask(resolver, "c-ba", "tasks.web")), ["10.2.0.10", "10.1.0.9", "10.1.0.11"]);
  t.deepEqual(datas(ask(resolver, "c-a", "rr")), ["10.1.0.20", "10.1.0.21"]);
  t.deepEqual(datas(ask(resolver, "c-a", "tasks.rr")), ["10.1.0.20", "10.1.0.21"]);
});

test("no healthy backend: vip name still gives the VIP; dnsrr and tasks.NAME are NODATA, never forwarded", (t) => {
  const { resolver, records, forwarded } = setup();
  records.services.set(web({ tasks: [] }));
  records.services.set(rr({ tasks: [], networks: ["net-a"] }));
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.100"]);
  t.true(nodata(ask(resolver, "c-a", "tasks.web")));
  t.true(nodata(ask(resolver, "c-a", "rr")));
  t.true(nodata(ask(resolver, "c-a", "tasks.rr")));
  t.true(nodata(ask(resolver, "c-a", "tasks.rr.corp.test")));
  t.is(forwarded.length, 0);
  // Without `networks`, a dnsrr service with no backend has no network to be seen on.
  records.services.set(rr({ tasks: [] }));
  t.is(rc(ask(resolver, "c-a", "rr")), "NXDOMAIN");
});

test("AAAA (and other types) of a service name: NODATA, not forwarded", (t) => {
  const { resolver, forwarded } = setup();
  for (const name of ["web", "tasks.web", "rr", "web.corp.test"]) {
    t.true(nodata(ask(resolver, "c-a", name, "AAAA")), name);
  }
  t.true(nodata(ask(resolver, "c-a", "web", "MX")));
  t.is(forwarded.length, 0);
});

test("scope: an asker on no network of the service sees nothing of it and gets today's handling", (t) => {
  const { resolver, forwarded } = setup();
  t.is(rc(ask(resolver, "c-c", "web")), "NXDOMAIN");
  t.is(rc(ask(resolver, "c-c", "rr")), "NXDOMAIN");
  t.is(rc(ask(resolver, "stranger", "web")), "NXDOMAIN");
  t.is(rc(ask(resolver, "c-b", "rr")), "NXDOMAIN", "rr is on net-a only");
  ask(resolver, "c-c", "tasks.web"); // dotted: forwarded, like any dotted name unknown here
  ask(resolver, "c-c", "100.0.1.10.in-addr.arpa", "PTR"); // not in net-c's subnets
  t.deepEqual(
    forwarded.map((q) => q.lname),
    ["tasks.web", "100.0.1.10.in-addr.arpa"],
  );
});

test("PTR of a VIP is the service name (as given) on scope networks; of a task, the container name", (t) => {
  const { resolver, forwarded } = setup();
  const r = ask(resolver, "c-a", "100.0.1.10.in-addr.arpa", "PTR");
  t.deepEqual(datas(r), ["Web"]);
  t.deepEqual(ttls(r), [LOCAL_TTL]);
  t.deepEqual(datas(ask(resolver, "c-b", "100.0.2.10.in-addr.arpa", "PTR")), ["Web"]);
  t.deepEqual(datas(ask(resolver, "c-a", "9.0.1.10.in-addr.arpa", "PTR")), ["web-task-1"]);
  t.true(nodata(ask(resolver, "c-a", "100.0.1.10.in-addr.arpa", "TXT")));
  t.is(forwarded.length, 0);
  ask(resolver, "c-b", "100.0.1.10.in-addr.arpa", "PTR"); // net-a's VIP: not c-b's to see
  t.is(forwarded.length, 1);
});

test("a service shadows a container name or alias of the same spelling on its network only", (t) => {
  const { resolver, records } = setup();
  records.add(
    ep("x1", "net-a", "other", "WEB", { aliases: ["tasks.rr"], ipv4: "10.1.0.50", ipv6: "fd00::50" }),
  );
  records.add(ep("x2", "net-c", "c-ac", "web", { ipv4: "10.3.0.50" }));
  records.add(ep("x3", "net-a", "c-ac", "client-ac", { ipv4: "10.1.0.51" }));
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.100"]);
  t.true(nodata(ask(resolver, "c-a", "web", "AAAA")), "the container's AAAA is shadowed too");
  t.deepEqual(datas(ask(resolver, "c-a", "tasks.rr")), ["10.1.0.20", "10.1.0.21"]);
  t.deepEqual(datas(ask(resolver, "c-c", "web")), ["10.3.0.50"], "no service on net-c");
  t.deepEqual(
    datas(ask(resolver, "c-ac", "web")),
    ["10.3.0.50", "10.1.0.100"],
    "per network, in scope order",
  );
  records.services.remove(WEB);
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.50"], "the container again once the service goes");
});

test("case-insensitive, trailing dot, search domain; the owner name is echoed as asked", (t) => {
  const { resolver } = setup();
  for (const name of ["WEB", "web.", "wEb.Corp.Test.", "web.corp.test"]) {
    const r = ask(resolver, "c-a", name);
    t.deepEqual(datas(r), ["10.1.0.100"], name);
    t.is(r.answers?.[0]?.name, name.replace(/\.$/, ""));
  }
  for (const name of ["Tasks.Web.", "TASKS.WEB.CORP.TEST", "tasks.RR"]) {
    t.true(datas(ask(resolver, "c-a", name)).length >= 2, name);
  }
});

test("every change shows at once despite the memo; removal makes the name go; unknown id is a no-op", (t) => {
  const { resolver, records } = setup();
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.100"]);
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.100"], "memo hit");
  records.services.set(web({ vips: [{ networkId: "net-a", ip: "10.1.0.101" }] }));
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.101"]);
  t.deepEqual(datas(ask(resolver, "c-a", "tasks.web")), ["10.1.0.9", "10.1.0.11"]);
  records.services.set(web({ tasks: [{ networkId: "net-a", ip: "10.1.0.12" }] }));
  t.deepEqual(datas(ask(resolver, "c-a", "tasks.web")), ["10.1.0.12"]);
  t.deepEqual(datas(ask(resolver, "c-a", "web")), ["10.1.0.100"], "replaced whole, by id");
  records.services.set(web({ name: "front" }));
  t.is(rc(ask(resolver, "c-a", "web")), "NXDOMAIN", "a rename drops the old name");
  t.deepEqual(datas(ask(resolver, "c-a", "front")), ["10.1.0.100"]);
  const before = records.generation;
  records.services.remove("f".repeat(64));
  t.is(records.generation, before, "an unknown id leaves the memo alone");
  records.services.remove(WEB);
  t.is(rc(ask(resolver, "c-a", "front")), "NXDOMAIN");
  t.is(
    rc(ask(resolver, "c-a", "100.0.1.10.in-addr.arpa", "PTR")),
    "NXDOMAIN",
    "in net-a's subnet, now unheld",
  );
  t.deepEqual(datas(ask(resolver, "c-a", "rr")), ["10.1.0.20", "10.1.0.21"]);
});

test("property: answers hold exactly the scope networks' VIPs or backends, scope then address order", (t) => {
  const nets = ["n0", "n1", "n2", "n3"];
  const ip = (n: number, host: number) => `10.${n}.${host >> 8}.${host & 255}`;
  const place = fc.record({ net: fc.integer({ min: 0, max: 3 }), host: fc.integer({ min: 1, max: 600 }) });
  const service = fc.record({
    mode: fc.constantFrom<"vip" | "dnsrr">("vip", "dnsrr"),
    vipNets: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }),
    tasks: fc.array(place, { maxLength: 8 }),
  });
  fc.assert(
    fc.property(
      fc.array(service, { minLength: 1, maxLength: 5 }),
      fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
      fc.nat(4),
      fc.boolean(),
      (specs, scopeNets, pick, tasksQuery) => {
        const records = new DnsRecords();
        for (const [i, n] of scopeNets.entries())
          records.add(ep(`me${i}`, nets[n]!, "me", "me", { ipv4: ip(n, 1) }));
        const entries = specs.map((s, i): DnsServiceEntry => {
          const vips =
            s.mode === "vip" ? s.vipNets.map((n) => ({ networkId: nets[n]!, ip: ip(n, 1000 + i) })) : [];
          const tasks = s.tasks.map((p) => ({ networkId: nets[p.net]!, ip: ip(p.net, p.host) }));
          return { id: String(i).repeat(64), name: `svc${i}`, mode: s.mode, vips, tasks };
        });
        for (const e of entries) records.services.set(e);
        const resolver = new Resolver(records, [trellisNames(records, []), singleLabelNxdomain()]);
        const target = entries[pick % entries.length]!;
        const scope = records.scopeOf("me");
        const expected: string[] = [];
        const useTasks = tasksQuery || target.mode === "dnsrr";
        for (const net of scope) {
          const here = (useTasks ? target.tasks : target.vips)
            .filter((a) => a.networkId === net)
            .map((a) => a.ip);
          const key = (s: string) => s.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
          expected.push(...[...new Set(here)].sort((a, b) => key(a) - key(b)));
        }
        const onScope = new Set([...target.vips, ...target.tasks].map((a) => a.networkId));
        const r = ask(resolver, "me", `${tasksQuery ? "tasks." : ""}${target.name}`);
        if (!scope.some((n) => onScope.has(n))) return rc(r) === (tasksQuery ? "REFUSED" : "NXDOMAIN");
        return rc(r) === "NOERROR" && JSON.stringify(datas(r)) === JSON.stringify(expected);
      },
    ),
    { numRuns: 400 },
  );
  t.pass();
});

test("DnsService: setService/removeService, answers survive rebuild(), and the lookup API shows them", async (t) => {
  const net = { id: "net-a", poolIds: [] } as unknown as NetworkRecord;
  const client = {
    id: "e".repeat(64),
    networkId: "net-a",
    containerId: "c".repeat(64),
    name: "client",
    aliases: [],
    ipv4: "10.1.0.2/24",
    state: "active",
    docker: { joined: true, dockerNetworkId: "d".repeat(64) }, // no listener to open
  } as unknown as EndpointRecord;
  const store = { listNetworks: () => [net], listEndpoints: () => [client], getPool: () => undefined };
  const svc = new DnsService(
    { store, kernel: new FakeKernel(), events: new DaemonEvents(), log: pino({ level: "silent" }) },
    { upstreams: [], search: [] },
  );
  t.teardown(() => svc.stop());
  svc.rebuild();
  const asker = client.containerId;
  const askSvc = (name: string) => {
    const out = svc.resolver.answer(asker, query(name), "udp");
    if (out instanceof Promise || !out) throw new Error("expected a synchronous reply");
    return dns.decode(out);
  };
  svc.setService(web());
  t.deepEqual(datas(askSvc("web")), ["10.1.0.100"]);
  svc.rebuild();
  t.deepEqual(datas(askSvc("web")), ["10.1.0.100"], "kept across the rebuild");
  t.deepEqual(datas(askSvc("tasks.web")), ["10.1.0.9", "10.1.0.11"]);
  const admin = await svc.lookup("tasks.Web", "A");
  t.true(admin.scope.includes("net-b"), "the administrator's scope includes the service's networks");
  t.deepEqual(finalDatas(admin.final), ["10.1.0.9", "10.1.0.11", "10.2.0.10"]);
  t.is(admin.final.source, "trellis-service");
  const fromClient = await svc.lookup("web", "A", "client");
  t.deepEqual(finalDatas(fromClient.final), ["10.1.0.100"]);
  svc.removeService(WEB);
  svc.removeService(WEB);
  t.is(rc(askSvc("web")), "NXDOMAIN");
});
