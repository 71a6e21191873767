/** trellisd's command line: defaults, both flag forms, and the errors for unknown flags and bad values. */
import test from "ava";
import { TrellisError } from "../../lib/common/errors.js";
import { DEFAULTS, parseDaemonArgs, USAGE } from "../../lib/daemon/config.js";

const config = (argv: string[]) => {
  const parsed = parseDaemonArgs(argv);
  if (parsed.kind !== "run") throw new Error(`expected a run, got ${parsed.kind}`);
  return parsed.config;
};

function refuses(t: import("ava").ExecutionContext, argv: string[], message: string) {
  const err = t.throws(() => parseDaemonArgs(argv), { instanceOf: TrellisError });
  t.is(err?.code, "INVALID_ARGUMENT");
  t.is(err?.message, message, argv.join(" "));
}

test("no flags: the documented defaults", (t) => {
  t.deepEqual(parseDaemonArgs([]), {
    kind: "run",
    config: {
      stateDir: "/var/lib/trellis",
      socket: "/run/trellis/trellis.sock",
      logLevel: "info",
      sweepIntervalMs: 5000,
      cluster: { gossipPort: 7946, join: [], gossipProfile: "default", auditIntervalMs: 10_000 },
    },
  });
});

test("the defaults object is not shared with the parsed config", (t) => {
  const c = config([]);
  c.stateDir = "/elsewhere";
  t.is(DEFAULTS.stateDir, "/var/lib/trellis");
  t.is(config([]).stateDir, "/var/lib/trellis");
});

test("--flag value and --flag=value set the same fields", (t) => {
  const want = {
    stateDir: "/tmp/s",
    socket: "/tmp/t.sock",
    logLevel: "debug",
    sweepIntervalMs: 0,
    cluster: { gossipPort: 7946, join: [], gossipProfile: "default", auditIntervalMs: 10_000 },
  };
  t.deepEqual(
    config([
      "--state-dir",
      "/tmp/s",
      "--socket",
      "/tmp/t.sock",
      "--log-level",
      "debug",
      "--sweep-interval",
      "0",
    ]),
    want,
  );
  t.deepEqual(
    config(["--state-dir=/tmp/s", "--socket=/tmp/t.sock", "--log-level=debug", "--sweep-interval=0"]),
    want,
  );
  t.deepEqual(
    config(["--state-dir=/tmp/s", "--socket", "/tmp/t.sock", "--log-level=debug", "--sweep-interval", "0"]),
    want,
  );
});

test("a value may contain '='; the last occurrence of a flag wins", (t) => {
  t.is(config(["--state-dir=/tmp/a=b"]).stateDir, "/tmp/a=b");
  t.is(config(["--log-level", "warn", "--log-level=error"]).logLevel, "error");
  t.is(config(["--sweep-interval", "250"]).sweepIntervalMs, 250);
});

test("every log level is accepted", (t) => {
  for (const level of ["trace", "debug", "info", "warn", "error", "fatal", "silent"]) {
    t.is(config(["--log-level", level]).logLevel, level);
  }
});

test("unknown flags are refused, naming the argument as given", (t) => {
  refuses(t, ["--stat-dir", "/x"], 'unknown flag "--stat-dir"');
  refuses(t, ["--stat-dir=/x"], 'unknown flag "--stat-dir=/x"');
  refuses(t, ["serve"], 'unknown flag "serve"');
  refuses(t, ["-v"], 'unknown flag "-v"');
});

test("a bad log level is refused, naming the value and the choices", (t) => {
  refuses(
    t,
    ["--log-level", "verbose"],
    'invalid --log-level "verbose" (use trace, debug, info, warn, error, fatal, silent)',
  );
  refuses(
    t,
    ["--log-level=INFO"],
    'invalid --log-level "INFO" (use trace, debug, info, warn, error, fatal, silent)',
  );
});

test("a bad sweep interval is refused, naming the value", (t) => {
  for (const bad of ["-1", "1.5", "soon", "5s"]) {
    refuses(t, ["--sweep-interval", bad], `invalid --sweep-interval "${bad}": milliseconds >= 0`);
  }
});

// Number(" ") is 0: a blank value silently disables the sweep instead of being refused.
test("a blank --sweep-interval is refused, not read as 0", (t) => {
  refuses(t, ["--sweep-interval", " "], 'invalid --sweep-interval " ": milliseconds >= 0');
});

test("a flag without its value is refused", (t) => {
  refuses(t, ["--socket"], "flag --socket needs a value");
  refuses(t, ["--socket="], "flag --socket needs a value");
  refuses(t, ["--state-dir", ""], "flag --state-dir needs a value");
  refuses(t, ["--log-level"], "flag --log-level needs a value");
});

test("-h, --help and --version win wherever they appear, before any later error", (t) => {
  t.deepEqual(parseDaemonArgs(["-h"]), { kind: "help" });
  t.deepEqual(parseDaemonArgs(["--help"]), { kind: "help" });
  t.deepEqual(parseDaemonArgs(["--socket", "/x", "--help", "--bogus"]), { kind: "help" });
  t.deepEqual(parseDaemonArgs(["--version"]), { kind: "version" });
  t.deepEqual(parseDaemonArgs(["--log-level=debug", "--version", "--log-level=nope"]), { kind: "version" });
  // but a flag before them is still parsed, and its error comes first
  refuses(t, ["--bogus", "--help"], 'unknown flag "--bogus"');
});

test("the usage text names every flag and its default", (t) => {
  for (const s of [
    "--state-dir DIR",
    "--socket PATH",
    "--log-level LEVEL",
    "--sweep-interval MS",
    "-h, --help",
    "--version",
    DEFAULTS.stateDir,
    DEFAULTS.socket,
    `default ${DEFAULTS.sweepIntervalMs}`,
  ]) {
    t.true(USAGE.includes(s), s);
  }
});

test("cluster flags: advertise address, seeds, port, key file, node name, profile; bad values refused", (t) => {
  t.deepEqual(
    config([
      "--advertise-addr",
      "10.99.0.1",
      "--join",
      "10.99.0.2,10.99.0.3:7000",
      "--gossip-port=7000",
      "--gossip-key",
      "/etc/trellis/key",
      "--node-name",
      "h1",
      "--gossip-profile",
      "test",
    ]).cluster,
    {
      advertiseAddr: "10.99.0.1",
      join: ["10.99.0.2", "10.99.0.3:7000"],
      gossipPort: 7000,
      gossipKeyFile: "/etc/trellis/key",
      nodeName: "h1",
      gossipProfile: "test",
      auditIntervalMs: 10_000,
    },
  );
  t.throws(() => parseDaemonArgs(["--advertise-addr", "not-an-ip"]), {
    message: /--advertise-addr "not-an-ip"/,
  });
  t.throws(() => parseDaemonArgs(["--gossip-port", "70000"]), { message: /--gossip-port "70000"/ });
  t.throws(() => parseDaemonArgs(["--gossip-profile", "fast"]), { message: /--gossip-profile "fast"/ });
});
