/**
 * Gossip simulation bench: a whole cluster on the in-memory network and a virtual clock, so the
 * figures are protocol time (with 1-3 ms simulated one-way latency), independent of this
 * machine's speed. Prints, per cluster size:
 *   - propagation: time until an entry set on a random node is visible in every node's table
 *     (median, p99 over --trials trials);
 *   - steady-state bytes sent per node per second (UDP + TCP, idle cluster, default config);
 *   - failure detection: time from a crash until every other node lists it dead and has
 *     removed its entry;
 *   - false deaths over --loss-seconds of virtual time at 10 % datagram loss.
 * Goals (issue 4): N=50 p99 propagation ≤ 1 s; dead node removed everywhere ≤ 5 s; zero false
 * deaths at 10 % loss.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/gossip-sim.js [--trials 20] [--sizes 10,50,100]
 *        [--loss-seconds 120] [--loss 0.1] [--seed 1] [--json]
 */
import { parseArgs } from "node:util";
import { type Random, SimCluster, seededRandom } from "../lib/overlay/gossip/index.js";

interface Options {
  trials: number;
  sizes: number[];
  lossSeconds: number;
  loss: number;
  seed: number;
  json: boolean;
}

interface SizeReport {
  n: number;
  propagation: { p50: number; p99: number; max: number; trials: number; missed: number };
  bytesPerNodePerSec: number;
  detection: { samples: number[]; max: number };
  lossRun: { loss: number; seconds: number; falseDeaths: number; suspicions: number; propagationMax: number };
  realSeconds: number;
}

function parse(): Options {
  const { values } = parseArgs({
    options: {
      trials: { type: "string", default: "20" },
      sizes: { type: "string", default: "10,50,100" },
      "loss-seconds": { type: "string", default: "120" },
      loss: { type: "string", default: "0.1" },
      seed: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
    },
  });
  return {
    trials: Number(values.trials),
    sizes: values.sizes.split(",").map(Number),
    lossSeconds: Number(values["loss-seconds"]),
    loss: Number(values.loss),
    seed: Number(values.seed),
    json: values.json,
  };
}

function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** Sets an entry on a random node per trial; ms until visible everywhere (-1 = not within 10 s). */
async function propagation(sim: SimCluster, trials: number, tag: string, rnd: Random): Promise<number[]> {
  const out: number[] = [];
  for (let t = 0; t < trials; t++) {
    const live = sim.running();
    const src = live[Math.floor(rnd() * live.length)]!;
    const key = `${tag}-${t}`;
    src.table.set("bench", key, { trial: t, from: src.name });
    out.push(
      await sim.clock.runUntil(() => live.every((n) => n.table.get("bench", key)?.deleted === false), 10_000),
    );
    await sim.clock.advance(137 + Math.floor(rnd() * 400)); // de-phase from the tick timers
  }
  return out;
}

/** Bytes (UDP + TCP) sent per node per second over `seconds` of idle running. */
async function steadyBytes(sim: SimCluster, seconds: number): Promise<number> {
  const total = (): number =>
    sim.running().reduce((sum, n) => sum + n.stats().bytesSent + n.stats().streamBytesSent, 0);
  const before = total();
  await sim.clock.advance(seconds * 1000);
  return (total() - before) / sim.running().length / seconds;
}

/** Crashes a random node that owns an entry; ms until all others list it dead and dropped the entry. */
async function detection(sim: SimCluster, trial: number, rnd: Random): Promise<number> {
  const live = sim.running().slice(1); // keep node 0 (the join seed)
  const victim = live[Math.floor(rnd() * live.length)]!;
  victim.table.set("bench", `victim-${trial}`, { victim: victim.name });
  await sim.clock.runUntil(
    () => sim.running().every((n) => n.table.get("bench", `victim-${trial}`)?.deleted === false),
    10_000,
  );
  await sim.kill(sim.nodes.indexOf(victim));
  return sim.clock.runUntil(
    () =>
      sim
        .running()
        .every(
          (n) =>
            n.members().find((m) => m.name === victim.name)?.state === "dead" &&
            n.table.get("bench", `victim-${trial}`)?.deleted === true,
        ),
    30_000,
  );
}

