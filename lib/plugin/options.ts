/**
 * A Docker network's `-o KEY=VALUE` options, as the engine passes them to CreateNetwork
 * (`com.docker.network.generic`), parsed once into what trellis makes of them.
 *
 * The engine never tells a driver the network's name, so trellis names it:
 * - `-o trellis.name=NAME` names the trellis network (what `trellis network ls` shows);
 * - without it a bridge network is called `docker-<first 12 hex of the engine's network id>`,
 *   which is also the id prefix `docker network ls` shows;
 * - an overlay network (`-o trellis.mode=overlay`) must be named: the name is what makes the
 *   networks of different engines one overlay, since each engine has its own network id.
 * Every other option goes to the bridge driver, which refuses keys it does not know.
 */
import { invalid } from "../common/errors.js";

export const OPT_MODE = "trellis.mode";
export const OPT_NAME = "trellis.name";
const TRELLIS_KEYS = [OPT_MODE, OPT_NAME];
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export type DockerNetworkMode = "bridge" | "overlay";

export interface DockerNetworkOptions {
  mode: DockerNetworkMode;
  /** the trellis network's name */
  name: string;
  /** the remaining options, for the bridge driver */
  driverOptions: Record<string, string>;
}

export function defaultDockerNetworkName(dockerNetworkId: string): string {
  return `docker-${dockerNetworkId.slice(0, 12)}`;
}

export function parseDockerNetworkOptions(
  generic: Record<string, string>,
  dockerNetworkId: string,
): DockerNetworkOptions {
  const driverOptions: Record<string, string> = {};
  for (const [key, value] of Object.entries(generic)) {
    if (key.startsWith("trellis.") && !TRELLIS_KEYS.includes(key)) {
      throw invalid(`unknown option "${key}" (trellis options: ${TRELLIS_KEYS.join(", ")})`);
    }
    if (!TRELLIS_KEYS.includes(key)) driverOptions[key] = value;
  }
  const mode = generic[OPT_MODE] ?? "bridge";
  if (mode !== "bridge" && mode !== "overlay") {
    throw invalid(`invalid value "${mode}" for option ${OPT_MODE}: expected bridge or overlay`);
  }
  const given = generic[OPT_NAME];
  if (given !== undefined && !NAME.test(given)) {
    throw invalid(
      `invalid value "${given}" for option ${OPT_NAME}: use letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  }
  if (mode === "overlay") {
    if (given === undefined) {
      throw invalid(
        `an overlay network needs -o ${OPT_NAME}=NAME: the name (the same on every host) is what joins the engines' networks into one overlay`,
      );
    }
    const extra = Object.keys(driverOptions);
    if (extra.length > 0) throw invalid(`unknown option "${extra[0]}" for an overlay network`);
  }
  return { mode, name: given ?? defaultDockerNetworkName(dockerNetworkId), driverOptions };
}
