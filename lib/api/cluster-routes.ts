/**
 * trellis-only cluster routes (not part of the Docker API):
 *   GET  /trellis/nodes                       members as this node sees them
 *   POST /trellis/cluster/join {"Seeds": [...]}
 *   POST /trellis/cluster/leave               graceful leave (others drop this node's endpoints)
 *   POST /trellis/cluster/rotate-key {"Key"?}  new gossip key on every member, no restart
 *   GET  /trellis/debug/overlay/{network}     programmed FDB/neighbour entries and their table source
 */
import { invalid } from "../common/errors.js";
import type { Router } from "./http.js";

export interface NodeView {
  Name: string;
  Addr: string;
  Port: number;
  State: string;
  Incarnation: number;
  /** ms since the last direct contact; 0 for this node, -1 when never */
  LastContactMs: number;
  Self: boolean;
}

/** What the routes need of the cluster (lib/overlay); undefined when the daemon has none. */
export interface ClusterOperations {
  nodes(): NodeView[];
  join(seeds: string[]): Promise<number>;
  leave(): Promise<void>;
  /** replaces the gossip key on every member; resolves with how many took part */
  rotateKey(key?: string): Promise<number>;
  debugOverlay(networkRef: string): Promise<unknown>;
}

const noCluster = () =>
  invalid(
    "this trellisd is not in a cluster: start it with --advertise-addr (and --join) for overlay networks",
  );

export function clusterRoutes(router: Router, ops: () => ClusterOperations | undefined): void {
  const need = () => {
    const c = ops();
    if (!c) throw noCluster();
    return c;
  };
  router
    .add("GET", /^\/trellis\/nodes$/, () => ({ status: 200, body: need().nodes() }))
    .add("POST", /^\/trellis\/cluster\/join$/, async (req) => {
      const body = req.body as { Seeds?: unknown } | undefined;
      const seeds = body?.Seeds;
      if (!Array.isArray(seeds) || seeds.length === 0 || seeds.some((s) => typeof s !== "string")) {
        throw invalid("Seeds must be a non-empty list of HOST[:PORT] strings");
      }
      return { status: 200, body: { Reached: await need().join(seeds as string[]) } };
    })
    .add("POST", /^\/trellis\/cluster\/leave$/, async () => {
      await need().leave();
      return { status: 200, body: {} };
    })
    .add("POST", /^\/trellis\/cluster\/rotate-key$/, async (req) => {
      const key = (req.body as { Key?: unknown } | undefined)?.Key;
      if (key !== undefined && typeof key !== "string") throw invalid("Key must be a base64 string");
      return { status: 200, body: { Members: await need().rotateKey(key) } };
    })
    .add("GET", /^\/trellis\/debug\/overlay\/([^/]+)$/, async (_req, [ref]) => ({
      status: 200,
      body: await need().debugOverlay(ref!),
    }));
}
