/**
 * The logger the gossip library writes to: the subset of pino's API it uses, so the daemon can
 * pass its pino child logger and tests can pass a silent one. Fields go in the first argument
 * (structured), the human message in the second, never concatenated.
 */
export interface GossipLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** A logger that discards everything: the default for tests and simulations. */
export function silentLogger(): GossipLogger {
  const nothing = (): void => {};
  return { debug: nothing, info: nothing, warn: nothing, error: nothing };
}
