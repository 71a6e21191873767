/**
 * A long-lived `nft -i` per network namespace, for callers that change rules often (the service VIP
 * table). nftApply starts a process per transaction: 8-27 ms at 10 000 services, mostly the start, nft
 * reading the table into its cache, and the kernel making the exiting process's netlink close wait for
 * an RCU grace period whenever the transaction deleted something. A session pays that once.
 *
 * One apply = one transaction, as with `nft -f`: nft -i hands each input line to
 * nft_run_cmd_from_buffer, which parses, evaluates and commits the whole buffer as one netlink batch.
 * The script goes into a file in a private directory and nft gets one line, `include "FILE"`, so
 * multi-line table definitions work unchanged and errors name the script's own lines.
 *
 * End of a reply: the include line is followed by a line that is a syntax error carrying a unique
 * token. nft reports it on stderr after whatever the transaction reported, in the same stream, so once
 * the token shows up everything before its report belongs to the transaction, and an "Error:" in it
 * means nothing was applied. (stdout would be a second pipe, with no order against stderr.)
 *
 * Not carried by the process: scripts with a top-level define/redefine/undefine, because nft keeps
 * symbols from one input line to the next (applying the same script twice would fail with
 * "redefinition of symbol"). Those go to a one-shot nftApply.
 *
 * A process that dies or stops answering fails the apply in flight (its outcome is unknown: the caller
 * resyncs, as after any failed transaction) and is replaced by a fresh one on the next apply; there is
 * no automatic retry. The process is also replaced every `maxApplies` transactions: libedit keeps every
 * input line in its history, which costs memory and makes each command a little slower (about 0.025 ms
 * per 1 000 earlier lines on nft 1.0.6).
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KernelError, messageOf } from "../common/errors.js";
import { type NftOptions, nftApply, nftCommand, nftError } from "./nft.js";
import type { NftSession } from "./types.js";

export type { NftSession } from "./types.js";

export interface NftSessionOptions extends NftOptions {
  /** Replace the nft process after this many transactions (see the module comment). Default 1 000. */
  maxApplies?: number;
  /** Where the private script directory is created. Default: os.tmpdir(). */
  scriptDir?: string;
  /** close(): how long nft gets to exit after end of input before SIGKILL (ms). Default 2 000. */
  closeGraceMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_APPLIES = 1_000;
const DEFAULT_CLOSE_GRACE_MS = 2_000;
/** nft keeps these symbols across input lines: a second apply of the same script would fail. */
const TOP_LEVEL_SYMBOL = /^[ \t]*(re|un)?define[ \t]/m;
/** nft's note that the error is in an included file: the include line is ours, not the caller's. */
const INCLUDED_FROM = /^In file included from <cmdline>:.*\n/gm;
/** What nftApply's messages call the script; the session's errors read the same. */
const SCRIPT_NAME = "/dev/stdin";

/** Opens a session; nothing starts until the first apply. The caller owns it and must close() it (a
 * live nft process keeps its network namespace alive even after the namespace's name is deleted). */
export function createNftSession(opts: NftSessionOptions = {}): NftSession {
  return new Session(opts);
}

class Session implements NftSession {
  private proc: NftProcess | undefined;
  private dir: Promise<string> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private readonly timeoutMs: number;
  private readonly maxApplies: number;

  constructor(private readonly opts: NftSessionOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxApplies = opts.maxApplies ?? DEFAULT_MAX_APPLIES;
  }

  get pid(): number | undefined {
    return this.proc?.alive ? this.proc.pid : undefined;
  }

  apply(script: string): Promise<void> {
    if (this.closing) return Promise.reject(new KernelError("nft session is closed"));
    const next = this.queue.then(() => this.applyNow(script));
    this.queue = next.catch(() => {});
    return next;
  }

  close(): Promise<void> {
    this.closing ??= this.queue.then(async () => {
      await this.proc?.stop(this.opts.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS);
      this.proc = undefined;
      const dir = await this.dir?.catch(() => undefined);
      if (dir) await rm(dir, { recursive: true, force: true });
    });
    return this.closing;
  }

  private async applyNow(script: string): Promise<void> {
    if (TOP_LEVEL_SYMBOL.test(script)) {
      return nftApply(script, { ...this.opts, timeoutMs: this.timeoutMs });
    }
    const file = join(await this.scriptDir(), "script.nft");
    await writeFile(file, script);
    const proc = await this.process();
    const reply = await proc.run(`include "${file}"`, this.timeoutMs);
    if (!/\bError:/.test(reply)) return;
    const text = reply.replace(INCLUDED_FROM, "").replaceAll(file, SCRIPT_NAME);
    throw new KernelError(`apply nftables transaction: ${nftError(text, 1)}`);
  }

