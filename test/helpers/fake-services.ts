/**
 * An in-memory ServiceOperations for route and CLI tests. It resolves references and reports
 * errors the way the daemon is specified to (name, full id or unique id prefix; NOT_FOUND, CONFLICT)
 * and records every call, so tests can assert what reached the daemon and what did not.
 */
import { createHash } from "node:crypto";
import type { Server } from "node:http";
import { pino } from "pino";
import { Router, serve } from "../../lib/api/http.js";
import { serviceRoutes } from "../../lib/api/service-routes.js";
import { conflict, invalid, notFound } from "../../lib/common/errors.js";
import type {
  BackendView,
  CreateServiceInput,
  ServiceOperations,
  ServiceView,
} from "../../lib/ingress/spec.js";
import { tempSocketPath } from "./cli-harness.js";

export type ServiceCall =
  | { op: "createService"; input: CreateServiceInput }
  | { op: "removeService"; ref: string }
  | { op: "addBackend"; ref: string; container: string }
  | { op: "removeBackend"; ref: string; container: string };

/** A container the fake knows: its reference as the CLI sends it, and where its endpoint lives. */
export interface FakeContainer {
  ref: string;
  name: string;
  addr: string;
  health?: BackendView["Health"];
}

export const hexOf = (seed: string) => createHash("sha256").update(seed).digest("hex");

export function viewOf(input: CreateServiceInput, index: number): ServiceView {
  return {
    ID: hexOf(input.name),
    Name: input.name,
    CreatedAt: "2026-01-01T00:00:00Z",
    EndpointMode: input.endpointMode,
    Affinity: input.affinity,
    ...(input.healthTcp === undefined ? {} : { HealthTcp: input.healthTcp }),
    Labels: input.labels,
    VirtualIPs: input.networks.map((net, n) => ({
      NetworkID: hexOf(`net ${net}`),
      Network: net,
      ...(input.endpointMode === "vip" ? { Addr: `10.${n}.${index}.2/24` } : {}),
    })),
    Ports: input.ports.map((p) => ({
      Protocol: p.proto,
      TargetPort: p.target,
      ...(p.published === undefined ? {} : { PublishedPort: p.published }),
      PublishMode: p.mode,
    })),
    Backends: [],
  };
}

export class FakeServices implements ServiceOperations {
  readonly calls: ServiceCall[] = [];
  readonly services: ServiceView[] = [];
  /** thrown by the next mutating call, if set */
  failNext: unknown;

  constructor(readonly containers: FakeContainer[] = []) {}

  #maybeFail(): void {
    const err = this.failNext;
    this.failNext = undefined;
    if (err !== undefined) throw err;
  }

  async createService(input: CreateServiceInput): Promise<ServiceView> {
    this.calls.push({ op: "createService", input });
    this.#maybeFail();
    if (this.services.some((s) => s.Name === input.name)) {
      throw conflict(`service with name ${input.name} already exists`);
    }
    const view = viewOf(input, this.services.length + 1);
    this.services.push(view);
    return view;
  }

  listServices(): ServiceView[] {
    return this.services;
  }

  getService(ref: string): ServiceView {
    const exact = this.services.find((s) => s.ID === ref || s.Name === ref);
    if (exact) return exact;
    const byPrefix = this.services.filter((s) => s.ID.startsWith(ref));
    if (byPrefix.length > 1) throw invalid(`service id prefix ${ref} is ambiguous`);
    if (byPrefix.length === 0) throw notFound(`service ${ref} not found`);
    return byPrefix[0]!;
  }

  async removeService(ref: string): Promise<void> {
    this.calls.push({ op: "removeService", ref });
    this.#maybeFail();
    const s = this.getService(ref);
    this.services.splice(this.services.indexOf(s), 1);
  }

  #container(ref: string): FakeContainer {
    const c = this.containers.find((x) => x.ref === ref);
    if (!c) throw notFound(`container ${ref} not found`);
    return c;
  }

  async addBackend(ref: string, container: string): Promise<ServiceView> {
    this.calls.push({ op: "addBackend", ref, container });
    this.#maybeFail();
    const s = this.getService(ref);
    const c = this.#container(container);
    const net = s.VirtualIPs[0]!;
    s.Backends.push({
      EndpointID: hexOf(`ep ${c.name} ${net.NetworkID}`),
      ContainerID: hexOf(`c ${c.name}`),
      Name: c.name,
      Node: "node1",
      NetworkID: net.NetworkID,
      Addr: c.addr,
      Health: c.health ?? "unchecked",
    });
    return s;
  }

  async removeBackend(ref: string, container: string): Promise<ServiceView> {
    this.calls.push({ op: "removeBackend", ref, container });
    this.#maybeFail();
    const s = this.getService(ref);
    const c = this.#container(container);
    const at = s.Backends.findIndex((b) => b.Name === c.name);
    if (at === -1) throw notFound(`container ${container} is not a backend of service ${s.Name}`);
    s.Backends.splice(at, 1);
    return s;
  }
}

/**
 * The real service routes over `ops` on a temp unix socket, with the daemon's /v1.NN prefix
 * handling; `extend` adds more routes (the CLI tests add network connect/disconnect).
 */
export async function serveServices(
  t: { teardown: (fn: () => Promise<void>) => void },
  ops: ServiceOperations | undefined,
  extend?: (router: Router) => void,
): Promise<string> {
  const router = new Router();
  serviceRoutes(router, () => ops);
  extend?.(router);
  const socketPath = tempSocketPath();
  const server: Server = await serve({
    socketPath,
    router,
    log: pino({ level: "silent" }),
    versionedPaths: true,
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return socketPath;
}
