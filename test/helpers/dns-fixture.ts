/**
 * The embedded DNS's resolver over a record index, as the daemon chains it (trellis names, reverse
 * names, single-label NXDOMAIN), with a fake upstream that records what reached it.
 */
import { type Handler, type Query, Rcode } from "../../lib/dns/chain.js";
import { reverseNames, singleLabelNxdomain, trellisNames } from "../../lib/dns/handlers.js";
import type { DnsEndpoint, DnsRecords } from "../../lib/dns/records.js";
import { Resolver } from "../../lib/dns/resolver.js";

export function dnsEndpoint(
  id: string,
  networkId: string,
  containerId: string,
  name: string,
  extra: Partial<DnsEndpoint> = {},
): DnsEndpoint {
  return { id, networkId, containerId, name, aliases: [], ...extra };
}

/** A resolver over `records` with search domain corp.test; `forwarded` lists what went upstream. */
export function resolverOver(records: DnsRecords) {
  const forwarded: Query[] = [];
  const forward: Handler = {
    name: "forward",
    handle(q) {
      forwarded.push(q);
      return { kind: "answer", rcode: Rcode.NOERROR, answers: [], local: false, source: "upstream" };
    },
  };
  const handlers = [
    trellisNames(records, ["corp.test"]),
    reverseNames(records),
    singleLabelNxdomain(),
    forward,
  ];
  return { records, forwarded, resolver: new Resolver(records, handlers) };
}
