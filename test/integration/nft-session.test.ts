/**
 * The long-lived nft process (lib/kernel/nft-session.ts) in a lab host namespace: each apply is one
 * transaction (a failing last command leaves no trace of the first ones), errors read like nftApply's,
 * a dead or wedged process is replaced, and close() leaves no process and no file behind.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import test, { type ExecutionContext } from "ava";
import { KernelError } from "../../lib/common/errors.js";
import { nftApply, nftListTable } from "../../lib/kernel/nft.js";
import { createNftSession, type NftSessionOptions } from "../../lib/kernel/nft-session.js";
import { Lab, waitFor } from "../helpers/lab.js";
import { pidsInNamespace } from "../helpers/lab-registry.js";
import { isAlive } from "../helpers/proc.js";

const TABLE = "trellis_sess";

/** A multi-line definition, as lib/ingress/render.ts writes them: sets with element lists, chains. */
const DEFINITION = `table ip ${TABLE} {}
delete table ip ${TABLE}
table ip ${TABLE} {
  set vips {
    type ipv4_addr
    elements = {
      10.96.0.1,
      10.96.0.2
    }
  }
  map ports {
    type inet_service : ipv4_addr
    elements = {
      80 : 10.20.0.1
    }
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr @vips dnat to tcp dport map @ports
  }
}
`;

async function setup(t: ExecutionContext, opts: NftSessionOptions = {}) {
  const lab = await Lab.create(t);
  const host = await lab.addHost("h1");
  const netns = `/run/netns/${host.ns}`;
  const session = createNftSession({ netns, scriptDir: lab.dir, ...opts });
  t.teardown(() => session.close());
  return { lab, host, netns, session };
}

interface Listed {
  nftables: Array<Record<string, { name?: string; elem?: unknown[] }>>;
}

/** The elements of one set or map, as strings ("10.96.0.1", "80 : 10.20.0.1"), sorted. */
async function elements(netns: string, name: string): Promise<string[]> {
  const listed = (await nftListTable("ip", TABLE, { netns })) as Listed | undefined;
  const obj = listed?.nftables.map((o) => o["set"] ?? o["map"]).find((o) => o?.name === name);
  if (!obj) throw new Error(`no set or map ${name} in ${TABLE}`);
  const text = (e: unknown): string => (Array.isArray(e) ? e.map(text).join(" : ") : String(e));
  return (obj.elem ?? []).map(text).sort();
}

const tableExists = async (netns: string, name: string) =>
  (await nftListTable("ip", name, { netns })) !== undefined;

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

test("a multi-line definition and one-line changes land in the namespace, by an nft process inside it", async (t) => {
  const { host, netns, session } = await setup(t);
  t.is(session.pid, undefined, "nothing runs before the first apply");
  await session.apply(DEFINITION);
  await session.apply(
    `add element ip ${TABLE} vips { 10.96.0.3 }\nadd element ip ${TABLE} ports { 443 : 10.20.0.2 }\n`,
  );
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2", "10.96.0.3"]);
  t.deepEqual(await elements(netns, "ports"), ["443 : 10.20.0.2", "80 : 10.20.0.1"]);

  const pid = session.pid!;
  t.is((await readFile(`/proc/${pid}/comm`, "utf8")).trim(), "nft");
  t.deepEqual(await pidsInNamespace(host.ns), [pid], "the session's nft is the one process in the namespace");
  t.false(await tableExists(`/proc/${process.pid}/ns/net`, TABLE), "nothing in the test's own namespace");
});

test("a script whose last command fails leaves no trace of the first ones; the session goes on", async (t) => {
  const { netns, session } = await setup(t);
  await session.apply(DEFINITION);
  // The kernel refuses the last command (the table exists): the whole batch is aborted.
  const kernelRefuses = `add table ip ${TABLE}_new
add chain ip ${TABLE}_new c
add element ip ${TABLE} vips { 10.96.0.9 }
create table ip ${TABLE}
`;
  t.true((await rejection(session.apply(kernelRefuses))) instanceof KernelError);
  // nft refuses the last command before anything reaches the kernel (no such set).
  const nftRefuses = `add table ip ${TABLE}_new\nadd element ip ${TABLE} vips { 10.96.0.9 }\nadd element ip ${TABLE} nosuchset { 1.2.3.4 }\n`;
  t.true((await rejection(session.apply(nftRefuses))) instanceof KernelError);

  t.false(await tableExists(netns, `${TABLE}_new`));
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2"]);
  await session.apply(`add element ip ${TABLE} vips { 10.96.0.4 }\n`);
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2", "10.96.0.4"]);
});

test("errors read exactly like a one-shot nftApply's: the script's line, no trace of the session's plumbing", async (t) => {
  const { netns, session } = await setup(t);
  await session.apply(DEFINITION);
  const scripts = [
    `add element ip ${TABLE} vips { 10.96.0.5 }\ncreate table ip ${TABLE}\n`,
    `add element ip ${TABLE} vips { 10.96.0.5 }\ndelete element ip ${TABLE} vips { 10.96.0.77 }\n`,
    `add element ip ${TABLE} vips { 10.96.0.5 }\nadd rule ip ${TABLE} prerouting bogus\n`,
  ];
  for (const script of scripts) {
    const fromSession = await rejection(session.apply(script));
    const fromOneShot = await rejection(nftApply(script, { netns }));
    t.is(fromSession.message, fromOneShot.message);
    t.is((fromSession as KernelError).code, "KERNEL");
    t.regex(fromSession.message, /^apply nftables transaction: \/dev\/stdin:2:\d+-\d+: Error: /);
    t.notRegex(fromSession.message, /trellis-end|include|script\.nft/);
  }
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2"]);
});

