/**
 * `docker run -p` as the engine hands it to a remote driver (`com.docker.network.portmap`): with a
 * remote driver the engine neither runs docker-proxy nor adds DNAT rules, so trellis publishes the
 * ports in its own nftables maps, like `trellis network connect -p`. A host port of 0 (`-p 80`)
 * or a range (`-p 8000-8010:80`) gets the first port free on this host.
 */
import { conflict, exhausted, invalid } from "../common/errors.js";
import { samePort } from "../daemon/endpoints.js";
import { tryParseAddress } from "../ipam/cidr.js";
import type { PortMapping, Protocol } from "../store/records.js";
import type { PortBinding } from "./protocol.js";

/** Linux's default ip_local_port_range end, and Docker's ephemeral range start. */
const EPHEMERAL_FIRST = 49153;
const EPHEMERAL_LAST = 60999;

const PROTOCOLS: Record<number, Protocol> = { 6: "tcp", 17: "udp" };

/**
 * Host ports for the bindings, none of them in `taken` (other endpoints' mappings) or in each
 * other. IPv6 bindings are skipped: trellis publishes on IPv4.
 */
export function assignPorts(bindings: readonly PortBinding[], taken: readonly PortMapping[]): PortMapping[] {
  const out: PortMapping[] = [];
  for (const b of bindings) {
    const proto = PROTOCOLS[b.proto];
    if (!proto) throw invalid(`cannot publish protocol ${b.proto}: trellis publishes tcp and udp ports`);
    const ip = b.hostIp === "" ? undefined : tryParseAddress(b.hostIp);
    if (b.hostIp !== "" && !ip) throw invalid(`invalid host address "${b.hostIp}" for port ${b.port}`);
    if (ip?.family === 6) continue;
    const hostIp = b.hostIp === "" || b.hostIp === "0.0.0.0" ? undefined : b.hostIp;
    const [first, last] =
      b.hostPort === 0
        ? [EPHEMERAL_FIRST, EPHEMERAL_LAST]
        : [b.hostPort, Math.max(b.hostPort, b.hostPortEnd)];
    const free = (port: number) => {
      const m: PortMapping = { proto, hostPort: port, containerPort: b.port, ...(hostIp ? { hostIp } : {}) };
      return [...taken, ...out].some((t) => samePort(t, m)) ? undefined : m;
    };
    let chosen: PortMapping | undefined;
    for (let port = first; port <= last && !chosen; port++) chosen = free(port);
    if (!chosen) {
      const where = `${hostIp ?? "0.0.0.0"}:${first === last ? first : `${first}-${last}`}/${proto}`;
      if (first === last) throw conflict(`host port ${where} is already published on this host`);
      throw exhausted(`no free host port in ${where}`);
    }
    out.push(chosen);
  }
  return out;
}

export function samePorts(a: readonly PortMapping[], b: readonly PortMapping[]): boolean {
  const key = (m: PortMapping) => `${m.proto}/${m.hostIp ?? ""}/${m.hostPort}/${m.containerPort}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}
