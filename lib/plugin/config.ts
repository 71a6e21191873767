/** trellisd's Docker plugin flags, parsed once at the edge (see lib/daemon/config.ts). */

export interface DockerPluginConfig {
  /** where the engine finds the plugin; default /run/docker/plugins/trellis.sock (the driver name is the file name) */
  socket: string;
  /**
   * the engine's API socket, asked for the names and aliases of its containers (trellis DNS across
   * hosts, `trellis network inspect`); default /run/docker.sock. Unreachable = endpoints keep
   * generated names (`docker-<endpoint id>`).
   */
  engineSocket: string;
}

export const DOCKER_PLUGIN_DEFAULTS: DockerPluginConfig = {
  socket: "/run/docker/plugins/trellis.sock",
  engineSocket: "/run/docker.sock",
};

export const DOCKER_PLUGIN_USAGE = `  --docker-plugin              serve the Docker network and IPAM plugin protocol (driver name "trellis")
  --docker-plugin-socket PATH  its socket (default ${DOCKER_PLUGIN_DEFAULTS.socket}; implies --docker-plugin)
  --docker-engine-socket PATH  the engine's API, for container names (default ${DOCKER_PLUGIN_DEFAULTS.engineSocket})`;

/**
 * Applies one plugin flag to `target.dockerPlugin` (created with the defaults by the first one);
 * returns false when `flag` is not a plugin flag. `value` is called only by flags that take one.
 */
export function applyDockerPluginFlag(
  target: { dockerPlugin?: DockerPluginConfig },
  flag: string,
  value: () => string,
): boolean {
  switch (flag) {
    case "--docker-plugin":
      target.dockerPlugin ??= { ...DOCKER_PLUGIN_DEFAULTS };
      return true;
    case "--docker-plugin-socket":
      target.dockerPlugin = { ...(target.dockerPlugin ?? DOCKER_PLUGIN_DEFAULTS), socket: value() };
      return true;
    case "--docker-engine-socket":
      target.dockerPlugin = { ...(target.dockerPlugin ?? DOCKER_PLUGIN_DEFAULTS), engineSocket: value() };
      return true;
    default:
      return false;
  }
}
