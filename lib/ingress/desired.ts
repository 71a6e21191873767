/**
 * From what this host knows of services (definitions, every host's backends and their health) to
 * what it must program: the VIP load balancer's units, the mesh SNAT map, the VIP addresses on
 * its bridges, the firewall's service sets and the DNS answers. Pure: the same inputs give the same
 * state on every node, which is what makes the mesh consistent.
 *
 * A "unit" is what the nftables layer balances: one VIP:port (or one published port) over one list
 * of backend address:port. A service with a VIP on two networks and two ports is four VIP units,
 * because each network's VIP goes to the backends' addresses on that network, and each port to its
 * own target port.
 */
import type { DnsServiceEntry } from "../dns/services.js";
import type { BackendEntry } from "./catalog.js";
import { type Backend, MAX_BACKENDS, type Service, slotOrder } from "./model.js";
import type { ServiceSpec } from "./spec.js";

/** A network materialised on this host. */
export interface LocalNetwork {
  id: string;
  bridgeName: string;
  overlay: boolean;
}

export interface DesiredInput {
  services: readonly ServiceSpec[];
  /** every backend this host knows of, its own and the live hosts' */
  backends: readonly BackendEntry[];
  /** this host's node name */
  self: string;
  networks: ReadonlyMap<string, LocalNetwork>;
  /** this host's mesh source address on an overlay network (see mesh-ports.ts) */
  meshSources: ReadonlyMap<string, string>;
  /** a stable small integer per unit key, the programmer's handle */
  unitId(key: string): number;
}

export interface DesiredServices {
  units: Service[];
  /** remote backend address → this host's mesh source on its network */
  snat: Array<{ backend: string; source: string }>;
  /** every VIP on this host's networks (firewall set) */
  vips: string[];
  /** this host's networks that carry a service: they keep connection tracking */
  serviceNetworks: string[];
  /** bridge name → the VIPs it must hold as /32 addresses */
  bridgeVips: Map<string, string[]>;
  dns: DnsServiceEntry[];
  /** what could not be programmed, e.g. two services publishing one port after a partition */
  conflicts: string[];
}

const usable = (b: BackendEntry) => b.health !== "unhealthy";

/** Overlay networks on this host where a service lives: each needs a mesh source address. */
export function meshNetworks(services: readonly ServiceSpec[], networks: ReadonlyMap<string, LocalNetwork>) {
  const out = new Set<string>();
  for (const s of services) {
    for (const n of s.networks) if (networks.get(n.networkId)?.overlay) out.add(n.networkId);
  }
  return [...out].sort();
}

function cap(backends: Backend[], what: string, conflicts: string[]): Backend[] {
  const unique = [...new Map(backends.map((b) => [`${b.ip}:${b.port}`, b])).values()];
  if (unique.length <= MAX_BACKENDS) return unique;
  conflicts.push(`${what}: ${unique.length} healthy backends, only the first ${MAX_BACKENDS} are used`);
  return slotOrder(unique).slice(0, MAX_BACKENDS);
}

/**
 * The address the mesh reaches one backend container at: its endpoint on the first of the service's
 * networks this host can route to (any local network for a local container, an overlay network with
 * a mesh source for a remote one).
 */
function meshTargets(spec: ServiceSpec, backends: readonly BackendEntry[], input: DesiredInput) {
  const byContainer = new Map<string, BackendEntry>();
  const rank = (b: BackendEntry) => spec.networks.findIndex((n) => n.networkId === b.networkId);
  for (const b of backends) {
    const local = b.node === input.self;
    const net = input.networks.get(b.networkId);
    if (!net || (!local && !(net.overlay && input.meshSources.has(b.networkId)))) continue;
    const key = `${b.node}\u0000${b.containerId}`;
    const have = byContainer.get(key);
    if (!have || rank(b) < rank(have)) byContainer.set(key, b);
  }
  return [...byContainer.values()];
}

