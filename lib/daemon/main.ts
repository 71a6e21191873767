/** trellisd entry point: parse flags, start the daemon, stop cleanly on SIGTERM/SIGINT. */
import { pino } from "pino";
import { messageOf } from "../common/errors.js";
import { parseDaemonArgs, USAGE } from "./config.js";
import { Daemon } from "./daemon.js";
import { VERSION } from "./version.js";

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseDaemonArgs>;
  try {
    parsed = parseDaemonArgs(argv);
  } catch (err) {
    process.stderr.write(`trellisd: ${messageOf(err)}\n${USAGE}\n`);
    return 1;
  }
  if (parsed.kind === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (parsed.kind === "version") {
    process.stdout.write(`trellisd ${VERSION}\n`);
    return 0;
  }
  const log = pino({ level: parsed.config.logLevel, base: { pid: process.pid } });
  let daemon: Daemon;
  try {
    daemon = Daemon.create(parsed.config, log);
    await daemon.start();
  } catch (err) {
    log.fatal({ err }, "trellisd failed to start");
    process.stderr.write(`trellisd: ${messageOf(err)}\n`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping; the data plane stays up");
      daemon.stop().then(
        () => resolve(0),
        (err) => {
          log.error({ err }, "error while stopping");
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`;
if (invokedDirectly) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
