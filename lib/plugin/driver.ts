/** The NetworkDriver calls, onto the plugin's network and endpoint managers. */
import type { Capabilities, NetworkDriverBackend } from "./backend.js";
import type { DockerEndpoints } from "./endpoints.js";
import type { DockerNetworks } from "./networks.js";

/**
 * Local scope: each engine holds its own networks (a "global" driver needs a swarm manager, and a
 * standalone engine refuses it). Global connectivity: containers of different hosts reach each
 * other on an overlay network.
 */
export const DRIVER_CAPABILITIES: Capabilities = { Scope: "local", ConnectivityScope: "global" };

export function driverBackend(networks: DockerNetworks, endpoints: DockerEndpoints): NetworkDriverBackend {
  return {
    capabilities: () => DRIVER_CAPABILITIES,
    createNetwork: (req) => networks.create(req),
    deleteNetwork: (id) => networks.delete(id),
    createEndpoint: (req) => endpoints.create(req),
    endpointOperInfo: (ref) => endpoints.operInfo(ref),
    deleteEndpoint: (ref) => endpoints.delete(ref),
    join: (req) => endpoints.join(req),
    leave: (ref) => endpoints.leave(ref),
    programExternalConnectivity: (req) => endpoints.program(req),
    revokeExternalConnectivity: (ref) => endpoints.revoke(ref),
  };
}
