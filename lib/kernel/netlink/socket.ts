/**
 * One NETLINK_ROUTE socket: sequence numbers, one request in flight at a time (the native
 * transact reads replies until its own seq finishes, so two concurrent requests would steal each
 * other's replies), and translation of NLMSG_ERROR into KernelError.
 */
import { KernelError } from "../../common/errors.js";
import { errnoOf, errnoText } from "../errno.js";
import type { NativeAddon } from "../native.js";
import { attrMap, decodeError, decodeMessages, encodeMessage, type NlMessage, readStr } from "./codec.js";
import {
  AF_NETLINK,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSGERR_ATTR_MSG,
  SOCK_RAW,
} from "./constants.js";
import type { RtRequest } from "./messages.js";

/** NLM_F_DUMP_INTR (<linux/netlink.h>): the dump raced with a change and may be inconsistent. */
const NLM_F_DUMP_INTR = 0x10;
/** How often an interrupted dump is retried before its possibly-inconsistent result is used. */
const DUMP_ATTEMPTS = 4;

const noop = (): void => {};

export class NetlinkSocket {
  private seq = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly native: NativeAddon,
    private readonly fd: number,
  ) {}

  /** Opens a socket inside the namespace pinned at `netnsPath` (null: this process's own). */
  static open(native: NativeAddon, netnsPath: string | null): NetlinkSocket {
    try {
      return new NetlinkSocket(native, native.socketInNetns(netnsPath, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
    } catch (err) {
      const where = netnsPath ?? "the current namespace";
      throw new KernelError(`open netlink socket in ${where}: ${nativeMessage(err)}`, errnoOf(err), {
        cause: err,
      });
    }
  }

  /**
   * A single operation (always acknowledged). `what` names the operation and its object
   * ("create veth veth1a2b"); it prefixes the error. Resolves with the non-ack replies (the
   * answer of a GET); rejects with KernelError carrying the errno.
   */
  request(what: string, req: RtRequest): Promise<NlMessage[]> {
    return this.enqueue(async () => {
      const replies = await this.transact(what, req.type, req.flags | NLM_F_REQUEST | NLM_F_ACK, req.payload);
      return replies.filter((m) => m.type !== NLMSG_ERROR);
    });
  }

  /** A dump (req.flags carries NLM_F_DUMP): every message of the answer, retried if interrupted. */
  dump(what: string, req: RtRequest): Promise<NlMessage[]> {
    return this.enqueue(async () => {
      for (let attempt = 1; ; attempt++) {
        const replies = await this.transact(what, req.type, req.flags | NLM_F_REQUEST, req.payload);
        const interrupted = replies.some((m) => m.flags & NLM_F_DUMP_INTR);
        if (!interrupted || attempt >= DUMP_ATTEMPTS) {
          return replies.filter((m) => m.type !== NLMSG_DONE && m.type !== NLMSG_NOOP);
        }
      }
    });
  }

  /** Closes once the request in flight (if any) is done: closing under a blocked recv is unsafe. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.tail.then(() => this.native.closeFd(this.fd));
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new KernelError("netlink socket is closed"));
    const run = this.tail.then(op);
    this.tail = run.then(noop, noop);
    return run;
  }

  private async transact(what: string, type: number, flags: number, payload: Buffer): Promise<NlMessage[]> {
    this.seq = (this.seq + 1) >>> 0 || 1;
    const seq = this.seq;
    let raw: Buffer;
    try {
      raw = await this.native.netlinkTransact(this.fd, encodeMessage({ type, flags, seq }, payload));
    } catch (err) {
      throw new KernelError(`${what}: ${nativeMessage(err)}`, errnoOf(err), { cause: err });
    }
    const replies = decodeMessages(raw).filter((m) => m.seq === seq);
    for (const m of replies) {
      const code = m.type === NLMSG_ERROR ? decodeError(m) : m.type === NLMSG_DONE ? doneError(m) : undefined;
      if (code && code.errno !== 0) {
        const reason = code.message ? ` (${code.message})` : "";
        throw new KernelError(`${what}: ${errnoText(code.errno)}${reason}`, code.errno);
      }
    }
    return replies;
  }
}

/** NLMSG_DONE carries an int (a negative errno when the dump itself failed), then extack TLVs. */
function doneError(m: NlMessage): { errno: number; message?: string } | undefined {
  if (m.payload.length < 4) return undefined;
  const errno = Math.abs(m.payload.readInt32LE(0));
  if (errno === 0 || !(m.flags & NLM_F_ACK_TLVS)) return { errno };
  const msg = attrMap(m.payload.subarray(4)).get(NLMSGERR_ATTR_MSG);
  return msg ? { errno, message: readStr(msg) } : { errno };
}

function nativeMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
