/**
 * trellis-only service routes (not part of the Docker API; `/v1.NN/...` works too):
 *   POST   /trellis/services/create                  CreateService body → 201 ServiceView
 *   GET    /trellis/services                         → ServiceView[]
 *   GET    /trellis/services/{ref}                   by name, id or unique id prefix
 *   DELETE /trellis/services/{ref}                   → 204
 *   POST   /trellis/services/{ref}/backends          {"Container"} → ServiceView
 *   POST   /trellis/services/{ref}/backends/remove   {"Container"} → ServiceView
 * Bodies are checked in service-validate.ts before anything reaches the daemon.
 */
import { invalid } from "../common/errors.js";
import type { ServiceOperations } from "../ingress/spec.js";
import type { Router } from "./http.js";
import { parseBackend, parseCreateService } from "./service-validate.js";

const noServices = () => invalid("this trellisd does not manage services");

export function serviceRoutes(router: Router, ops: () => ServiceOperations | undefined): void {
  const need = () => {
    const s = ops();
    if (!s) throw noServices();
    return s;
  };
  router
    .add("POST", /^\/trellis\/services\/create$/, async (req) => {
      const input = parseCreateService(req.body);
      return { status: 201, body: await need().createService(input) };
    })
    .add("GET", /^\/trellis\/services\/?$/, () => ({ status: 200, body: need().listServices() }))
    .add("GET", /^\/trellis\/services\/([^/]+)$/, (_req, [ref]) => ({
      status: 200,
      body: need().getService(ref!),
    }))
    .add("DELETE", /^\/trellis\/services\/([^/]+)$/, async (_req, [ref]) => {
      await need().removeService(ref!);
      return { status: 204 };
    })
    .add("POST", /^\/trellis\/services\/([^/]+)\/backends$/, async (req, [ref]) => {
      const container = parseBackend(req.body);
      return { status: 200, body: await need().addBackend(ref!, container) };
    })
    .add("POST", /^\/trellis\/services\/([^/]+)\/backends\/remove$/, async (req, [ref]) => {
      const container = parseBackend(req.body);
      return { status: 200, body: await need().removeBackend(ref!, container) };
    });
}
