/** Overlay test helpers: an n-host lab cluster joined by gossip, overlay endpoint addresses. */
import { Lab, type LabDaemon, waitFor } from "./lab.js";
import { inspect } from "./net.js";

/** `t` undefined: the caller destroys the lab (e.g. one cluster shared by a file's serial tests). */
export async function cluster(
  t: { teardown(fn: () => unknown): void } | undefined,
  n = 3,
  extra: string[] = [],
) {
  const lab = await Lab.create(t);
  const hosts = [];
  for (let i = 1; i <= n; i++) hosts.push(await lab.addHost(`h${i}`));
  const daemons: LabDaemon[] = [];
  for (const [i, h] of hosts.entries()) {
    const args = [
      "--advertise-addr",
      h.underlayIp,
      "--gossip-profile",
      "test",
      "--node-name",
      `node${i + 1}`,
    ];
    if (i > 0) args.push("--join", hosts[0]!.underlayIp);
    daemons.push(await lab.startDaemon(h, { args: [...args, ...extra] }));
  }
  await waitFor(
    async () => {
      for (const d of daemons) {
        const nodes = (await d.api("GET", "/trellis/nodes")).body as Array<{ State: string }>;
        if (nodes.filter((x) => x.State === "alive").length !== n) return false;
      }
      return true;
    },
    { timeoutMs: 15_000, what: "all nodes see each other alive" },
  );
  return { lab, hosts, daemons };
}

export async function overlayIp(d: LabDaemon, net: string, name: string): Promise<string> {
  const body = await inspect(d, net);
  const ep = Object.values(body.Containers).find((c) => c.Name === name);
  if (!ep) throw new Error(`no ${name} on ${net}`);
  return ep.IPv4Address.split("/")[0]!;
}
