/**
 * The network subset of the Docker Engine API (v1.41), so the docker CLI and Docker SDKs drive
 * trellisd unchanged: `docker -H unix:///run/trellis/trellis.sock network ls`.
 */
import type { NetworkOperations } from "../daemon/inputs.js";
import { hasFilters, listFilter, pruneFilter } from "./filters.js";
import { Router } from "./http.js";
import { networkJson } from "./shapes.js";
import { parseConnect, parseCreateNetwork, parseDisconnect, parseFilters } from "./validate.js";

export const API_VERSION = "1.41";
export const MIN_API_VERSION = "1.12";

export interface VersionInfo {
  version: string;
  kernelVersion: string;
}

export function dockerRoutes(ops: NetworkOperations, info: VersionInfo): Router {
  const router = new Router();
  const ping = () => ({
    status: 200,
    body: "OK",
    headers: { "Cache-Control": "no-cache, no-store, must-revalidate" },
  });
  router
    .add("GET", /^\/_ping$/, ping)
    .add("HEAD", /^\/_ping$/, ping)
    .add("GET", /^\/version$/, () => ({
      status: 200,
      body: {
        Platform: { Name: "trellis" },
        Components: [{ Name: "trellis", Version: info.version, Details: {} }],
        Version: info.version,
        ApiVersion: API_VERSION,
        MinAPIVersion: MIN_API_VERSION,
        GitCommit: "",
        GoVersion: "",
        Os: "linux",
        Arch: process.arch === "x64" ? "amd64" : process.arch,
        KernelVersion: info.kernelVersion,
        BuildTime: "",
      },
    }))
    .add("GET", /^\/networks\/?$/, (req) => {
      const filters = parseFilters(req.query.get("filters"));
      const views = ops.listNetworks().filter(listFilter(filters));
      return { status: 200, body: views.map(networkJson) };
    })
    .add("POST", /^\/networks\/create$/, async (req) => {
      const view = await ops.createNetwork(parseCreateNetwork(req.body));
      return { status: 201, body: { Id: view.network.id, Warning: "" } };
    })
    .add("POST", /^\/networks\/prune$/, async (req) => {
      const filters = parseFilters(req.query.get("filters"));
      if (!hasFilters(filters)) return { status: 200, body: { NetworksDeleted: await ops.pruneNetworks() } };
      const selected = pruneFilter(filters);
      const deleted: string[] = [];
      for (const view of ops.listNetworks()) {
        if (view.endpoints.length > 0 || !selected(view)) continue;
        await ops.removeNetwork(view.network.id);
        deleted.push(view.network.name);
      }
      return { status: 200, body: { NetworksDeleted: deleted } };
    })
    .add("GET", /^\/networks\/([^/]+)$/, (_req, [ref]) => ({
      status: 200,
      body: networkJson(ops.getNetwork(ref!)),
    }))
    .add("DELETE", /^\/networks\/([^/]+)$/, async (_req, [ref]) => {
      await ops.removeNetwork(ref!);
      return { status: 204 };
    })
    .add("POST", /^\/networks\/([^/]+)\/connect$/, async (req, [ref]) => {
      await ops.connect(ref!, parseConnect(req.body));
      return { status: 200 };
    })
    .add("POST", /^\/networks\/([^/]+)\/disconnect$/, async (req, [ref]) => {
      await ops.disconnect(ref!, parseDisconnect(req.body));
      return { status: 200 };
    });
  return router;
}
