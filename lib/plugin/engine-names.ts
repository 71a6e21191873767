/**
 * Learns the container name and network aliases of an engine endpoint from the engine's API. The
 * plugin protocol never says which container an endpoint belongs to, but trellis needs names for
 * its DNS (other hosts of an overlay resolve them, `trellis network inspect` shows them). The
 * engine lists an endpoint under its network once Join has returned, so this asks after Join,
 * in the background, a few times until it shows up. Best effort: without an answer the endpoint
 * keeps its generated name. The same goes for a network's name (the protocol does not give it).
 */
import { existsSync } from "node:fs";
import { request } from "node:http";
import type { Logger } from "pino";
import { messageOf } from "../common/errors.js";

const API = "/v1.41";
const REQUEST_TIMEOUT_MS = 2000;
/** how long to look for a new endpoint in the engine's network listing, and how often */
const LOOKUP_WINDOW_MS = 10_000;
const LOOKUP_INTERVAL_MS = 200;

export interface EngineName {
  name: string;
  aliases: string[];
}

interface NetworkJson {
  Name?: string;
  Containers?: Record<string, { Name?: string; EndpointID?: string }>;
}

interface ContainerJson {
  NetworkSettings?: { Networks?: Record<string, { EndpointID?: string; Aliases?: string[] | null }> };
}

/** GET a JSON document from the engine; undefined on any failure. */
export function getJson<T>(socketPath: string, path: string): Promise<T | undefined> {
  return new Promise((resolve) => {
    const req = request(
      { socketPath, path: API + path, method: "GET", headers: { Host: "docker" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => resolve(undefined));
        res.on("end", () => {
          if (res.statusCode !== 200) return resolve(undefined);
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as T);
          } catch {
            resolve(undefined);
          }
        });
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy());
    req.on("error", () => resolve(undefined));
    req.end();
  });
}

export class EngineNames {
  private stopped = false;

  constructor(
    private readonly socketPath: string,
    private readonly log: Logger,
  ) {}

  /**
   * The endpoint's container name and aliases, or undefined if the engine does not say in time or
   * the endpoint is gone (`wanted` false: a short-lived container may be gone before it is listed).
   */
  async lookup(
    dockerNetworkId: string,
    endpointId: string,
    wanted: () => boolean = () => true,
  ): Promise<EngineName | undefined> {
    const deadline = Date.now() + LOOKUP_WINDOW_MS;
    for (;;) {
      // Wait first: the engine is busy starting the container right after Join, and lists the
      // endpoint only once that is done (a container that is gone by then is not looked up at all).
      await new Promise((r) => setTimeout(r, LOOKUP_INTERVAL_MS).unref());
      if (this.stopped || Date.now() > deadline || !wanted()) return undefined;
      const net = await getJson<NetworkJson>(this.socketPath, `/networks/${dockerNetworkId}`);
      if (net === undefined) return undefined; // no engine API here (the network itself exists by now)
      const entry = Object.entries(net.Containers ?? {}).find(([, c]) => c.EndpointID === endpointId);
      if (entry) return this.withAliases(entry[0], entry[1].Name ?? "", endpointId);
    }
  }

  private async withAliases(containerId: string, name: string, endpointId: string): Promise<EngineName> {
    const c = await getJson<ContainerJson>(this.socketPath, `/containers/${containerId}/json`);
    const settings = Object.values(c?.NetworkSettings?.Networks ?? {}).find(
      (n) => n.EndpointID === endpointId,
    );
    return { name: name.replace(/^\//, ""), aliases: settings?.Aliases ?? [] };
  }

  /**
   * The engine's name for one of its networks. The engine stores a network only after the driver's
   * CreateNetwork returned, so this asks in the background a few times until it shows up.
   */
  async networkName(dockerNetworkId: string): Promise<string | undefined> {
    const deadline = Date.now() + LOOKUP_WINDOW_MS;
    while (!this.stopped && Date.now() < deadline) {
      if (!existsSync(this.socketPath)) return undefined;
      const net = await getJson<NetworkJson>(this.socketPath, `/networks/${dockerNetworkId}`);
      if (net?.Name) return net.Name;
      await new Promise((r) => setTimeout(r, LOOKUP_INTERVAL_MS).unref());
    }
    return undefined;
  }

  /** Looks the endpoint up and hands the result to `apply`; never throws. */
  learn(
    dockerNetworkId: string,
    endpointId: string,
    apply: (n: EngineName) => void,
    wanted?: () => boolean,
  ): void {
    this.lookup(dockerNetworkId, endpointId, wanted)
      .then((found) => {
        if (found?.name) apply(found);
        else this.log.debug({ endpointId }, "docker: engine did not name the endpoint");
      })
      .catch((err) =>
        this.log.warn({ endpointId, err: messageOf(err) }, "docker: naming the endpoint failed"),
      );
  }

  stop(): void {
    this.stopped = true;
  }
}
