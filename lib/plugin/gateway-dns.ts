/**
 * trellis DNS on each network's gateway address, in the daemon's own namespace, for containers of a
 * Docker engine. Inside those, 127.0.0.11 is the engine's resolver: it answers the names of the
 * engine's own containers and forwards every other query to the container's DNS servers, from
 * inside the container. With `docker run --dns <gateway>` those queries reach trellis here, which
 * answers with the names of the asker's networks as trellis knows them: containers of other
 * engines on an overlay, and namespaces attached with `trellis network connect`. Anything else is
 * forwarded upstream as usual.
 *
 * The asker is identified by its source address on the network, which scopes the answer like the
 * embedded DNS does (its networks' names only). Queries from any other address get no answer:
 * the gateway must not become an open resolver for whatever can route to it.
 */
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:net";
import type { Logger } from "pino";
import { messageOf } from "../common/errors.js";
import type { Transport } from "../dns/chain.js";
import { FrameReader, frame } from "../dns/frames.js";
import type { Answerer } from "../dns/listeners.js";
import type { DnsRecords } from "../dns/records.js";
import { tryParseAddress } from "../ipam/cidr.js";
import type { NetworkRecord, PoolRecord } from "../store/records.js";

export interface GatewayDnsDeps {
  store: { listNetworks(): NetworkRecord[]; getPool(id: string): PoolRecord | undefined };
  records: DnsRecords;
  answer: Answerer;
  log: Logger;
  /** default 53 */
  port?: number;
}

interface GatewayServer {
  address: string;
  udp: Socket;
  tcp: Server;
}

const TCP_IDLE_MS = 10_000;
/**
 * A gateway address may not be on its bridge yet when the network is announced (an overlay is
 * recorded before it is programmed): a failed bind is retried this often.
 */
const RETRY_MS = 500;

export class GatewayDns {
  private readonly servers = new Map<string, GatewayServer>();
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  /** gateways that failed to bind, so each failure is logged once */
  private readonly failing = new Set<string>();

  constructor(private readonly deps: GatewayDnsDeps) {}

  /** Listens on the gateway of every network that has one, and only those; serialised. */
  sync(): Promise<void> {
    const next = this.running.then(() => this.syncNow());
    this.running = next.catch(() => undefined);
    return next;
  }

  private async syncNow(): Promise<void> {
    if (this.stopped) return;
    const wanted = new Map<string, string>();
    for (const net of this.deps.store.listNetworks()) {
      const gateway = net.poolIds
        .map((id) => this.deps.store.getPool(id))
        .find((p) => p?.family === 4 && p.gateway !== undefined)?.gateway;
      if (gateway) wanted.set(net.id, gateway);
    }
    for (const [id, server] of this.servers) {
      if (wanted.get(id) !== server.address) this.close(id);
    }
    let failed = false;
    for (const [id, address] of wanted) {
      if (this.servers.has(id)) continue;
      const key = `${id}/${address}`;
      try {
        this.servers.set(id, await this.open(id, address));
        this.failing.delete(key);
        this.deps.log.debug({ networkId: id, address }, "docker: DNS on the gateway");
      } catch (err) {
        failed = true;
        if (!this.failing.has(key)) {
          this.failing.add(key);
          this.deps.log.warn(
            { networkId: id, address, err: messageOf(err) },
            "docker: no DNS on the gateway yet",
          );
        }
      }
    }
    if (failed && !this.retry && !this.stopped) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        void this.sync();
      }, RETRY_MS);
      this.retry.unref();
    }
  }

  /** The container that sent from `ip` on the network, as the records know it ("" if none). */
  private askerOf(networkId: string, ip: string): string {
    const parsed = tryParseAddress(ip.replace(/^::ffff:/, ""));
    return (parsed && this.deps.records.byAddress([networkId], parsed)[0]?.containerId) ?? "";
  }

  private async open(networkId: string, address: string): Promise<GatewayServer> {
    const port = this.deps.port ?? 53;
    const udp = createSocket({ type: "udp4" });
    udp.on("message", (msg, rinfo) => {
      const asker = this.askerOf(networkId, rinfo.address);
      if (asker === "") return; // not an endpoint of the network: trellis is nobody else's resolver
      const out = this.deps.answer(asker, msg, "udp");
      void Promise.resolve(out).then((o) => o && udp.send(o, rinfo.port, rinfo.address), swallow);
    });
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind({ address, port, exclusive: true }, () => {
        udp.off("error", reject);
        udp.on("error", (err) => this.deps.log.debug({ networkId, err: messageOf(err) }, "gateway DNS UDP"));
        resolve();
      });
    }).catch((err) => {
      udp.close();
      throw err;
    });
    const tcp = createServer((conn) => {
      const reader = new FrameReader();
      conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
      conn.on("error", swallow);
      const asker = this.askerOf(networkId, conn.remoteAddress ?? "");
      if (asker === "") return void conn.destroy();
      conn.on("data", (chunk: Buffer) => {
        for (const msg of reader.push(chunk)) {
          const out = this.deps.answer(asker, msg, "tcp" satisfies Transport);
          void Promise.resolve(out).then((o) => o && !conn.destroyed && conn.write(frame(o)), swallow);
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen({ host: address, port, exclusive: true }, () => {
        tcp.off("error", reject);
        resolve();
      });
    }).catch((err) => {
      udp.close();
      throw err;
    });
    return { address, udp, tcp };
  }

  private close(networkId: string): void {
    const s = this.servers.get(networkId);
    if (!s) return;
    this.servers.delete(networkId);
    s.udp.close();
    s.tcp.close();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    for (const id of [...this.servers.keys()]) this.close(id);
  }
}

function swallow(): void {}
