/**
 * One error hierarchy for all of trellis. Each error has a stable code; the code maps once to an
 * HTTP status (Docker-compatible API), to `{"Err"}` (Docker plugin) and to an exit code (CLI).
 */
export type ErrorCode =
  | "INVALID_ARGUMENT" // malformed input: bad CIDR, bad flag value, bad JSON
  | "NOT_FOUND" // unknown network, endpoint or container
  | "CONFLICT" // duplicate name, overlapping subnet, address in use
  | "FORBIDDEN" // refused in the current state: rm with endpoints attached, already connected
  | "EXHAUSTED" // no free subnet or address left
  | "KERNEL" // the kernel refused an operation
  | "INTERNAL"; // a bug

const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  FORBIDDEN: 403,
  EXHAUSTED: 409,
  KERNEL: 500,
  INTERNAL: 500,
};

export class TrellisError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "TrellisError";
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export const invalid = (message: string) => new TrellisError("INVALID_ARGUMENT", message);
export const notFound = (message: string) => new TrellisError("NOT_FOUND", message);
export const conflict = (message: string) => new TrellisError("CONFLICT", message);
export const forbidden = (message: string) => new TrellisError("FORBIDDEN", message);
export const exhausted = (message: string) => new TrellisError("EXHAUSTED", message);

/** A kernel operation failed; `errno` is the positive errno value when the kernel gave one. */
export class KernelError extends TrellisError {
  readonly errno: number | undefined;
  constructor(message: string, errno?: number, options?: { cause?: unknown }) {
    super("KERNEL", message, options);
    this.errno = errno;
    this.name = "KernelError";
  }
}

export function httpStatusOf(err: unknown): number {
  return err instanceof TrellisError ? err.httpStatus : 500;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Best-effort teardown: run every step, collect every failure, throw them together at the end. */
export async function runAll(steps: Array<() => Promise<unknown>>): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) {
    throw new AggregateError(failures, failures.map(messageOf).join("; "));
  }
}
