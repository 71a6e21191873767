/**
 * Gossip key rotation without a restart: `trellis cluster rotate-key` on one member installs, uses
 * and retires keys on every member; traffic keeps flowing; each member's key file holds the new
 * key; the old key no longer gets in, the new one does.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { Lab, type LabDaemon, waitFor } from "../helpers/lab.js";

test("rotate-key replaces the gossip key on every member without a restart", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-keys-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const oldKey = randomBytes(32).toString("base64");
  const lab = await Lab.create(t);
  const hosts = [await lab.addHost("h1"), await lab.addHost("h2"), await lab.addHost("h3")];
  const daemons: LabDaemon[] = [];
  for (const [i, h] of hosts.entries()) {
    const keyFile = join(dir, `key${i + 1}`);
    writeFileSync(keyFile, oldKey, { mode: 0o600 });
    const args = [
      "--advertise-addr",
      h.underlayIp,
      "--gossip-profile",
      "test",
      "--node-name",
      `node${i + 1}`,
    ];
    args.push("--gossip-key", keyFile);
    if (i > 0) args.push("--join", hosts[0]!.underlayIp);
    daemons.push(await lab.startDaemon(h, { args }));
  }
  const aliveEverywhere = (n: number) => async () => {
    for (const d of daemons) {
      const nodes = (await d.api("GET", "/trellis/nodes")).body as Array<{ State: string }>;
      if (nodes.filter((x) => x.State === "alive").length !== n) return false;
    }
    return true;
  };
  await waitFor(aliveEverywhere(3), { timeoutMs: 15_000, what: "keyed cluster formed" });
  const r = await daemons[1]!.cli(["cluster", "rotate-key"]);
  t.regex(r.stdout, /rotated on 3 members/);
  const keys = [1, 2, 3].map((i) => readFileSync(join(dir, `key${i}`), "utf8").trim());
  t.is(new Set(keys).size, 1, "every member wrote the same new key");
  t.not(keys[0], oldKey);
  // still one healthy cluster, talking with the new key only
  await new Promise((res) => setTimeout(res, 1000));
  t.true(await aliveEverywhere(3)());
  // a newcomer with the old key stays out; one with the new key gets in
  const stale = await lab.addHost("h8");
  writeFileSync(join(dir, "stale"), oldKey);
  const staleD = await lab.startDaemon(stale, {
    args: ["--advertise-addr", stale.underlayIp, "--gossip-profile", "test", "--node-name", "stale"].concat([
      "--gossip-key",
      join(dir, "stale"),
      "--join",
      hosts[0]!.underlayIp,
    ]),
  });
  const fresh = await lab.addHost("h9");
  const freshD = await lab.startDaemon(fresh, {
    args: ["--advertise-addr", fresh.underlayIp, "--gossip-profile", "test", "--node-name", "fresh"].concat([
      "--gossip-key",
      join(dir, "key1"),
      "--join",
      hosts[0]!.underlayIp,
    ]),
  });
  await waitFor(
    async () => ((await daemons[0]!.api("GET", "/trellis/nodes")).body as unknown[]).length === 4,
    { timeoutMs: 10_000, what: "the node with the new key joined" },
  );
  const names = ((await daemons[0]!.api("GET", "/trellis/nodes")).body as Array<{ Name: string }>).map(
    (n) => n.Name,
  );
  t.deepEqual(names.sort(), ["fresh", "node1", "node2", "node3"]);
  t.deepEqual(
    ((await staleD.api("GET", "/trellis/nodes")).body as Array<{ Name: string }>).map((n) => n.Name),
    ["stale"],
  );
  void freshD;
});
