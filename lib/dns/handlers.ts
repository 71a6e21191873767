/**
 * trellis's own handlers: names and aliases of endpoints and names of services on the asker's
 * networks, reverse (PTR) names of their addresses, and NXDOMAIN for what is trellis's to answer but
 * unknown. Everything else passes on (to the forwarder). All synchronous, so local answers never
 * wait on a promise.
 */
import type { Answer } from "dns-packet";
import { formatIp } from "../ipam/cidr.js";
import { type Answered, type Handler, NEXT, type Query, Rcode } from "./chain.js";
import { addressOfReverseName, isSingleLabel, stripSearchDomain } from "./names.js";
import type { DnsRecords } from "./records.js";

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

/** Which records a name query wants: services are IPv4-only, so only A and ANY get theirs. */
const wantsA = (q: Query): boolean => q.type === "A" || q.type === "ANY";
const wantsAAAA = (q: Query): boolean => q.type === "AAAA" || q.type === "ANY";

interface NameAnswer {
  answers: Answer[];
  /** a service answered on at least one network */
  service: boolean;
}

/**
 * What `lname` is on the asker's networks, network by network in scope order, then address order
 * within a network; undefined when nothing on those networks answers to it. A service shadows an
 * endpoint name or alias of the same spelling on its own network: the service is the name users
 * address (as with Docker's service names), and answering both would mix the VIP with a container's
 * address, defeating the VIP. On another network of the asker the endpoint still answers.
 */
function nameAnswer(records: DnsRecords, q: Query, lname: string): NameAnswer | undefined {
  const seen = new Set<string>();
  const answers: Answer[] = [];
  let known = false;
  let service = false;
  for (const net of q.scope) {
    const ips = records.services.addressesOn(net, lname);
    if (ips) {
      known = service = true;
      if (wantsA(q)) for (const ip of ips) push(q, answers, seen, "A", ip);
      continue;
    }
    const eps = records.endpointsOn(net, lname);
    if (!eps) continue;
    known = true;
    for (const ep of eps) {
      if (wantsA(q) && ep.ipv4) push(q, answers, seen, "A", ep.ipv4);
      if (wantsAAAA(q) && ep.ipv6) push(q, answers, seen, "AAAA", ep.ipv6);
    }
  }
  return known ? { answers, service } : undefined;
}

function push(q: Query, out: Answer[], seen: Set<string>, type: "A" | "AAAA", data: string): void {
  if (seen.has(data)) return;
  seen.add(data);
  out.push({ type, name: q.name, ttl: LOCAL_TTL, class: "IN", data });
}

/**
 * Endpoint names and aliases, and service names (VIP, or backends in dnsrr mode) and tasks.NAME, on
 * the asker's networks: the name exactly (case-insensitive, trailing dot ignored), or the name with
 * one of the search domains removed from its end. A known name asked with another type (MX, TXT,
 * AAAA of a v4-only endpoint or of any service), or a service without a healthy backend to give,
 * gets NOERROR with no records: never NXDOMAIN, never forwarded.
 */
export function trellisNames(records: DnsRecords, search: readonly string[]): Handler {
  return {
    name: "trellis-names",
    handle(q) {
      if (!servedClass(q)) return NEXT;
      let found = nameAnswer(records, q, q.lname);
      if (!found) {
        const stripped = stripSearchDomain(q.lname, search);
        if (stripped !== undefined) found = nameAnswer(records, q, stripped);
      }
      if (!found) return NEXT;
      return answered(Rcode.NOERROR, found.answers, found.service ? "trellis-service" : "trellis");
    },
  };
}

/**
 * PTR for the VIPs of services (the service's name) and the addresses of endpoints (the endpoint's
 * name) on the asker's networks. A reverse name inside one of the asker's subnets that nothing there
 * holds is NXDOMAIN; other reverse names pass on.
 */
export function reverseNames(records: DnsRecords): Handler {
  return {
    name: "trellis-reverse",
    handle(q) {
      if (!servedClass(q)) return NEXT;
      const ip = addressOfReverseName(q.lname);
      if (!ip) return NEXT;
      const services = ip.family === 4 ? records.services.namesOfVip(q.scope, formatIp(ip)) : [];
      const eps = records.byAddress(q.scope, ip);
      if (eps.length === 0 && services.length === 0) {
        return records.inSubnets(q.scope, ip) ? answered(Rcode.NXDOMAIN, [], "trellis-reverse") : NEXT;
      }
      if (q.type !== "PTR" && q.type !== "ANY") return answered(Rcode.NOERROR, [], "trellis-reverse");
      const names = [...new Set([...services, ...eps.map((ep) => ep.name)])];
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
