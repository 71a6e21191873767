/**
 * connect/disconnect latency, one measurement point at a time, the engines interleaved run by run so
 * background noise on the machine hits both alike. One cycle = connect (timed), pause, disconnect
 * (timed), wait until the container's and the host's links are back to what they were (the kernel
 * may finish a veth deletion after the reply), pause. Every connect is checked to have added a link
 * inside the container, so a no-op cannot pass for a fast one.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { added, interfacesOf, pollUntil, sameSet, timeCommand } from "./sys.js";
import type { AttachTarget, Engine, Operation } from "./targets.js";

export type Point = "api" | "cli";

export interface PointSamples {
  connect: number[];
  disconnect: number[];
  /** From the disconnect reply (or CLI exit) until the links were gone, in ms. */
  teardown: number[];
  /** API only: measured requests that went over an already-open connection. */
  reused: number;
}

export interface LatencyOptions {
  runs: number;
  /** Cycles done first and not counted (JIT, caches, first connection). */
  warmup: number;
  /** Pause after each operation, in ms, so a connect does not absorb the previous teardown. */
  gapMs: number;
  progress?: (line: string) => void;
}

const SETTLE_TIMEOUT_MS = 10_000;

async function timeOperation(target: AttachTarget, point: Point, op: Operation) {
  if (point === "cli") {
    const { argv, env } = target.cli(op);
    return { ms: await timeCommand(argv, { env }), reused: false };
  }
  const { method, path, body } = target.request(op);
  const reply = await target.api.ok(method, path, body);
  return { ms: reply.ms, reused: reply.reused };
}

async function cycle(target: AttachTarget, point: Point, gapMs: number) {
  const containerBefore = interfacesOf(target.containerPid);
  const hostBefore = interfacesOf(target.hostPid);
  const connect = await timeOperation(target, point, "connect");
  if (added(containerBefore, interfacesOf(target.containerPid)).length === 0) {
    throw new Error(`${target.engine} ${point} connect replied but no link appeared in the container`);
  }
  await sleep(gapMs);
  const disconnect = await timeOperation(target, point, "disconnect");
  const teardown = await pollUntil(
    () =>
      sameSet(containerBefore, interfacesOf(target.containerPid)) &&
      sameSet(hostBefore, interfacesOf(target.hostPid)),
    { what: `${target.engine}'s links to be gone after disconnect`, timeoutMs: SETTLE_TIMEOUT_MS },
  );
  await sleep(gapMs);
  return { connect, disconnect, teardown };
}

export async function measurePoint(
  targets: readonly AttachTarget[],
  point: Point,
  opts: LatencyOptions,
): Promise<Map<Engine, PointSamples>> {
  const results = new Map<Engine, PointSamples>();
  for (const t of targets) results.set(t.engine, { connect: [], disconnect: [], teardown: [], reused: 0 });
  if (point === "api") for (const t of targets) await t.api.ok("GET", "/_ping"); // open the connection
  const total = opts.warmup + opts.runs;
  for (let i = 0; i < total; i++) {
    for (const target of targets) {
      const c = await cycle(target, point, opts.gapMs);
      if (i < opts.warmup) continue;
      const r = results.get(target.engine)!;
      r.connect.push(c.connect.ms);
      r.disconnect.push(c.disconnect.ms);
      r.teardown.push(c.teardown);
      r.reused += (c.connect.reused ? 1 : 0) + (c.disconnect.reused ? 1 : 0);
    }
    if ((i + 1) % 50 === 0 || i + 1 === total) opts.progress?.(`${point}: ${i + 1}/${total} cycles`);
  }
  return results;
}

/**
 * The CLI's floor: spawn→exit of a command line that does no request (`--version`), so the CLI rows
 * can be read as "floor + engine". Interleaved like the cycles.
 */
export async function measureCliFloor(
  targets: readonly AttachTarget[],
  runs: number,
): Promise<Map<Engine, number[]>> {
  const results = new Map<Engine, number[]>(targets.map((t) => [t.engine, []]));
  for (let i = 0; i < runs; i++) {
    for (const target of targets) {
      const { argv, env } = target.cliFloor();
      results.get(target.engine)!.push(await timeCommand(argv, { env }));
    }
  }
  return results;
}
