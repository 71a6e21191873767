/**
 * The daemon's membership of the trellis cluster: one GossipNode per host, named once and kept in
 * the state dir, optionally keyed. Everything overlay-related (networks, endpoints, address blocks)
 * travels in its replicated table.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { invalid, messageOf } from "../common/errors.js";
import type { SqliteStore } from "../store/sqlite-store.js";
import type { ClusterConfig } from "./cluster-config.js";
import { parseSeed } from "./cluster-config.js";
import {
  GossipNode,
  type GossipTunables,
  Keyring,
  lanProfile,
  type Member,
  type MemberState,
  testProfile,
  UdpTcpTransport,
} from "./gossip/index.js";
import { KeyRotation } from "./key-rotation.js";

const NODE_NAME_KEY = "node-name";

export class Cluster {
  /** `trellis cluster rotate-key` */
  rotation: KeyRotation | undefined;

  private constructor(
    readonly node: GossipNode,
    readonly self: string,
    readonly advertiseAddr: string,
    private readonly config: ClusterConfig,
    private readonly log: Logger,
  ) {}

  /** Starts gossip when an advertise address is configured; undefined otherwise (no overlay). */
  static async start(config: ClusterConfig, store: SqliteStore, log: Logger): Promise<Cluster | undefined> {
    if (!config.advertiseAddr) return undefined;
    const self = config.nodeName ?? nodeName(store);
    const keyring = config.gossipKeyFile ? loadKeyring(config.gossipKeyFile) : undefined;
    const profile: Partial<GossipTunables> =
      config.gossipProfile === "test" ? testProfile() : config.gossipProfile === "lan" ? lanProfile() : {};
    const node = new GossipNode(
      {
        ...profile,
        name: self,
        advertiseAddr: config.advertiseAddr,
        bindAddr: config.bindAddr ?? config.advertiseAddr,
        port: config.gossipPort,
        ...(keyring ? { keyring } : {}),
      },
      new UdpTcpTransport(),
      log.child({ component: "gossip" }),
    );
    await node.start();
    const cluster = new Cluster(node, self, config.advertiseAddr, config, log);
    cluster.rotation = new KeyRotation(cluster, config.gossipKeyFile, log.child({ component: "keyring" }));
    cluster.rotation.start();
    if (config.join.length > 0) {
      // Seeds may not be up yet (a cluster started all at once): failure here is not fatal, the
      // node keeps retrying its seeds on the push-pull timer.
      await cluster
        .join(config.join)
        .catch((err) => log.warn({ err: messageOf(err) }, "initial cluster join failed"));
    }
    return cluster;
  }

  async join(seeds: string[]): Promise<number> {
    const targets = seeds.map((s) => parseSeed(s, this.config.gossipPort));
    const reached = await this.node.join(targets);
    this.log.info({ seeds: targets, reached }, "joined cluster");
    return reached;
  }

  members(): Member[] {
    return this.node.members();
  }

  /** State of a member as this node sees it; our own is always alive. */
  stateOf(name: string): MemberState | undefined {
    if (name === this.self) return "alive";
    return this.node.members().find((m) => m.name === name)?.state;
  }

  async leave(): Promise<void> {
    await this.node.leave(1000);
  }

  async stop(): Promise<void> {
    await this.node.stop();
  }
}

function nodeName(store: SqliteStore): string {
  const existing = store.getMeta(NODE_NAME_KEY);
  if (existing) return existing;
  const name = `${hostname()
    .replace(/[^A-Za-z0-9_.-]/g, "-")
    .slice(0, 40)}-${randomBytes(3).toString("hex")}`;
  store.setMeta(NODE_NAME_KEY, name);
  return name;
}

function loadKeyring(file: string): Keyring {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw invalid(`cannot read --gossip-key ${file}: ${messageOf(err)}`);
  }
  return new Keyring([Keyring.parseKey(text)]);
}
