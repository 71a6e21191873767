/**
 * The CLI's errors. The CLI is a pure HTTP client, so it classifies failures by where they
 * happened (our argv, the transport, the daemon's status code) rather than by the daemon's
 * internal error codes; each class carries the exit code and the one line to print.
 */

export abstract class CliError extends Error {
  abstract readonly exitCode: number;
  /** the single line written to stderr */
  abstract display(): string;
}

/** Bad flag, bad value, wrong number of arguments: the user can fix the command line. */
export class UsageError extends CliError {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
  display(): string {
    return `trellis: ${this.message}`;
  }
}

/** trellisd answered with status >= 400; `message` is its `{"message"}` text. */
export class ApiError extends CliError {
  readonly exitCode = 1;
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
  display(): string {
    return `Error: ${this.message}`;
  }
}

/** The socket could not be reached, or the connection broke before a full reply arrived. */
export class DaemonUnreachableError extends CliError {
  readonly exitCode = 2;
  constructor(
    readonly socketPath: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach trellisd at ${socketPath}: ${reason}`, options);
    this.name = "DaemonUnreachableError";
  }
  display(): string {
    return `trellis: ${this.message}`;
  }
}

/** trellisd replied with success but a body we cannot use: a version mismatch or a daemon bug. */
export class BadResponseError extends CliError {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "BadResponseError";
  }
  display(): string {
    return `trellis: unexpected response from trellisd: ${this.message}`;
  }
}

/** Exit code and stderr line for anything thrown out of a command. */
export function describeFailure(err: unknown): { exitCode: number; line: string } {
  if (err instanceof CliError) return { exitCode: err.exitCode, line: err.display() };
  // Anything else is a bug in the CLI; keep the one-line contract but say what broke.
  const message = err instanceof Error ? err.message : String(err);
  return { exitCode: 1, line: `trellis: internal error: ${message}` };
}
