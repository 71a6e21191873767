/**
 * A small HTTP/1.1 client over a unix socket that keeps its connections alive, so a timed request
 * measures the request and its reply, not a connect(). Used for trellisd and dockerd alike.
 */
import { Agent, request } from "node:http";
import { msSince } from "./stats.js";

export interface TimedReply {
  status: number;
  /** The reply body as text ("" when empty). */
  body: string;
  /** From just before the request is written until the last byte of the reply, in ms. */
  ms: number;
  /** True when the request went over a connection an earlier request had opened. */
  reused: boolean;
}

const REQUEST_TIMEOUT_MS = 60_000;

export class UnixHttpClient {
  private readonly agent: Agent;

  /** `maxSockets`: how many connections may be open (and kept alive) at once; 1 = one shared connection. */
  constructor(
    readonly socketPath: string,
    maxSockets = 1,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  /** One request; the JSON body is serialised before the clock starts. Never throws on a status. */
  send(method: string, path: string, body?: unknown): Promise<TimedReply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = { Host: "localhost" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = Buffer.byteLength(payload);
    }
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = request(
        { socketPath: this.socketPath, agent: this.agent, method, path, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const ms = msSince(started);
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString("utf8"),
              ms,
              reused: req.reusedSocket,
            });
          });
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () =>
        req.destroy(new Error(`${method} ${path}: no reply within ${REQUEST_TIMEOUT_MS} ms`)),
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Like send(), but a status outside 2xx is an error carrying the reply body. */
  async ok(method: string, path: string, body?: unknown): Promise<TimedReply> {
    const reply = await this.send(method, path, body);
    if (reply.status < 200 || reply.status > 299) {
      throw new Error(`${method} ${path} on ${this.socketPath}: ${reply.status} ${reply.body.trim()}`);
    }
    return reply;
  }

  close(): void {
    this.agent.destroy();
  }
}
