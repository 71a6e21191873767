/** The 127.0.0.11:53 redirect: its nft script (golden) and the per-container ordering of changes. */
import test from "ava";
import { pino } from "pino";
import { Redirects, redirectScript, removalScript } from "../../lib/dns/redirect.js";
import type { Kernel, NetnsRef } from "../../lib/kernel/types.js";

test("redirectScript: declare, delete, define: one transaction that works with or without the table", (t) => {
  t.is(
    redirectScript("127.0.0.11", 53, { udp: 40001, tcp: 40002 }),
    `table ip trellis_dns
delete table ip trellis_dns
table ip trellis_dns {
  chain output {
    type filter hook output priority raw; policy accept;
    ip daddr 127.0.0.11 udp dport 53 notrack udp dport set 40001
    ip saddr 127.0.0.11 udp sport 40001 notrack udp sport set 53
    ip daddr 127.0.0.11 tcp dport 53 notrack tcp dport set 40002
    ip saddr 127.0.0.11 tcp sport 40002 notrack tcp sport set 53
  }
}
`,
  );
  t.is(removalScript(), "table ip trellis_dns\ndelete table ip trellis_dns\n");
});

test("changes to one container run in order; a failed removal is swallowed; settled waits for all", async (t) => {
  const log: string[] = [];
  let release: () => void = () => {};
  const kernel = {
    nftApply: (script: string) => {
      const what = script.includes("dport set") ? "apply" : "remove";
      log.push(`start ${what}`);
      if (what === "apply" && log.length === 1) {
        return new Promise<void>((res) => {
          release = () => {
            log.push("end apply");
            res();
          };
        });
      }
      log.push(`end ${what}`);
      return what === "remove" ? Promise.reject(new Error("namespace gone")) : Promise.resolve();
    },
  } as unknown as Kernel;
  const r = new Redirects(kernel, pino({ level: "silent" }));
  const ns: NetnsRef = { path: "/run/netns/x", dev: 1, ino: 2 };
  const first = r.apply("c", ns, redirectScript("127.0.0.11", 53, { udp: 1, tcp: 2 }));
  const removal = r.remove("c", ns);
  const second = r.apply("c", ns, redirectScript("127.0.0.11", 53, { udp: 3, tcp: 4 }));
  const all = r.settled("c");
  await new Promise((res) => setImmediate(res));
  t.deepEqual(log, ["start apply"], "the removal waits for the first apply");
  release();
  await Promise.all([first, removal, second, all]);
  t.deepEqual(log, ["start apply", "end apply", "start remove", "end remove", "start apply", "end apply"]);
});
