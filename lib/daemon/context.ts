/** The daemon's collaborators, handed to every manager in one object (no module-level state). */
import type { Logger } from "pino";
import type { Ipam } from "../ipam/ipam.js";
import type { Kernel } from "../kernel/types.js";
import type { SqliteStore } from "../store/sqlite-store.js";
import type { DaemonEvents } from "./events.js";
import type { FirewallManager } from "./firewall.js";
import type { LinkProgrammer } from "./links.js";

export interface DaemonContext {
  store: SqliteStore;
  ipam: Ipam;
  kernel: Kernel;
  links: LinkProgrammer;
  firewall: FirewallManager;
  log: Logger;
  events: DaemonEvents;
}
