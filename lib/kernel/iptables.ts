/**
 * iptables, for one purpose only: a Docker engine on the same host sets the filter FORWARD policy to
 * DROP, and a packet must be accepted by every base chain on a hook, so trellis's own nftables
 * accept is not enough. Docker's documented place for other software's exceptions is the
 * DOCKER-USER chain; this runs `iptables` (whichever backend the host uses) to manage them there.
 */
import { execFile } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { KernelError } from "../common/errors.js";

const CANDIDATES: Record<4 | 6, string[]> = {
  4: ["/usr/sbin/iptables", "/sbin/iptables"],
  6: ["/usr/sbin/ip6tables", "/sbin/ip6tables"],
};

function binary(family: 4 | 6): string | undefined {
  for (const path of CANDIDATES[family]) {
    try {
      accessSync(path, fsConstants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  return undefined;
}

export interface IptablesResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs iptables with -w (wait for the xtables lock); never throws for a non-zero exit. */
export function iptables(family: 4 | 6, args: string[]): Promise<IptablesResult> {
  const bin = binary(family);
  if (!bin) return Promise.resolve({ code: 127, stdout: "", stderr: "iptables not installed" });
  return new Promise((resolve) => {
    execFile(bin, ["-w", "5", ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function iptablesOrThrow(family: 4 | 6, args: string[]): Promise<string> {
  const r = await iptables(family, args);
  if (r.code !== 0)
    throw new KernelError(`iptables ${args.join(" ")}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}
