/** A small HTTP server on a unix socket: routing, JSON bodies, Docker-style `{"message"}` errors. */
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { httpStatusOf, invalid, messageOf, notFound, TrellisError } from "../common/errors.js";

const MAX_BODY = 1 << 20;

export interface Request {
  method: string;
  /** path with any /v1.NN prefix removed */
  path: string;
  query: URLSearchParams;
  /** parsed JSON body; undefined when empty */
  body: unknown;
}

export interface Reply {
  status: number;
  /** JSON-encoded unless it is a string (sent as text/plain) */
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (req: Request, params: string[]) => Promise<Reply> | Reply;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: RegExp, handler: Handler): this {
    this.routes.push({ method, pattern, handler });
    return this;
  }

  async dispatch(req: Request): Promise<Reply> {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(req.path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method && !(route.method === "GET" && req.method === "HEAD")) continue;
      let params: string[];
      try {
        params = m.slice(1).map(decodeURIComponent);
      } catch {
        throw invalid(`malformed path ${req.path}`);
      }
      return route.handler(req, params);
    }
    if (pathMatched)
      return { status: 405, body: { message: `method ${req.method} not allowed on ${req.path}` } };
    throw notFound("page not found");
  }
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(invalid(`request body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8").trim();
      if (text === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(invalid(`invalid JSON body: ${messageOf(err)}`));
      }
    });
  });
}

function send(res: ServerResponse, reply: Reply, head: boolean) {
  const headers: Record<string, string> = { ...reply.headers };
  let payload = "";
  if (reply.body !== undefined && reply.status !== 204) {
    if (typeof reply.body === "string") {
      headers["Content-Type"] ??= "text/plain; charset=utf-8";
      payload = reply.body;
    } else {
      headers["Content-Type"] ??= "application/json";
      payload = `${JSON.stringify(reply.body)}\n`;
    }
  }
  headers["Content-Length"] = String(Buffer.byteLength(payload));
  res.writeHead(reply.status, headers);
  res.end(head ? undefined : payload);
}

export interface ServeOptions {
  socketPath: string;
  router: Router;
  log: Logger;
  /** headers added to every reply (e.g. Api-Version) */
  commonHeaders?: Record<string, string>;
  /** strip a /v1.NN prefix */
  versionedPaths?: boolean;
  /** socket file mode */
  mode?: number;
  /** how an error becomes a reply; default `{"message"}` with the error's status */
  errorReply?: (err: unknown) => Reply;
}

const defaultErrorReply = (err: unknown): Reply => ({
  status: httpStatusOf(err),
  body: { message: messageOf(err) },
});

export function serve(opts: ServeOptions): Promise<Server> {
  const errorReply = opts.errorReply ?? defaultErrorReply;
  const server = createServer(async (req, res) => {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? "/", "http://trellis");
    let path = url.pathname;
    if (opts.versionedPaths) path = path.replace(/^\/v\d+\.\d+(?=\/)/, "");
    let reply: Reply;
    try {
      const body = await readBody(req);
      reply = await opts.router.dispatch({
        method: req.method ?? "GET",
        path,
        query: url.searchParams,
        body,
      });
    } catch (err) {
      if (!(err instanceof TrellisError)) opts.log.error({ err, path }, "request failed");
      reply = errorReply(err);
    }
    reply.headers = { ...opts.commonHeaders, ...reply.headers };
    send(res, reply, req.method === "HEAD");
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    opts.log.debug({ method: req.method, path, status: reply.status, ms }, "request");
  });
  server.keepAliveTimeout = 30_000;
  mkdirSync(dirname(opts.socketPath), { recursive: true, mode: 0o755 });
  if (existsSync(opts.socketPath) && lstatSync(opts.socketPath).isSocket()) unlinkSync(opts.socketPath);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.socketPath, () => {
      chmodSync(opts.socketPath, opts.mode ?? 0o660);
      server.off("error", reject);
      resolve(server);
    });
  });
}
