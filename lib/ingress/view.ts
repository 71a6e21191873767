/** What `service inspect` and `service ls` show of a service: Docker's shape where there is one. */
import type { SqliteStore } from "../store/sqlite-store.js";
import type { BackendEntry } from "./catalog.js";
import type { ServiceSpec, ServiceView } from "./spec.js";

export function viewOfService(
  spec: ServiceSpec,
  backends: readonly BackendEntry[],
  store: SqliteStore,
): ServiceView {
  const prefixOf = (networkId: string) => {
    const net = store.getNetwork(networkId);
    const pool = net?.poolIds.map((id) => store.getPool(id)).find((p) => p?.family === 4);
    return pool ? pool.subnet.slice(pool.subnet.indexOf("/")) : "/32";
  };
  return {
    ID: spec.id,
    Name: spec.name,
    CreatedAt: spec.created,
    EndpointMode: spec.endpointMode,
    Affinity: spec.affinity,
    ...(spec.healthTcp !== undefined ? { HealthTcp: spec.healthTcp } : {}),
    Labels: { ...spec.labels },
    VirtualIPs: spec.networks.map((n) => ({
      NetworkID: n.networkId,
      Network: store.getNetwork(n.networkId)?.name ?? "",
      ...(n.vip ? { Addr: `${n.vip}${prefixOf(n.networkId)}` } : {}),
    })),
    Ports: spec.ports.map((p) => ({
      Protocol: p.proto,
      TargetPort: p.target,
      ...(p.published !== undefined ? { PublishedPort: p.published } : {}),
      PublishMode: p.mode,
    })),
    Backends: [...backends]
      .sort(
        (a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name) || a.ip.localeCompare(b.ip),
      )
      .map((b) => ({
        EndpointID: b.endpointId,
        ContainerID: b.containerId,
        Name: b.name,
        Node: b.node,
        NetworkID: b.networkId,
        Addr: b.ip,
        Health: b.health,
      })),
  };
}
