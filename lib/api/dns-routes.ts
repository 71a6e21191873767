/**
 * trellis-only DNS routes (not part of the Docker API): what a container's query would get.
 *   GET /trellis/dns/lookup?name=NAME[&from=CONTAINER][&type=A|AAAA|PTR|...]
 */
import { invalid } from "../common/errors.js";
import type { Final } from "../dns/chain.js";
import type { LookupResult } from "../dns/service.js";
import type { Router } from "./http.js";

/** What the routes need of the DNS service. */
export interface DnsLookup {
  lookup(name: string, type: string, from?: string): Promise<LookupResult>;
}

const TYPES = new Set(["A", "AAAA", "PTR", "ANY", "MX", "TXT", "SRV", "CNAME", "NS", "SOA"]);
const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

function answersOf(final: Final) {
  if (final.kind !== "answer") return [];
  return final.answers.flatMap((a) =>
    a.type === "OPT"
      ? []
      : [
          {
            Name: a.name,
            Type: a.type,
            TTL: a.ttl ?? 0,
            Data: typeof a.data === "string" ? a.data : JSON.stringify(a.data),
          },
        ],
  );
}

export function dnsRoutes(router: Router, dns: DnsLookup): Router {
  return router.add("GET", /^\/trellis\/dns\/lookup$/, async (req) => {
    const name = req.query.get("name") ?? "";
    if (name === "" || name.length > 253)
      throw invalid("query parameter name is required (at most 253 characters)");
    const type = (req.query.get("type") ?? "A").toUpperCase();
    if (!TYPES.has(type)) throw invalid(`unsupported type "${type}" (use one of ${[...TYPES].join(", ")})`);
    const from = req.query.get("from") ?? undefined;
    const r = await dns.lookup(name, type, from === "" ? undefined : from);
    return {
      status: 200,
      body: {
        Name: name,
        Type: type,
        From: r.from ?? null,
        Scope: r.scope,
        Rcode: RCODES[r.final.rcode] ?? String(r.final.rcode),
        Source: r.final.source,
        Answers: answersOf(r.final),
      },
    };
  });
}
