/**
 * strerror(3) texts, so kernel errors read the way `ip` prints them ("File exists"). Node only
 * offers libuv's lower-case wording, used as the fallback for errnos not listed here.
 */
import { constants } from "node:os";
import { getSystemErrorMap } from "node:util";

const GLIBC_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  12: "Cannot allocate memory",
  13: "Permission denied",
  16: "Device or resource busy",
  17: "File exists",
  19: "No such device",
  22: "Invalid argument",
  28: "No space left on device",
  34: "Numerical result out of range",
  36: "File name too long",
  90: "Message too long",
  95: "Operation not supported",
  97: "Address family not supported by protocol",
  99: "Cannot assign requested address",
  101: "Network is unreachable",
  105: "No buffer space available",
  11: "Resource temporarily unavailable",
};

export function errnoText(errno: number): string {
  const known = GLIBC_TEXT[errno];
  if (known) return known;
  // getSystemErrorMap is keyed by negative errno.
  const uv = getSystemErrorMap().get(-errno);
  if (uv) return uv[1].charAt(0).toUpperCase() + uv[1].slice(1);
  return `errno ${errno}`;
}

/** Positive errno for a Node system error ({ code: "EEXIST" }), if it has one. */
export function errnoOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { errno?: unknown; code?: unknown };
  if (typeof e.code === "string" && e.code in constants.errno) {
    return constants.errno[e.code as keyof typeof constants.errno];
  }
  if (typeof e.errno === "number") return Math.abs(e.errno);
  return undefined;
}