  /** The running process; a new one when there is none, the last one died, or it is due for renewal. */
  private async process(): Promise<NftProcess> {
    if (this.proc?.alive && this.proc.applies < this.maxApplies) return this.proc;
    await this.proc?.stop(this.opts.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS);
    this.proc = new NftProcess(this.opts.netns);
    return this.proc;
  }

  private scriptDir(): Promise<string> {
    this.dir ??= mkdtemp(join(this.opts.scriptDir ?? tmpdir(), "trellis-nft-")).catch((err: unknown) => {
      this.dir = undefined;
      throw new KernelError(`nft session: script directory: ${messageOf(err)}`, undefined, { cause: err });
    });
    return this.dir;
  }
}

interface Pending {
  token: string;
  resolve: (reply: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/** One `nft -i` child: sends a command line, collects what nft reports about it. */
class NftProcess {
  readonly pid: number | undefined;
  applies = 0;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private stderr = "";
  private pending: Pending | undefined;
  private ended: string | undefined;

  constructor(netns: NftOptions["netns"]) {
    const [cmd, argv] = nftCommand(["-i"], netns);
    // HOME=/dev/null: nft -i reads ~/.nft.history at start and writes every line to it at exit.
    this.child = spawn(cmd, argv, { env: { HOME: "/dev/null" }, stdio: ["pipe", "ignore", "pipe"] });
    this.pid = this.child.pid;
    this.child.stdin?.on("error", () => {}); // EPIPE after a crash: the close event tells the story
    this.child.stderr?.setEncoding("utf8").on("data", (d: string) => this.onStderr(d));
    this.exited = new Promise((resolve) => {
      this.child.once("error", (err) => {
        this.end(`could not start ${cmd}: ${err.message}`);
        resolve();
      });
      this.child.once("close", (code, signal) => {
        this.end(signal ? `killed by ${signal}` : `exited with status ${code}`);
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.ended === undefined;
  }

  /** Sends one command line; resolves with what nft wrote to stderr for it (empty on success). */
  run(line: string, timeoutMs: number): Promise<string> {
    if (!this.alive) return Promise.reject(this.failure(`nft session ${this.ended}`));
    this.applies++;
    this.stderr = ""; // nothing pending before this line: anything there was not about it
    const token = `trellis-end-of-transaction-${this.applies}`;
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              const why = `gave no answer within ${timeoutMs} ms`;
              this.kill();
              this.ended ??= why; // dead to the session now, not once the close event comes
              this.settle()?.reject(this.failure(`nft session ${why}`));
            }, timeoutMs)
          : undefined;
      this.pending = { token, resolve, reject, timer };
      this.child.stdin?.write(`${line}\n${token}\n`);
    });
  }

  /** End of input, then SIGKILL by PID if nft is still there after `graceMs`; waits for the exit. */
  async stop(graceMs: number): Promise<void> {
    this.child.stdin?.end();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.exited, grace]);
    clearTimeout(timer);
    if (this.alive) this.kill();
    await this.exited;
  }

  private kill(): void {
    if (this.pid === undefined || !this.alive) return;
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // already gone; the close event follows
    }
  }

  /**
   * The end token's report is three lines: nft's "Error: syntax error ..." line, the token line as
   * sent, a caret line. Waits for all three, so no tail of it is mistaken for the next reply's.
   */
  private onStderr(data: string): void {
    this.stderr += data;
    const p = this.pending;
    if (!p) return;
    const lines = this.stderr.split("\n");
    const at = lines.indexOf(p.token);
    if (at < 0 || lines.length < at + 3) return;
    const header = at > 0 && lines[at - 1]!.includes("Error:") ? at - 1 : at;
    this.stderr = lines.slice(at + 2).join("\n");
    this.settle()?.resolve(lines.slice(0, header).join("\n"));
  }

  private settle(): Pending | undefined {
    const p = this.pending;
    this.pending = undefined;
    if (p?.timer) clearTimeout(p.timer);
    return p;
  }

  private end(why: string): void {
    this.ended ??= why;
    const said = this.stderr.trim();
    this.settle()?.reject(this.failure(`nft session ${why}${said ? `: ${said}` : ""}`));
  }

  private failure(message: string): KernelError {
    return new KernelError(`apply nftables transaction: ${message} (pid ${this.pid ?? "none"})`);
  }
}
