/**
 * Turns the untrusted JSON of the service routes into typed inputs. Stricter than the Docker
 * routes' parsers: those must ignore the extra fields Docker clients send, while these bodies
 * come only from trellis's own CLI and scripts, where an unknown field is a typo that would
 * otherwise silently change the service (a misspelt "PublishedPort" leaves the port unpublished).
 */
import { invalid } from "../common/errors.js";
import {
  type CreateServiceInput,
  type EndpointMode,
  type PublishMode,
  SERVICE_NAME,
  type ServicePort,
} from "../ingress/spec.js";
import type { Protocol } from "../store/records.js";

type Json = Record<string, unknown>;

/** A JSON object whose keys are all in `known`; `field` names it in errors. */
function strictObject(value: unknown, field: string, known: readonly string[]): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(`${field} must be a JSON object`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const where = field === "request body" ? "" : ` in ${field}`;
      throw invalid(`unknown field "${key}"${where} (expected ${known.join(", ")})`);
    }
  }
  return value as Json;
}

/** Absent and null both mean "use the default", as in the Docker routes. */
const absent = (v: unknown) => v === undefined || v === null;

function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[], dflt: T): T {
  if (absent(value)) return dflt;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw invalid(`${field} must be ${allowed.join(" or ")}`);
  }
  return value as T;
}

function port(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw invalid(`${field} must be a port number from 1 to 65535`);
  }
  return value;
}

function serviceName(value: unknown): string {
  if (absent(value) || value === "") throw invalid("Name is required");
  if (typeof value !== "string") throw invalid("Name must be a string");
  if (!SERVICE_NAME.test(value)) {
    throw invalid(
      `invalid service name "${value}": 1 to 63 letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  }
  return value;
}

function networks(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid("Networks must be a non-empty list of network names or ids");
  }
  const seen = new Set<string>();
  return value.map((n, i) => {
    if (typeof n !== "string" || n.trim() === "") throw invalid(`Networks[${i}] must be a non-empty string`);
    if (seen.has(n)) throw invalid(`Networks[${i}]: network "${n}" is listed twice`);
    seen.add(n);
    return n;
  });
}

const PORT_FIELDS = ["Protocol", "TargetPort", "PublishedPort", "PublishMode"] as const;

function servicePort(value: unknown, field: string): ServicePort {
  const o = strictObject(value, field, PORT_FIELDS);
  const proto = oneOf<Protocol>(o["Protocol"], `${field}.Protocol`, ["tcp", "udp"], "tcp");
  const target = port(o["TargetPort"], `${field}.TargetPort`);
  if (absent(o["PublishedPort"])) {
    if (!absent(o["PublishMode"])) {
      throw invalid(
        `${field}: PublishMode needs a PublishedPort (a port without one is served at the VIP only)`,
      );
    }
    return { proto, target, mode: "ingress" };
  }
  const published = port(o["PublishedPort"], `${field}.PublishedPort`);
  const mode = oneOf<PublishMode>(o["PublishMode"], `${field}.PublishMode`, ["ingress", "host"], "ingress");
  return { proto, target, published, mode };
}

/** Each published port+protocol once; a VIP-only port must not repeat a target another entry serves. */
function checkPortClashes(ports: readonly ServicePort[]): void {
  const published = new Map<string, number>();
  ports.forEach((p, i) => {
    if (p.published === undefined) {
      const other = ports.findIndex((q, j) => j !== i && q.target === p.target && q.proto === p.proto);
      if (other !== -1) {
        throw invalid(`Ports[${i}]: VIP-only target port ${p.target}/${p.proto} duplicates Ports[${other}]`);
      }
      return;
    }
    const key = `${p.published}/${p.proto}`;
    const earlier = published.get(key);
    if (earlier !== undefined) {
      throw invalid(`Ports[${i}]: published port ${key} is already used by Ports[${earlier}]`);
    }
    published.set(key, i);
  });
}

function servicePorts(value: unknown, endpointMode: EndpointMode): ServicePort[] {
  if (absent(value)) return [];
  if (!Array.isArray(value)) throw invalid("Ports must be a list");
  const ports = value.map((p, i) => servicePort(p, `Ports[${i}]`));
  checkPortClashes(ports);
  if (endpointMode === "dnsrr") {
    const i = ports.findIndex((p) => p.published !== undefined && p.mode === "ingress");
    // Docker's reason, word for word: the routing mesh forwards to a VIP, which dnsrr has none of.
    if (i !== -1)
      throw invalid(`Ports[${i}]: port published with ingress mode can't be used with dnsrr mode`);
  }
  return ports;
}

function labels(value: unknown): Record<string, string> {
  if (absent(value)) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid("Labels must be a JSON object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Json)) {
    if (typeof v !== "string") throw invalid(`Labels["${k}"] must be a string`);
    out[k] = v;
  }
  return out;
}

const CREATE_FIELDS = [
  "Name",
  "Networks",
  "EndpointMode",
  "Ports",
  "Affinity",
  "HealthTcp",
  "Labels",
] as const;

/** The body of POST /trellis/services/create. */
export function parseCreateService(body: unknown): CreateServiceInput {
  const o = strictObject(body, "request body", CREATE_FIELDS);
  const name = serviceName(o["Name"]);
  const endpointMode = oneOf<EndpointMode>(o["EndpointMode"], "EndpointMode", ["vip", "dnsrr"], "vip");
  const input: CreateServiceInput = {
    name,
    networks: networks(o["Networks"]),
    endpointMode,
    ports: servicePorts(o["Ports"], endpointMode),
    affinity: oneOf(o["Affinity"], "Affinity", ["none", "client-ip"], "none"),
    labels: labels(o["Labels"]),
  };
  if (!absent(o["HealthTcp"])) input.healthTcp = port(o["HealthTcp"], "HealthTcp");
  return input;
}

/** The body of POST /trellis/services/{ref}/backends[/remove]: a container reference. */
export function parseBackend(body: unknown): string {
  const o = strictObject(body, "request body", ["Container"]);
  const container = o["Container"];
  if (typeof container !== "string" || container.trim() === "") {
    throw invalid("Container is required: a netns name, a netns path or pid:PID");
  }
  return container;
}
