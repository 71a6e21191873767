/**
 * Loads the native addon (native/trellis_native.c). Nothing happens at import time: createKernel
 * loads it, so unit tests of pure code never need the compiled addon.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KernelError } from "../common/errors.js";

export interface NativeAddon {
  /** A socket created inside the netns at `path` (null: the process's own namespace). */
  socketInNetns(path: string | null, domain: number, type: number, protocol: number): number;
  /** One netlink request; resolves with every reply datagram up to the final DONE/ERROR. */
  netlinkTransact(fd: number, request: Buffer): Promise<Buffer>;
  /** A UDP, or listening TCP, socket bound to ip:port inside the netns at `path`; returns its fd. */
  listenInNetns(path: string, proto: "udp" | "tcp", ip: string, port: number): number;
  closeFd(fd: number): void;
}

const ADDON = join("build", "Release", "trellis_native.node");

/** The package root: the nearest directory above this file with a package.json. Compiled code
 * lives in dist/lib/kernel and sources in lib/kernel, so a fixed "../.." would be wrong for one. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new KernelError("trellis package root not found (no package.json above)");
    dir = parent;
  }
}

/** Loads the addon; call once and pass the handle on (require caches it anyway). */
export function loadNative(): NativeAddon {
  const path = join(packageRoot(), ADDON);
  try {
    return createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new KernelError(`cannot load the native addon ${path} (run npm install to build it)`, undefined, {
      cause: err,
    });
  }
}