export function desiredServices(input: DesiredInput): DesiredServices {
  const out: DesiredServices = {
    units: [],
    snat: [],
    vips: [],
    serviceNetworks: [],
    bridgeVips: new Map(),
    dns: [],
    conflicts: [],
  };
  const byService = new Map<string, BackendEntry[]>();
  for (const b of input.backends) {
    const list = byService.get(b.serviceId);
    if (list) list.push(b);
    else byService.set(b.serviceId, [b]);
  }
  const vipOwner = new Map<string, string>();
  const meshOwner = new Map<string, string>();
  const snat = new Map<string, string>();
  const serviceNetworks = new Set<string>();
  // Oldest first: after a partition, the service created first keeps a contested VIP or port.
  const services = [...input.services].sort(
    (a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id),
  );
  for (const spec of services) {
    const all = byService.get(spec.id) ?? [];
    const healthy = all.filter(usable);
    const known = spec.networks.map((n) => n.networkId);
    out.dns.push({
      id: spec.id,
      name: spec.name,
      mode: spec.endpointMode,
      networks: spec.networks.map((n) => n.networkId),
      vips: spec.networks.flatMap((n) => (n.vip ? [{ networkId: n.networkId, ip: n.vip }] : [])),
      tasks: healthy
        .filter((b) => known.includes(b.networkId))
        .map((b) => ({ networkId: b.networkId, ip: b.ip })),
    });
    for (const n of spec.networks) if (input.networks.has(n.networkId)) serviceNetworks.add(n.networkId);
    const targets = [...new Map(spec.ports.map((p) => [`${p.proto}/${p.target}`, p])).values()];
    for (const n of spec.networks) {
      const net = input.networks.get(n.networkId);
      if (!net || !n.vip || spec.endpointMode !== "vip") continue;
      const owner = vipOwner.get(n.vip);
      if (owner !== undefined && owner !== spec.id) {
        out.conflicts.push(`service ${spec.name}: VIP ${n.vip} is already the VIP of another service`);
        continue;
      }
      vipOwner.set(n.vip, spec.id);
      out.vips.push(n.vip);
      const vips = out.bridgeVips.get(net.bridgeName) ?? [];
      vips.push(n.vip);
      out.bridgeVips.set(net.bridgeName, vips);
      const onNet = healthy.filter((b) => b.networkId === n.networkId);
      for (const p of targets) {
        const what = `service ${spec.name} ${n.vip}:${p.target}/${p.proto}`;
        out.units.push({
          id: input.unitId(`${spec.id}/vip/${n.networkId}/${p.proto}/${p.target}`),
          name: spec.name,
          vips: [{ ip: n.vip, port: p.target, proto: p.proto }],
          backends: cap(
            onNet.map((b) => ({ ip: b.ip, port: p.target })),
            what,
            out.conflicts,
          ),
          affinity: spec.affinity,
          mesh: [],
        });
      }
      for (const b of onNet) {
        const source = input.meshSources.get(b.networkId);
        if (b.node !== input.self && source) snat.set(b.ip, source);
      }
    }
    const reachable = meshTargets(spec, healthy, input);
    for (const p of spec.ports) {
      if (p.published === undefined) continue;
      const key = `${p.proto}/${p.published}`;
      const owner = meshOwner.get(key);
      if (owner !== undefined && owner !== spec.id) {
        out.conflicts.push(`service ${spec.name}: port ${key} is already published by another service`);
        continue;
      }
      const chosen = p.mode === "host" ? reachable.filter((b) => b.node === input.self) : reachable;
      // Host mode publishes only where a backend runs; ingress publishes everywhere, and refuses at
      // once while there is no healthy backend.
      if (p.mode === "host" && chosen.length === 0) continue;
      meshOwner.set(key, spec.id);
      for (const b of chosen) {
        const source = input.meshSources.get(b.networkId);
        if (b.node !== input.self && source) snat.set(b.ip, source);
      }
      out.units.push({
        id: input.unitId(`${spec.id}/mesh/${key}`),
        name: spec.name,
        vips: [],
        backends: [],
        affinity: spec.affinity,
        mesh: [
          {
            proto: p.proto,
            port: p.published,
            backends: cap(
              chosen.map((b) => ({ ip: b.ip, port: p.target })),
              `service ${spec.name} port ${key}`,
              out.conflicts,
            ),
          },
        ],
      });
    }
  }
  out.snat = [...snat]
    .map(([backend, source]) => ({ backend, source }))
    .sort((a, b) => a.backend.localeCompare(b.backend));
  out.serviceNetworks = [...serviceNetworks].sort();
  return out;
}
