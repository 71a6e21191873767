/**
 * A fake trellisd for CLI tests: an HTTP server on a temp unix socket that records every request
 * and answers from a route function, plus a runner that calls the CLI's main() in-process with
 * captured output.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { main } from "../../lib/cli/main.js";

export interface Recorded {
  method: string;
  url: string;
  body: unknown;
}

export interface Reply {
  status: number;
  body?: unknown;
}

export type Route = (req: Recorded) => Reply | undefined;

export interface FakeDaemon {
  socket: string;
  requests: Recorded[];
  close(): Promise<void>;
}

export function tempSocketPath(): string {
  return path.join(os.tmpdir(), `trellis-cli-${process.pid}-${randomBytes(4).toString("hex")}.sock`);
}

/** Answers from `route`; anything it does not handle is a 404 in the daemon's error shape. */
export async function fakeDaemon(route: Route): Promise<FakeDaemon> {
  const socket = tempSocketPath();
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const recorded = {
        method: req.method ?? "",
        url: req.url ?? "",
        body: text ? JSON.parse(text) : undefined,
      };
      requests.push(recorded);
      const reply = route(recorded) ?? {
        status: 404,
        body: { message: `no route for ${req.method} ${req.url}` },
      };
      res.writeHead(reply.status, { "Content-Type": "application/json" });
      res.end(reply.body === undefined ? "" : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    socket,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(
  argv: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: options.env ?? {},
    ...(options.stdin === undefined ? {} : { stdin: Readable.from([options.stdin]) }),
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}
