/**
 * Fuzz: 100 000 random and mutated packets at 127.0.0.11:53 from inside a container (bounded in
 * count and time); afterwards the daemon is alive and a normal query still answers correctly.
 */
import { fileURLToPath } from "node:url";
import test from "ava";
import { createNetwork } from "../helpers/net.js";
import { dig, digShort, dnsLab } from "./dns-lab.js";

const SENDER = fileURLToPath(new URL("./dns-fuzz-sender.js", import.meta.url));

test("100 000 random and mutated packets do not hurt the daemon; normal queries answer afterwards", async (t) => {
  const { lab, d } = await dnsLab(t);
  await createNetwork(d, "net1", ["--subnet", "10.48.0.0/24"]);
  const web = await lab.addContainer("web");
  const fuzzer = await lab.addContainer("fuzzer");
  await d.cli(["network", "connect", "--name", "web", "--ip", "10.48.0.10", "net1", web]);
  await d.cli(["network", "connect", "--name", "fuzzer", "net1", fuzzer]);
  const r = await lab.exec(fuzzer, [process.execPath, SENDER, "127.0.0.11", "53", "100000", "7", "90000"], {
    timeoutMs: 120_000,
  });
  const m = /sent (\d+) replies (\d+)/.exec(r.stdout);
  t.truthy(m, r.stdout + r.stderr);
  t.is(Number(m![1]), 100_000);
  t.true(Number(m![2]) > 1000, `the daemon kept answering (${m![2]} replies)`);
  t.is((await d.api("GET", "/_ping")).status, 200, "the daemon is alive");
  t.deepEqual(await digShort(lab, fuzzer, ["web"]), ["10.48.0.10"]);
  t.deepEqual(await digShort(lab, fuzzer, ["+tcp", "web"]), ["10.48.0.10"]);
  t.is((await dig(lab, fuzzer, ["-x", "10.48.0.10"])).answers.length, 1);
  t.deepEqual(await digShort(lab, fuzzer, ["after.example.test"]), ["192.0.2.1"], "forwarding still works");
  t.notRegex(d.logs(), /"level":(50|60)/, "no error or fatal logged");
});
