/**
 * nftables through the `nft` binary: one process per atomic transaction (`nft -f -`), never one
 * per rule. Optionally inside another network namespace via nsenter, so tests and the embedded
 * DNS redirect can work in a container's namespace without touching the daemon's.
 */
import { spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { invalid, KernelError } from "../common/errors.js";
import type { NetnsRef } from "./types.js";

export interface NftOptions {
  /** Run inside this network namespace (a NetnsRef or the path of a namespace file). */
  netns?: NetnsRef | string;
  /** Kill nft after this long (ms); 0 means no limit. Default 30 000. */
  timeoutMs?: number;
}

/** Absolute paths first: npm puts node_modules/.bin on PATH, and @vercel/nft ships an `nft` too. */
const NFT_CANDIDATES = ["/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft", "/usr/bin/nft"];
const NSENTER_CANDIDATES = ["/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter"];
const FAMILIES = new Set(["ip", "ip6", "inet", "arp", "bridge", "netdev"]);

function findBinary(candidates: readonly string[], pkg: string): string {
  for (const path of candidates) {
    try {
      accessSync(path, fsConstants.X_OK);
      return path;
    } catch {
      // try the next location
    }
  }
  throw new KernelError(`${candidates[0]?.split("/").pop()} not found: install the ${pkg} package`);
}

/** Checks that nft is installed and returns its version line ("nftables v1.0.6 ..."). */
export async function nftVersion(): Promise<string> {
  const r = await run(["--version"], "", {});
  if (r.code !== 0) throw new KernelError(`nft --version failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Applies a script as one transaction: either all of it takes effect or none of it. */
export async function nftApply(script: string, opts: NftOptions = {}): Promise<void> {
  const r = await run(["-f", "-"], script, opts);
  if (r.code !== 0) throw new KernelError(`apply nftables transaction: ${nftError(r.stderr, r.code)}`);
}

/** `nft -j list table FAMILY NAME`, parsed; undefined when the table does not exist. */
export async function nftListTable(family: string, name: string, opts: NftOptions = {}): Promise<unknown> {
  if (!FAMILIES.has(family)) throw invalid(`invalid nftables family: ${family}`);
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,255}$/.test(name)) throw invalid(`invalid nftables table name: ${name}`);
  const r = await run(["-j", "list", "table", family, name], "", opts);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new KernelError(`list nftables table ${family} ${name}: ${nftError(r.stderr, r.code)}`);
  }
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch (err) {
    throw new KernelError(`list nftables table ${family} ${name}: unparsable JSON from nft`, undefined, {
      cause: err,
    });
  }
}

/** nft reports "Error: ..." lines plus the offending source line and a caret marker: keep it all. */
export function nftError(stderr: string, code: number | null): string {
  const text = stderr.trim();
  if (!text) return code === null ? "nft was killed (timeout)" : `nft exited with status ${code}`;
  const errorLine = text.split("\n").find((l) => l.includes("Error:")) ?? text.split("\n")[0];
  return text === errorLine ? text : `${errorLine}\n${text}`;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The command line running nft with `args`, inside `netns` when given. nsenter execs nft, so the
 * child's PID is nft's once it started. */
export function nftCommand(args: string[], netns?: NetnsRef | string): [string, string[]] {
  const nft = findBinary(NFT_CANDIDATES, "nftables");
  const nsPath = typeof netns === "string" ? netns : netns?.path;
  return nsPath
    ? [findBinary(NSENTER_CANDIDATES, "util-linux"), [`--net=${nsPath}`, "--", nft, ...args]]
    : [nft, args];
}

function run(args: string[], input: string, opts: NftOptions): Promise<RunResult> {
  const [cmd, argv] = nftCommand(args, opts.netns);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"], timeout: opts.timeoutMs ?? 30_000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => reject(new KernelError(`run ${cmd}: ${e.message}`, undefined, { cause: e })));
    child.on("close", (code) => {
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    // EPIPE when nft dies before reading everything: its exit status tells the real story.
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}
