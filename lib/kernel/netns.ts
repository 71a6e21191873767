/**
 * Network namespace references: resolve what a user or Docker gives us (an `ip netns` name, a
 * path to a namespace file, `pid:PID`) into a NetnsRef pinned by device and inode.
 */
import { stat } from "node:fs/promises";
import { invalid, notFound } from "../common/errors.js";
import { errnoOf } from "./errno.js";
import type { NativeAddon } from "./native.js";
import { AF_NETLINK, NETLINK_ROUTE, SOCK_RAW } from "./netlink/constants.js";
import type { NetnsRef } from "./types.js";

/** Where `ip netns add NAME` pins namespaces. */
export const NETNS_RUN_DIR = "/run/netns";

/** Maps a reference to the path of its namespace file, without touching the filesystem. */
export function netnsPathOf(ref: string): string {
  if (ref.startsWith("pid:")) {
    const pid = ref.slice(4);
    if (!/^[1-9]\d{0,9}$/.test(pid)) throw invalid(`invalid network namespace reference: ${ref}`);
    return `/proc/${pid}/ns/net`;
  }
  if (ref.startsWith("/")) return ref;
  if (ref === "" || ref === "." || ref === ".." || ref.includes("/") || ref.includes("\0")) {
    throw invalid(`invalid network namespace name: ${JSON.stringify(ref)}`);
  }
  return `${NETNS_RUN_DIR}/${ref}`;
}

/**
 * Resolves and verifies a reference. Namespace files all live on the nsfs pseudo filesystem
 * (one device number), which rules out ordinary files such as a stale, unmounted /run/netns
 * entry; entering the namespace to open a socket then proves it is a *network* namespace.
 */
export async function resolveNetns(native: NativeAddon, ref: string): Promise<NetnsRef> {
  const path = netnsPathOf(ref);
  const [st, nsfs] = await Promise.all([statOrUndefined(path), stat("/proc/self/ns/net")]);
  if (!st) throw notFound(`no such network namespace: ${ref}`);
  if (st.dev !== nsfs.dev) throw invalid(`not a network namespace: ${ref}`);
  try {
    native.closeFd(native.socketInNetns(path, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
  } catch {
    throw invalid(`not a network namespace: ${ref}`);
  }
  return { path, dev: st.dev, ino: st.ino };
}

/** True while the path still names the very same namespace. */
export async function netnsAlive(ns: NetnsRef): Promise<boolean> {
  const st = await statOrUndefined(ns.path);
  return st !== undefined && st.dev === ns.dev && st.ino === ns.ino;
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    const errno = errnoOf(err);
    // ENOENT: no such name; ESRCH / ENOTDIR: /proc/PID of a process that is gone.
    if (errno === 2 || errno === 3 || errno === 20) return undefined;
    throw notFound(`cannot stat network namespace ${path}: ${String(err)}`);
  }
}
