/**
 * trellis's own handlers: names and aliases of endpoints on the asker's networks, reverse (PTR)
 * names of their addresses, and NXDOMAIN for what is trellis's to answer but unknown. Everything
 * else passes on (to the forwarder). All synchronous, so local answers never wait on a promise.
 */
import type { Answer } from "dns-packet";
import { formatIp } from "../ipam/cidr.js";
import { type Answered, type Handler, NEXT, type Query, Rcode } from "./chain.js";
import { addressOfReverseName, isSingleLabel, stripSearchDomain } from "./names.js";
import type { DnsEndpoint, DnsRecords } from "./records.js";

/** TTL of trellis's own records, in seconds. Short because they change the moment an endpoint
 * connects or disconnects; clients that cache would otherwise keep stale addresses. */
export const LOCAL_TTL = 5;

const answered = (rcode: Answered["rcode"], answers: Answer[], source: string): Answered => ({
  kind: "answer",
  rcode,
  answers,
  local: true,
  source,
});

/** Classes trellis answers for; CHAOS and the rest pass on. */
const servedClass = (q: Query): boolean => q.class === "IN" || q.class === "ANY";

function addressRecords(q: Query, eps: readonly DnsEndpoint[]): Answer[] {
  const wantA = q.type === "A" || q.type === "ANY";
  const wantAAAA = q.type === "AAAA" || q.type === "ANY";
  const seen = new Set<string>();
  const out: Answer[] = [];
  for (const ep of eps) {
    if (wantA && ep.ipv4 && !seen.has(ep.ipv4)) {
      seen.add(ep.ipv4);
      out.push({ type: "A", name: q.name, ttl: LOCAL_TTL, class: "IN", data: ep.ipv4 });
    }
    if (wantAAAA && ep.ipv6 && !seen.has(ep.ipv6)) {
      seen.add(ep.ipv6);
      out.push({ type: "AAAA", name: q.name, ttl: LOCAL_TTL, class: "IN", data: ep.ipv6 });
    }
  }
  return out;
}

/**
 * Endpoint names and aliases on the asker's networks: the name exactly (case-insensitive, trailing
 * dot ignored), or the name with one of the search domains removed from its end. A known name
 * asked with another type (MX, TXT, AAAA of a v4-only endpoint) gets NOERROR with no records.
 */
export function trellisNames(records: DnsRecords, search: readonly string[]): Handler {
  return {
    name: "trellis-names",
    handle(q) {
      if (!servedClass(q)) return NEXT;
      let eps = records.byName(q.scope, q.lname);
      if (eps.length === 0) {
        const stripped = stripSearchDomain(q.lname, search);
        if (stripped !== undefined) eps = records.byName(q.scope, stripped);
      }
      if (eps.length === 0) return NEXT;
      return answered(Rcode.NOERROR, addressRecords(q, eps), "trellis");
    },
  };
}

/**
 * PTR for the addresses of endpoints on the asker's networks (the endpoint's name). A reverse name
 * inside one of the asker's subnets that no endpoint holds is NXDOMAIN; other reverse names pass on.
 */
export function reverseNames(records: DnsRecords): Handler {
  return {
    name: "trellis-reverse",
    handle(q) {
      if (!servedClass(q)) return NEXT;
      const ip = addressOfReverseName(q.lname);
      if (!ip) return NEXT;
      const eps = records.byAddress(q.scope, ip);
      if (eps.length === 0) {
        return records.inSubnets(q.scope, ip) ? answered(Rcode.NXDOMAIN, [], "trellis-reverse") : NEXT;
      }
      if (q.type !== "PTR" && q.type !== "ANY") return answered(Rcode.NOERROR, [], "trellis-reverse");
      const names = [...new Set(eps.map((ep) => ep.name))];
      return answered(
        Rcode.NOERROR,
        names.map((data) => ({ type: "PTR", name: q.name, ttl: LOCAL_TTL, class: "IN", data })),
        `trellis-reverse ${formatIp(ip)}`,
      );
    },
  };
}

/**
 * A single-label name nobody on the asker's networks answers to is NXDOMAIN here: such names are
 * container names by convention, and forwarding them would tell the upstream what containers ask
 * for. The answer is the same whether or not the name exists on a network the asker is not on.
 */
export function singleLabelNxdomain(): Handler {
  return {
    name: "single-label",
    handle(q) {
      return servedClass(q) && isSingleLabel(q.lname) ? answered(Rcode.NXDOMAIN, [], "trellis") : NEXT;
    },
  };
}
