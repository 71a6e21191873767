/**
 * createKernel(): the daemon's single entry point to the kernel. Netlink sockets are expensive to
 * create inside another namespace (setns twice) and cheap to keep, so there is one per namespace,
 * cached by the namespace's identity (dev:ino) until the endpoint is released.
 */
import { statSync } from "node:fs";
import { KernelError, notFound } from "../common/errors.js";
import { iptables } from "./iptables.js";
import { loadNative, type NativeAddon } from "./native.js";
import { RtNetlink } from "./netlink/rtnetlink.js";
import { NetlinkSocket } from "./netlink/socket.js";
import { netnsAlive, resolveNetns } from "./netns.js";
import { nftApply, nftListTable } from "./nft.js";
import { createNftSession } from "./nft-session.js";
import { setSysctl } from "./sysctl.js";
import type { Kernel, Netlink, NetnsRef, NftOptions, NftSession } from "./types.js";

export type { NativeAddon } from "./native.js";
export { nftVersion } from "./nft.js";
export { createNftSession, type NftSessionOptions } from "./nft-session.js";
export { getSysctl } from "./sysctl.js";
export type * from "./types.js";

const nsKey = (ns: NetnsRef): string => `${ns.dev}:${ns.ino}`;

class LinuxKernel implements Kernel {
  private hostNl: RtNetlink | undefined;
  private readonly namespaces = new Map<string, RtNetlink>();
  private closed = false;

  constructor(private readonly native: NativeAddon) {}

  host(): Netlink {
    this.assertOpen();
    this.hostNl ??= this.open(null);
    return this.hostNl;
  }

  inNetns(ns: NetnsRef): Netlink {
    return this.netlinkIn(ns);
  }

  releaseNetns(ns: NetnsRef): void {
    const key = nsKey(ns);
    this.namespaces.get(key)?.close();
    this.namespaces.delete(key);
  }

  resolveNetns(ref: string): Promise<NetnsRef> {
    return resolveNetns(this.native, ref);
  }

  netnsAlive(ns: NetnsRef): Promise<boolean> {
    return netnsAlive(ns);
  }

  nftApply(script: string, opts?: NftOptions): Promise<void> {
    return nftApply(script, opts);
  }

  nftSession(opts?: NftOptions): NftSession {
    this.assertOpen();
    return createNftSession(opts);
  }

  nftListTable(family: string, name: string, opts?: NftOptions): Promise<unknown> {
    return nftListTable(family, name, opts);
  }

  listenInNetns(ns: NetnsRef, proto: "udp" | "tcp", address: string, port: number): number {
    this.assertOpen();
    this.assertSameNetns(ns);
    try {
      return this.native.listenInNetns(ns.path, proto, address, port);
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      throw new KernelError(`${proto} ${address}:${port} in ${ns.path}: ${(err as Error).message}`, errno, {
        cause: err,
      });
    }
  }

  setSysctl(key: string, value: string): Promise<void> {
    return setSysctl(key, value);
  }

  iptables(family: 4 | 6, args: string[]) {
    return iptables(family, args);
  }

  close(): void {
    this.closed = true;
    this.hostNl?.close();
    this.hostNl = undefined;
    for (const nl of this.namespaces.values()) nl.close();
    this.namespaces.clear();
  }

  /** The cached Netlink of a namespace; also used by createVeth to alias a veth's far end. */
  private netlinkIn(ns: NetnsRef): RtNetlink {
    this.assertOpen();
    const key = nsKey(ns);
    const cached = this.namespaces.get(key);
    if (cached) return cached;
    this.assertSameNetns(ns);
    const nl = this.open(ns.path);
    this.namespaces.set(key, nl);
    return nl;
  }

  /** The path may by now name a different namespace (a reused `ip netns` name or PID): a socket
   * opened there would silently act on the wrong container. */
  private assertSameNetns(ns: NetnsRef): void {
    let st: { dev: number; ino: number };
    try {
      st = statSync(ns.path);
    } catch {
      throw notFound(`network namespace ${ns.path} is gone`);
    }
    if (st.dev !== ns.dev || st.ino !== ns.ino) throw notFound(`network namespace ${ns.path} was replaced`);
  }

  private open(path: string | null): RtNetlink {
    return new RtNetlink(NetlinkSocket.open(this.native, path), (peer) => this.netlinkIn(peer));
  }

  private assertOpen(): void {
    if (this.closed) throw new KernelError("kernel adapter is closed");
  }
}

/** The kernel adapter; `native` is injectable for tests (default: the compiled addon). */
export function createKernel(native: NativeAddon = loadNative()): Kernel {
  return new LinuxKernel(native);
}