test("200 changes in a row, some of them failing, leave exactly the expected elements", async (t) => {
  const { netns, session } = await setup(t);
  await session.apply(DEFINITION);
  const expected = new Set(["10.96.0.1", "10.96.0.2"]);
  const ip = (i: number) => `10.97.${i >> 8}.${i & 255}`;
  for (let i = 0; i < 200; i++) {
    if (i % 25 === 24) {
      // adds one, then deletes one that is not there: none of it may stick
      const bad = `add element ip ${TABLE} vips { ${ip(1000 + i)} }\ndelete element ip ${TABLE} vips { 10.98.0.1 }\n`;
      await t.throwsAsync(session.apply(bad), { instanceOf: KernelError });
      continue;
    }
    const lines = [`add element ip ${TABLE} vips { ${ip(i)} }`];
    expected.add(ip(i));
    if (i % 3 === 2 && expected.has(ip(i - 2))) {
      lines.unshift(`delete element ip ${TABLE} vips { ${ip(i - 2)} }`);
      expected.delete(ip(i - 2));
    }
    await session.apply(`${lines.join("\n")}\n`);
  }
  t.deepEqual(await elements(netns, "vips"), [...expected].sort());
});

test("a process killed between applies is replaced on the next apply", async (t) => {
  const { netns, session } = await setup(t);
  await session.apply(DEFINITION);
  const first = session.pid!;
  process.kill(first, "SIGKILL");
  await waitFor(() => session.pid === undefined, { what: "the session to notice its nft died" });
  t.false(existsSync(`/proc/${first}`), "reaped");
  await session.apply(`add element ip ${TABLE} vips { 10.96.0.6 }\n`);
  t.not(session.pid, undefined);
  t.not(session.pid, first);
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2", "10.96.0.6"]);
});

test("a wedged process fails the apply in flight, is killed, and the next apply runs on a new one", async (t) => {
  const { netns, session } = await setup(t, { timeoutMs: 1_000 });
  await session.apply(DEFINITION);
  const wedged = session.pid!;
  process.kill(wedged, "SIGSTOP");
  const err = await rejection(session.apply(`add element ip ${TABLE} vips { 10.96.0.7 }\n`));
  t.true(err instanceof KernelError);
  t.regex(err.message, /gave no answer within 1000 ms/);
  t.is(session.pid, undefined, "given up at once, not when its exit is seen");
  await session.apply(`add element ip ${TABLE} vips { 10.96.0.8 }\n`);
  t.false(isAlive(wedged));
  t.not(session.pid, wedged);
  // the stopped process never read the line: only the second change is there
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2", "10.96.0.8"]);
});

test("a process that exits while an apply waits fails that apply with what it said", async (t) => {
  const { lab } = await setup(t);
  const session = createNftSession({ netns: `/run/netns/${lab.prefix}-nosuchns`, scriptDir: lab.dir });
  t.teardown(() => session.close());
  const err = await rejection(session.apply(DEFINITION));
  t.true(err instanceof KernelError);
  t.regex(err.message, /^apply nftables transaction: nft session exited with status 1: nsenter: .*nosuchns/);
  t.is(session.pid, undefined);
});

test("the process is renewed every maxApplies transactions; each old one is gone", async (t) => {
  const { host, netns, session } = await setup(t, { maxApplies: 3 });
  await session.apply(DEFINITION);
  const pids = new Set<number>();
  for (let i = 0; i < 7; i++) {
    await session.apply(`add element ip ${TABLE} vips { 10.96.1.${i} }\n`);
    pids.add(session.pid!);
  }
  t.is(pids.size, 3, "8 applies, 3 per process");
  t.deepEqual(await pidsInNamespace(host.ns), [session.pid!]);
  t.is((await elements(netns, "vips")).length, 2 + 7);
});

test("scripts with a top-level define can be applied again and again (one-shot nft)", async (t) => {
  const { netns, session } = await setup(t);
  await session.apply(DEFINITION);
  const script = `define vip = 10.96.0.9\nadd element ip ${TABLE} vips { $vip }\n`;
  await session.apply(script);
  await session.apply(script);
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2", "10.96.0.9"]);
});

test("close() waits for the apply in flight, ends nft, leaves no process or file; later applies fail", async (t) => {
  const { lab, host, netns, session } = await setup(t);
  await session.apply(DEFINITION);
  const pid = session.pid!;
  const inFlight = session.apply(`add element ip ${TABLE} vips { 10.96.0.3 }\n`);
  await session.close();
  await inFlight;
  t.deepEqual(await elements(netns, "vips"), ["10.96.0.1", "10.96.0.2", "10.96.0.3"]);
  t.is(session.pid, undefined);
  t.false(existsSync(`/proc/${pid}`), "no nft, not even a zombie");
  t.deepEqual(await pidsInNamespace(host.ns), []);
  t.deepEqual(await readdir(lab.dir), [], "the script directory is gone");
  await t.throwsAsync(session.apply(DEFINITION), { instanceOf: KernelError, message: /closed/ });
  await session.close();
});
