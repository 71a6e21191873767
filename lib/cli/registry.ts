/**
 * Command groups and their verbs. Summaries live here so `trellis network --help` needs no
 * command module; each module is imported only when its verb runs or shows its help, which keeps
 * start-up to the parser and this table.
 *
 * Adding a group (dns, node, cluster, service): one entry here and one module per verb under
 * commands/.
 */
import type { Command } from "./command.js";

export interface VerbEntry {
  summary: string;
  aliases?: readonly string[];
  load(): Promise<Command>;
}

export interface GroupEntry {
  summary: string;
  verbs: Readonly<Record<string, VerbEntry>>;
}

export const GROUPS: Readonly<Record<string, GroupEntry>> = {
  cluster: {
    summary: "Manage this node's cluster membership (overlay networks)",
    verbs: {
      join: {
        summary: "Join the cluster through one or more members",
        load: async () => (await import("./commands/cluster-join.js")).default,
      },
      leave: {
        summary: "Leave the cluster gracefully",
        load: async () => (await import("./commands/cluster-leave.js")).default,
      },
      "rotate-key": {
        summary: "Replace the gossip key on every member, without a restart",
        load: async () => (await import("./commands/cluster-rotate-key.js")).default,
      },
    },
  },
  debug: {
    summary: "Inspect trellis internals",
    verbs: {
      overlay: {
        summary: "VXLAN FDB/neighbour entries of an overlay network and their source",
        load: async () => (await import("./commands/debug-overlay.js")).default,
      },
    },
  },
  node: {
    summary: "Cluster members",
    verbs: {
      ls: {
        summary: "List the cluster's members",
        aliases: ["list"],
        load: async () => (await import("./commands/node-ls.js")).default,
      },
    },
  },
  dns: {
    summary: "Query the embedded DNS",
    verbs: {
      lookup: {
        summary: "Show what a container's DNS query for a name would get",
        load: async () => (await import("./commands/dns-lookup.js")).default as Command,
      },
    },
  },
  network: {
    summary: "Manage networks",
    verbs: {
      connect: {
        summary: "Connect a container to a network",
        load: async () => (await import("./commands/network-connect.js")).default,
      },
      create: {
        summary: "Create a network",
        load: async () => (await import("./commands/network-create.js")).default,
      },
      disconnect: {
        summary: "Disconnect a container from a network",
        load: async () => (await import("./commands/network-disconnect.js")).default,
      },
      inspect: {
        summary: "Display detailed information on one or more networks",
        load: async () => (await import("./commands/network-inspect.js")).default,
      },
      ls: {
        summary: "List networks",
        aliases: ["list"],
        load: async () => (await import("./commands/network-ls.js")).default,
      },
      prune: {
        summary: "Remove all unused networks",
        load: async () => (await import("./commands/network-prune.js")).default,
      },
      rm: {
        summary: "Remove one or more networks",
        aliases: ["remove"],
        load: async () => (await import("./commands/network-rm.js")).default,
      },
    },
  },
  service: {
    summary: "Manage services: VIP load balancing and published ports",
    verbs: {
      "add-backend": {
        summary: "Add containers to a service's backends",
        load: async () => (await import("./commands/service-add-backend.js")).default,
      },
      create: {
        summary: "Create a service",
        load: async () => (await import("./commands/service-create.js")).default,
      },
      inspect: {
        summary: "Display detailed information on one or more services",
        load: async () => (await import("./commands/service-inspect.js")).default,
      },
      ls: {
        summary: "List services",
        aliases: ["list"],
        load: async () => (await import("./commands/service-ls.js")).default,
      },
      "remove-backend": {
        summary: "Remove containers from a service's backends",
        load: async () => (await import("./commands/service-remove-backend.js")).default,
      },
      rm: {
        summary: "Remove one or more services",
        aliases: ["remove"],
        load: async () => (await import("./commands/service-rm.js")).default,
      },
    },
  },
};

export function findGroup(name: string): GroupEntry | undefined {
  return Object.hasOwn(GROUPS, name) ? GROUPS[name] : undefined;
}

export function findVerb(group: GroupEntry, name: string): VerbEntry | undefined {
  if (Object.hasOwn(group.verbs, name)) return group.verbs[name];
  return Object.values(group.verbs).find((v) => v.aliases?.includes(name));
}
