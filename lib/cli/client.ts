/**
 * HTTP+JSON over trellisd's unix socket. One keep-alive agent per client so a command that makes
 * several requests (inspect a b c, rm a b c) reuses one connection; `close()` drops it so the
 * process can exit at once.
 */
import http from "node:http";
import { ApiError, BadResponseError, DaemonUnreachableError } from "./errors.js";

export interface ApiResponse {
  status: number;
  /** parsed JSON body; undefined for an empty body (204) */
  body: unknown;
}

const REASONS: Record<string, string> = {
  ENOENT: "no socket at that path (is trellisd running?)",
  ECONNREFUSED: "connection refused (is trellisd running?)",
  EACCES: "permission denied (the socket is mode 0660: run as root or as a member of its group)",
  ENOTSOCK: "not a socket",
  ENOTDIR: "a path component is not a directory",
  ECONNRESET: "connection reset by trellisd",
};

function reasonOf(err: NodeJS.ErrnoException): string {
  const code = err.code ?? "";
  return REASONS[code] !== undefined ? `${REASONS[code]} [${code}]` : err.message;
}

function parseBody(text: string): unknown {
  return text.trim() === "" ? undefined : JSON.parse(text);
}

/** The daemon's `{"message"}`, or something readable when the body is not the API's error shape. */
function apiErrorOf(res: http.IncomingMessage, text: string): ApiError {
  const status = res.statusCode ?? 0;
  try {
    const body = parseBody(text) as { message?: unknown } | undefined;
    if (typeof body?.message === "string" && body.message !== "") return new ApiError(status, body.message);
  } catch {
    // not JSON: fall through to the raw text
  }
  const detail = text.trim().split("\n")[0]?.slice(0, 200) ?? "";
  return new ApiError(status, `${status} ${res.statusMessage ?? ""}`.trim() + (detail ? `: ${detail}` : ""));
}

export class ApiClient {
  readonly #agent = new http.Agent({ keepAlive: true });

  constructor(readonly socketPath: string) {}

  /** Resolves for 2xx; rejects with ApiError (>= 400), DaemonUnreachableError or BadResponseError. */
  request(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = { Accept: "application/json" };
    if (payload) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = payload.length;
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socketPath, path, method, headers, agent: this.#agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", (err) =>
            reject(new DaemonUnreachableError(this.socketPath, reasonOf(err), { cause: err })),
          );
          res.on("end", () => {
            try {
              resolve(this.#settle(res, Buffer.concat(chunks).toString("utf8")));
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.on("error", (err) =>
        reject(new DaemonUnreachableError(this.socketPath, reasonOf(err), { cause: err })),
      );
      req.end(payload);
    });
  }

  #settle(res: http.IncomingMessage, text: string): ApiResponse {
    const status = res.statusCode ?? 0;
    if (status >= 400) throw apiErrorOf(res, text);
    if (status < 200 || status >= 300) throw new BadResponseError(`status ${status}`);
    try {
      return { status, body: parseBody(text) };
    } catch {
      throw new BadResponseError(`${status} reply is not JSON: ${text.slice(0, 100)}`);
    }
  }

  get(path: string): Promise<ApiResponse> {
    return this.request("GET", path);
  }

  post(path: string, body?: unknown): Promise<ApiResponse> {
    return this.request("POST", path, body);
  }

  delete(path: string): Promise<ApiResponse> {
    return this.request("DELETE", path);
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** `/networks/{nameOrId}` with the segment escaped, so names cannot smuggle `/` or `?`. */
export function networkPath(nameOrId: string, suffix = ""): string {
  return `/networks/${encodeURIComponent(nameOrId)}${suffix}`;
}