async function lossRun(n: number, o: Options): Promise<SizeReport["lossRun"]> {
  const sim = new SimCluster({ n, seed: o.seed + 1000, loss: o.loss });
  await sim.startAll();
  await sim.clock.advance(5_000);
  const start = sim.falseDeaths.length;
  const suspicions0 = sim.nodes.reduce((s, x) => s + x.stats().suspicionsRaised, 0);
  const prop = await propagation(sim, 5, "loss", seededRandom(o.seed + 7));
  await sim.clock.advance(o.lossSeconds * 1000);
  const report = {
    loss: o.loss,
    seconds: o.lossSeconds,
    falseDeaths: sim.falseDeaths.length - start,
    suspicions: sim.nodes.reduce((s, x) => s + x.stats().suspicionsRaised, 0) - suspicions0,
    propagationMax: Math.max(...prop),
  };
  await sim.stopAll();
  return report;
}

async function measure(n: number, o: Options): Promise<SizeReport> {
  const began = performance.now();
  const sim = new SimCluster({ n, seed: o.seed });
  await sim.startAll();
  if ((await sim.converge(60_000)) < 0) throw new Error(`N=${n}: cluster did not converge`);
  await sim.clock.advance(3_000);
  const rnd = seededRandom(o.seed);
  const prop = await propagation(sim, o.trials, "p", rnd);
  const ok = prop.filter((x) => x >= 0);
  const bytes = await steadyBytes(sim, 30);
  const det: number[] = [];
  for (let t = 0; t < 3; t++) {
    det.push(await detection(sim, t, rnd));
    await sim.clock.advance(2_000);
  }
  await sim.stopAll();
  const lr = await lossRun(n, o);
  return {
    n,
    propagation: {
      p50: quantile(ok, 0.5),
      p99: quantile(ok, 0.99),
      max: Math.max(...ok),
      trials: prop.length,
      missed: prop.length - ok.length,
    },
    bytesPerNodePerSec: Math.round(bytes),
    detection: { samples: det, max: Math.max(...det) },
    lossRun: lr,
    realSeconds: Math.round((performance.now() - began) / 100) / 10,
  };
}

function print(reports: SizeReport[], o: Options): void {
  const line = (cells: Array<string | number>): string => cells.map((c) => String(c).padStart(12)).join(" ");
  console.log(
    `gossip simulation: default config, 1-3 ms one-way latency, seed ${o.seed}, ${o.trials} trials`,
  );
  console.log(
    line([
      "N",
      "prop p50 ms",
      "prop p99 ms",
      "prop max ms",
      "B/node/s",
      "dead max ms",
      "false@loss",
      "real s",
    ]),
  );
  for (const r of reports) {
    const p = r.propagation;
    console.log(
      line([
        r.n,
        p.p50.toFixed(0),
        p.p99.toFixed(0),
        p.max,
        r.bytesPerNodePerSec,
        r.detection.max,
        r.lossRun.falseDeaths,
        r.realSeconds,
      ]),
    );
  }
  for (const r of reports) {
    const l = r.lossRun;
    console.log(
      `N=${r.n}: detection samples ${r.detection.samples.join(", ")} ms; at ${l.loss * 100} % loss for ${l.seconds} s: ` +
        `${l.falseDeaths} false deaths, ${l.suspicions} suspicions (all refuted), propagation max ${l.propagationMax} ms`,
    );
  }
  const r50 = reports.find((r) => r.n === 50);
  if (r50) {
    const verdict = (ok: boolean): string => (ok ? "met" : "MISSED");
    console.log(
      `goal N=50 p99 ≤ 1000 ms: ${r50.propagation.p99.toFixed(0)} ms, ${verdict(r50.propagation.p99 <= 1000)}`,
    );
  }
  const worstDead = Math.max(...reports.map((r) => r.detection.max));
  console.log(
    `goal dead removed everywhere ≤ 5000 ms: worst ${worstDead} ms, ${worstDead <= 5000 && worstDead >= 0 ? "met" : "MISSED"}`,
  );
  const fd = reports.reduce((s, r) => s + r.lossRun.falseDeaths, 0);
  console.log(`goal zero false deaths at ${o.loss * 100} % loss: ${fd}, ${fd === 0 ? "met" : "MISSED"}`);
}

async function main(): Promise<void> {
  const o = parse();
  const reports: SizeReport[] = [];
  for (const n of o.sizes) {
    reports.push(await measure(n, o));
    if (!o.json) console.error(`N=${n} done`);
  }
  if (o.json) console.log(JSON.stringify(reports, null, 2));
  else print(reports, o);
}

await main();
