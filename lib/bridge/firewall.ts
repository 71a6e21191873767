/**
 * Renders trellis's nftables state. Everything lives in one table, `inet trellis`, that trellis owns
 * outright: a full render replaces it atomically (add + delete + define in one `nft -f` transaction,
 * so there is never a moment without rules), and published ports are elements of named maps so a
 * connect or disconnect changes only its own elements and the ruleset never grows with the number of
 * ports (the per-packet cost is one map lookup). Service VIPs (lib/ingress) are elements of a set
 * here too, and networks that carry services keep connection tracking (see the rules).
 */
import type { Protocol } from "../store/records.js";

export const TABLE = "inet trellis";

export interface FirewallNetwork {
  id: string;
  bridgeName: string;
  internal: boolean;
  masquerade: boolean;
  subnets4: string[];
  /** gateway addresses on the bridge (traffic to them is the host's, and hairpin replies go there) */
  gateways4?: string[];
  /** a service uses the network: its traffic stays tracked (see renderRawChain) */
  services?: boolean;
}

export interface PublishedPort {
  proto: Protocol;
  /** undefined: every local address */
  hostIp?: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface FirewallState {
  networks: FirewallNetwork[];
  ports: PublishedPort[];
  /** every service VIP (bare IPv4) on this host's networks: @svc_vips */
  serviceVips: string[];
}

export const SERVICE_VIPS_SET = "svc_vips";

const q = (name: string) => JSON.stringify(name);

function mapName(p: Pick<PublishedPort, "proto" | "hostIp">): string {
  return `pub4_${p.proto}${p.hostIp === undefined ? "" : "_ip"}`;
}

function elementOf(p: PublishedPort): string {
  const key = p.hostIp === undefined ? `${p.hostPort}` : `${p.hostIp} . ${p.hostPort}`;
  return `${key} : ${p.containerIp} . ${p.containerPort}`;
}

function keyOf(p: PublishedPort): string {
  return p.hostIp === undefined ? `${p.hostPort}` : `${p.hostIp} . ${p.hostPort}`;
}

function renderMaps(ports: PublishedPort[]): string[] {
  const lines: string[] = [];
  for (const proto of ["tcp", "udp"] as const) {
    for (const withIp of [false, true]) {
      const name = mapName({ proto, hostIp: withIp ? "x" : undefined });
      const type = withIp ? "ipv4_addr . inet_service" : "inet_service";
      const elements = ports
        .filter((p) => p.proto === proto && (p.hostIp !== undefined) === withIp)
        .map(elementOf);
      lines.push(`  map ${name} {`, `    type ${type} : ipv4_addr . inet_service`);
      if (elements.length > 0) lines.push(`    elements = { ${elements.join(", ")} }`);
      lines.push("  }");
    }
  }
  return lines;
}

function renderNatChains(networks: FirewallNetwork[]): string[] {
  const lines = [
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    "    fib daddr type local jump publish",
    "  }",
    "  chain output {",
    "    type nat hook output priority -100; policy accept;",
    "    fib daddr type local jump publish",
    "  }",
    "  chain publish {",
  ];
  for (const proto of ["tcp", "udp"] as const) {
    // The address-specific map first: a port published on one address wins over a wildcard.
    lines.push(`    dnat ip to ip daddr . ${proto} dport map @${mapName({ proto, hostIp: "x" })}`);
    lines.push(`    dnat ip to ${proto} dport map @${mapName({ proto })}`);
  }
  lines.push("  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;");
  for (const net of networks) {
    if (net.internal) continue;
    const br = q(net.bridgeName);
    // Hairpin: a container reaching a published port on its own network must see replies come
    // back through the host, or it would get them straight from the peer with the wrong source.
    // (The input interface is not usable here: with br_netfilter, bridged packets carry the port.)
    // Not for a service VIP: its backends' replies are tracked (not notracked, see the raw chain),
    // so conntrack undoes the DNAT on the bridged reply and the backend sees the client's address.
    for (const subnet of net.subnets4)
      lines.push(
        `    oifname ${br} ip saddr ${subnet} ct status dnat ct original ip daddr != @${SERVICE_VIPS_SET} masquerade`,
      );
    if (net.masquerade) {
      for (const subnet of net.subnets4) lines.push(`    ip saddr ${subnet} oifname != ${br} masquerade`);
    }
  }
  lines.push("  }");
  return lines;
}

/**
 * Traffic between two addresses of one network never needs NAT or connection state: skipping
 * conntrack for it spares every bridged frame (br_netfilter sends them through these hooks) the
 * cost of a lookup, which is most of the overlay's gap to a bare VXLAN + bridge path. Networks that
 * carry a service are the exception, as a whole: a connection to a VIP is DNATed, and the backend's
 * bridged reply must meet that conntrack entry to get the VIP back as its source. Exempting only the
 * current backends would not do: a backend removed from a service must keep its established
 * connections (drain), and its replies look like any other traffic inside the network.
 */
function renderRawChain(networks: FirewallNetwork[]): string[] {
  const lines = ["  chain prerouting_raw {", "    type filter hook prerouting priority raw; policy accept;"];
  for (const net of networks) {
    if (net.services) continue;
    // Not to the gateway: replies of hairpin flows (masqueraded to it) must meet their conntrack entry.
    const gw =
      net.gateways4 && net.gateways4.length > 0 ? ` ip daddr != { ${net.gateways4.join(", ")} }` : "";
    for (const subnet of net.subnets4) lines.push(`    ip saddr ${subnet} ip daddr ${subnet}${gw} notrack`);
  }
  lines.push("  }");
  return lines;
}

function renderFilterChains(networks: FirewallNetwork[]): string[] {
  const lines = ["  chain forward {", "    type filter hook forward priority filter; policy accept;"];
  for (const net of networks) {
    if (!net.internal) continue;
    const br = q(net.bridgeName);
    lines.push(`    iifname ${br} oifname != ${br} drop`, `    oifname ${br} iifname != ${br} drop`);
  }
  for (const net of networks) {
    // Traffic inside one network: with br_netfilter loaded, bridged frames pass this hook too.
    // (ICC off is enforced below the firewall, by isolated bridge ports.)
    const br = q(net.bridgeName);
    lines.push(`    iifname ${br} oifname ${br} accept`);
  }
  lines.push(
    // A VIP serves its own network only (its flows stay inside one bridge, accepted above): a
    // container elsewhere that routes to it through the host gets nothing, as with any other address.
    `    ct original ip daddr @${SERVICE_VIPS_SET} drop`,
    "    ct state established,related accept",
    // Published ports are reachable from anywhere, other trellis networks included.
    "    ct status dnat accept",
    // Nothing else enters a network from outside it: not other networks, not other hosts.
    "    oifname @bridges drop",
    "    iifname @bridges accept",
    "  }",
  );
  return lines;
}

function renderSet(name: string, type: string, elements: readonly string[]): string[] {
  return [
    `  set ${name} {`,
    `    type ${type}`,
    ...(elements.length > 0 ? [`    elements = { ${elements.join(", ")} }`] : []),
    "  }",
  ];
}

/** The whole table, replacing whatever trellis had before in one atomic transaction. */
export function renderFirewall(state: FirewallState): string {
  const bridges = state.networks.map((n) => q(n.bridgeName));
  const lines = [
    `table ${TABLE} {}`,
    `delete table ${TABLE}`,
    `table ${TABLE} {`,
    ...renderSet("bridges", "ifname", bridges),
    ...renderSet(SERVICE_VIPS_SET, "ipv4_addr", [...new Set(state.serviceVips)].sort()),
    ...renderMaps(state.ports),
    ...renderRawChain(state.networks),
    ...renderNatChains(state.networks),
    ...renderFilterChains(state.networks),
    "}",
  ];
  return `${lines.join("\n")}\n`;
}

/** Element-level change for one endpoint's published ports: the connect/disconnect fast path. */
export function renderPortChanges(change: { add?: PublishedPort[]; remove?: PublishedPort[] }): string {
  const lines: string[] = [];
  for (const p of change.remove ?? []) lines.push(`delete element ${TABLE} ${mapName(p)} { ${keyOf(p)} }`);
  for (const p of change.add ?? []) lines.push(`add element ${TABLE} ${mapName(p)} { ${elementOf(p)} }`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

/** Element-level change of the service VIP set (deletions first); empty when nothing changes. */
export function renderServiceVipChanges(change: {
  add?: readonly string[];
  remove?: readonly string[];
}): string {
  const lines: string[] = [];
  if (change.remove?.length)
    lines.push(`delete element ${TABLE} ${SERVICE_VIPS_SET} { ${change.remove.join(", ")} }`);
  if (change.add?.length) lines.push(`add element ${TABLE} ${SERVICE_VIPS_SET} { ${change.add.join(", ")} }`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}
