/**
 * sysctls of the daemon's own namespace, written through /proc/sys. The key uses slashes
 * ("net/ipv4/ip_forward") because interface names in keys may contain dots.
 */
import { readFile, writeFile } from "node:fs/promises";
import { invalid, KernelError } from "../common/errors.js";
import { errnoOf, errnoText } from "./errno.js";

export const PROC_SYS = "/proc/sys";

function sysctlPath(key: string): string {
  const parts = key.split("/");
  if (parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\0"))) {
    throw invalid(`invalid sysctl key: ${key}`);
  }
  return `${PROC_SYS}/${key}`;
}

export async function setSysctl(key: string, value: string): Promise<void> {
  const path = sysctlPath(key);
  try {
    await writeFile(path, value);
  } catch (err) {
    throw fsError(`set sysctl ${key}=${value}`, err);
  }
}

export async function getSysctl(key: string): Promise<string> {
  const path = sysctlPath(key);
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (err) {
    throw fsError(`read sysctl ${key}`, err);
  }
}

function fsError(what: string, err: unknown): KernelError {
  const errno = errnoOf(err);
  const reason = errno === undefined ? String(err) : errnoText(errno);
  return new KernelError(`${what}: ${reason}`, errno, { cause: err });
}
