/**
 * Compares what the kernel of a lab host holds with what trellisd says it owns: every trellis link,
 * address and published-port element must be accounted for by the API, and nothing else must exist.
 */
import type { Lab, LabDaemon } from "./lab.js";
import { links, mapElements } from "./net.js";

export interface Inventory {
  bridges: string[];
  hostVeths: string[];
  endpoints: number;
  addresses: string[];
  portElements: number;
}

/** trellis marks its links with an ifalias starting "trellis:". */
export async function kernelInventory(
  lab: Lab,
  hostNs: string,
): Promise<Omit<Inventory, "endpoints" | "addresses">> {
  const all = await links(lab, hostNs);
  const ours = all.filter((l) => l.ifalias?.startsWith("trellis:"));
  let portElements = 0;
  for (const map of ["pub4_tcp", "pub4_udp", "pub4_tcp_ip", "pub4_udp_ip"]) {
    portElements += (await mapElements(lab, hostNs, map)).length;
  }
  return {
    bridges: ours
      .filter((l) => l.linkinfo?.info_kind === "bridge")
      .map((l) => l.ifname)
      .sort(),
    hostVeths: ours
      .filter((l) => l.linkinfo?.info_kind === "veth")
      .map((l) => l.ifname)
      .sort(),
    portElements,
  };
}

export async function apiInventory(
  d: LabDaemon,
): Promise<{ endpoints: number; addresses: string[]; veths: number }> {
  const r = await d.api("GET", "/networks");
  const nets = r.body as Array<{ Containers: Record<string, { IPv4Address: string; IPv6Address: string }> }>;
  const addresses: string[] = [];
  let endpoints = 0;
  for (const n of nets) {
    for (const c of Object.values(n.Containers)) {
      endpoints++;
      if (c.IPv4Address) addresses.push(c.IPv4Address);
      if (c.IPv6Address) addresses.push(c.IPv6Address);
    }
  }
  return { endpoints, addresses: addresses.sort(), veths: endpoints };
}
