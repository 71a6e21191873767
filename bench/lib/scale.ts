/**
 * Many containers on one trellis network: wall time to attach N namespaces one after the other (one
 * kept-alive connection), then, after detaching them all, N again with `concurrency` requests in
 * flight (that many connections); the daemon's memory (/proc/PID/status) at each stage.
 */
import type { Lab, LabDaemon } from "../../test/helpers/lab.js";
import { msSince, type Summary, summarize } from "./stats.js";
import { interfacesOf, type Memory, mapPool, memoryOf, pollUntil } from "./sys.js";
import { UnixHttpClient } from "./unix-http.js";

const NETWORK = "scalenet";
/** Room for 65k endpoints; a Linux bridge takes at most 1024 ports, which bounds `count` first. */
const SUBNET = "10.90.0.0/16";
const NAMESPACE_SETUP_PARALLELISM = 16;
const SETTLE_TIMEOUT_MS = 120_000;

export interface ScaleOptions {
  count: number;
  concurrency: number;
  progress?: (line: string) => void;
}

export interface AttachRound {
  wallMs: number;
  /** Each connect request, from request to reply. */
  perAttach: Summary;
}

export interface ScaleResult {
  count: number;
  concurrency: number;
  /** Creating the namespaces (lab set-up, not trellis). */
  setupMs: number;
  serial: AttachRound & { first100: Summary; last100: Summary };
  /** Detaching all of them `concurrency` at a time, and until the kernel had removed every veth. */
  detachAll: { wallMs: number; settledMs: number };
  concurrent: AttachRound;
  /** Endpoints the network reports at the end (should equal count). */
  endpointsAtEnd: number;
  memory: { before: Memory; afterSerial: Memory; afterConcurrent: Memory };
}

const path = (op: string) => `/v1.41/networks/${NETWORK}/${op}`;

async function attachAll(client: UnixHttpClient, namespaces: readonly string[], parallel: number) {
  const started = process.hrtime.bigint();
  const latencies = await mapPool(namespaces, parallel, async (ns) => {
    const reply = await client.ok("POST", path("connect"), { Container: ns, EndpointConfig: {} });
    return reply.ms;
  });
  return { wallMs: msSince(started), latencies };
}

async function detachAll(
  client: UnixHttpClient,
  namespaces: readonly string[],
  parallel: number,
  hostPid: number,
) {
  const hostLinksBefore = interfacesOf(hostPid).size - namespaces.length;
  const started = process.hrtime.bigint();
  await mapPool(namespaces, parallel, (ns) => client.ok("POST", path("disconnect"), { Container: ns }));
  const wallMs = msSince(started);
  await pollUntil(() => interfacesOf(hostPid).size <= hostLinksBefore, {
    what: `the ${namespaces.length} host-side veths to be deleted`,
    timeoutMs: SETTLE_TIMEOUT_MS,
    intervalMs: 20,
  });
  return { wallMs, settledMs: msSince(started) };
}

export async function measureScale(lab: Lab, daemon: LabDaemon, opts: ScaleOptions): Promise<ScaleResult> {
  const say = opts.progress ?? (() => {});
  const started = process.hrtime.bigint();
  const names = Array.from({ length: opts.count }, (_, i) => `s${i}`);
  const namespaces = await mapPool(names, NAMESPACE_SETUP_PARALLELISM, (n) => lab.addContainer(n));
  const setupMs = msSince(started);
  say(`scale: ${opts.count} namespaces created in ${(setupMs / 1000).toFixed(1)} s`);

  const serialClient = new UnixHttpClient(daemon.socket, 1);
  const poolClient = new UnixHttpClient(daemon.socket, opts.concurrency);
  try {
    await serialClient.ok("POST", "/v1.41/networks/create", {
      Name: NETWORK,
      IPAM: { Config: [{ Subnet: SUBNET }] },
    });
    await poolClient.ok("GET", "/_ping");
    const before = memoryOf(daemon.pid);

    const serial = await attachAll(serialClient, namespaces, 1);
    const afterSerial = memoryOf(daemon.pid);
    say(`scale: ${opts.count} attached serially in ${(serial.wallMs / 1000).toFixed(2)} s`);

    const detached = await detachAll(poolClient, namespaces, opts.concurrency, daemon.pid);
    say(
      `scale: detached all in ${(detached.wallMs / 1000).toFixed(2)} s, veths gone after ${(detached.settledMs / 1000).toFixed(2)} s`,
    );

    const concurrent = await attachAll(poolClient, namespaces, opts.concurrency);
    const afterConcurrent = memoryOf(daemon.pid);
    say(
      `scale: ${opts.count} attached ${opts.concurrency} at a time in ${(concurrent.wallMs / 1000).toFixed(2)} s`,
    );

    const inspect = await serialClient.ok("GET", `/v1.41/networks/${NETWORK}`);
    const containers =
      (JSON.parse(inspect.body) as { Containers?: Record<string, unknown> }).Containers ?? {};
    return {
      count: opts.count,
      concurrency: opts.concurrency,
      setupMs,
      serial: {
        wallMs: serial.wallMs,
        perAttach: summarize(serial.latencies),
        first100: summarize(serial.latencies.slice(0, 100)),
        last100: summarize(serial.latencies.slice(-100)),
      },
      detachAll: detached,
      concurrent: { wallMs: concurrent.wallMs, perAttach: summarize(concurrent.latencies) },
      endpointsAtEnd: Object.keys(containers).length,
      memory: { before, afterSerial, afterConcurrent },
    };
  } finally {
    serialClient.close();
    poolClient.close();
  }
}
