/** Docker's `filters` for GET /networks and POST /networks/prune; unknown keys are refused up front. */
import { invalid } from "../common/errors.js";
import type { NetworkView } from "../daemon/inputs.js";

export type Filters = Record<string, string[]>;

const LIST_KEYS = ["name", "id", "driver", "scope", "type", "dangling", "label"];
const PRUNE_KEYS = ["label", "label!", "until"];

function checkKeys(filters: Filters, allowed: string[]) {
  for (const key of Object.keys(filters)) {
    if (!allowed.includes(key)) throw invalid(`invalid filter '${key}' (supported: ${allowed.join(", ")})`);
  }
}

/** `key` or `key=value`, matched against the network's own labels (never inherited properties). */
function hasLabel(labels: Record<string, string>, spec: string): boolean {
  const eq = spec.indexOf("=");
  const key = eq < 0 ? spec : spec.slice(0, eq);
  return Object.hasOwn(labels, key) && (eq < 0 || labels[key] === spec.slice(eq + 1));
}

function matchOne(view: NetworkView, key: string, v: string): boolean {
  const net = view.network;
  switch (key) {
    case "name":
      return net.name.includes(v);
    case "id":
      return net.id.startsWith(v);
    case "driver":
      return net.driver === v;
    case "scope":
      return v === (net.driver === "overlay" ? "global" : "local");
    case "type":
      return v === "custom";
    case "dangling":
      return (view.endpoints.length === 0) === (v === "true" || v === "1");
    case "label":
      return hasLabel(net.labels, v);
    default:
      throw invalid(`invalid filter '${key}'`);
  }
}

export function listFilter(filters: Filters): (view: NetworkView) => boolean {
  checkKeys(filters, LIST_KEYS);
  return (view) =>
    Object.entries(filters).every(
      ([key, values]) => values.length === 0 || values.some((v) => matchOne(view, key, v)),
    );
}

/** Docker's `until`: an RFC 3339 time or Unix seconds; networks created before it match. */
function parseUntil(v: string): number {
  const ms = /^\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : Date.parse(v);
  if (Number.isNaN(ms)) throw invalid(`invalid until filter "${v}": use an RFC 3339 time or Unix seconds`);
  return ms;
}

export function pruneFilter(filters: Filters): (view: NetworkView) => boolean {
  checkKeys(filters, PRUNE_KEYS);
  const until = (filters["until"] ?? []).map(parseUntil);
  return (view) => {
    const labels = view.network.labels;
    if (!(filters["label"] ?? []).every((v) => hasLabel(labels, v))) return false;
    if ((filters["label!"] ?? []).some((v) => hasLabel(labels, v))) return false;
    return until.every((t) => Date.parse(view.network.created) < t);
  };
}

export const hasFilters = (filters: Filters) => Object.values(filters).some((v) => v.length > 0);
