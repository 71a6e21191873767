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
};

export function findGroup(name: string): GroupEntry | undefined {
  return Object.hasOwn(GROUPS, name) ? GROUPS[name] : undefined;
}

export function findVerb(group: GroupEntry, name: string): VerbEntry | undefined {
  if (Object.hasOwn(group.verbs, name)) return group.verbs[name];
  return Object.values(group.verbs).find((v) => v.aliases?.includes(name));
}
