/** KeyedLock: work on one key runs one at a time in submission order; different keys run concurrently. */
import test from "ava";
import fc from "fast-check";
import { KeyedLock } from "../../lib/daemon/keyed-lock.js";

/** A promise with its resolve/reject exposed, to hold work open until the test lets it finish. */
function gate<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued microtask and the next macrotask run. */
const settle = () => new Promise((r) => setImmediate(r));

test("same key: the second job starts only after the first finishes", async (t) => {
  const lock = new KeyedLock();
  const events: string[] = [];
  const first = gate();
  const a = lock.run("ns1", async () => {
    events.push("a start");
    await first.promise;
    events.push("a end");
    return "a";
  });
  const b = lock.run("ns1", async () => {
    events.push("b start");
    return "b";
  });
  await settle();
  t.deepEqual(events, ["a start"], "b waits while a holds the key");
  first.resolve();
  t.deepEqual(await Promise.all([a, b]), ["a", "b"]);
  t.deepEqual(events, ["a start", "a end", "b start"]);
});

test("same key: many jobs keep submission order and never overlap", async (t) => {
  const lock = new KeyedLock();
  const order: number[] = [];
  let active = 0;
  let maxActive = 0;
  const jobs = Array.from({ length: 20 }, (_, i) =>
    lock.run("k", async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      // uneven durations: later jobs are quicker, so any overlap would reorder them
      await new Promise((r) => setTimeout(r, 20 - i));
      order.push(i);
      active--;
      return i;
    }),
  );
  t.deepEqual(await Promise.all(jobs), [...Array(20).keys()]);
  t.deepEqual(order, [...Array(20).keys()]);
  t.is(maxActive, 1);
});

test("same key: a rejection reaches its caller and does not block the next job", async (t) => {
  const lock = new KeyedLock();
  const failing = lock.run("k", async () => {
    throw new Error("veth exists");
  });
  const throwingSync = lock.run("k", () => {
    throw new Error("sync throw");
  });
  const next = lock.run("k", async () => "ran");
  await t.throwsAsync(failing, { message: "veth exists" });
  await t.throwsAsync(throwingSync, { message: "sync throw" });
  t.is(await next, "ran");
  t.is(await lock.run("k", async () => "still usable"), "still usable");
});

test("different keys overlap: a held key does not delay another", async (t) => {
  const lock = new KeyedLock();
  const hold = gate();
  const events: string[] = [];
  const a = lock.run("ns1", async () => {
    events.push("ns1 start");
    await hold.promise;
    events.push("ns1 end");
  });
  const b = lock.run("ns2", async () => {
    events.push("ns2 start");
    events.push("ns2 end");
  });
  await b;
  t.deepEqual(events, ["ns1 start", "ns2 start", "ns2 end"]);
  hold.resolve();
  await a;
  t.deepEqual(events, ["ns1 start", "ns2 start", "ns2 end", "ns1 end"]);
});

test("a key freed by its last job can be taken again at once", async (t) => {
  const lock = new KeyedLock();
  await lock.run("k", async () => undefined);
  await settle();
  const events: string[] = [];
  const a = lock.run("k", async () => {
    events.push("a");
  });
  const b = lock.run("k", async () => {
    events.push("b");
  });
  await Promise.all([a, b]);
  t.deepEqual(events, ["a", "b"]);
});

test("property: under any interleaving, each key runs its jobs alone and in order; keys overlap", async (t) => {
  let runsWithOverlap = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.scheduler(),
      fc.array(
        fc.record({
          key: fc.constantFrom("a", "b", "c"),
          steps: fc.integer({ min: 0, max: 3 }),
          fails: fc.boolean(),
        }),
        {
          minLength: 1,
          maxLength: 12,
        },
      ),
      async (s, jobs) => {
        const lock = new KeyedLock();
        const active = new Map<string, number>();
        const started: Array<{ key: string; i: number }> = [];
        let overlapSeen = false;
        let violation = "";
        const results = jobs.map((job, i) =>
          lock
            .run(job.key, async () => {
              if ((active.get(job.key) ?? 0) > 0)
                violation = `job ${i} started while key ${job.key} was busy`;
              active.set(job.key, (active.get(job.key) ?? 0) + 1);
              if ([...active.values()].filter((n) => n > 0).length > 1) overlapSeen = true;
              started.push({ key: job.key, i });
              for (let k = 0; k < job.steps; k++)
                await s.schedule(Promise.resolve(), `${job.key}#${i} step ${k}`);
              active.set(job.key, (active.get(job.key) ?? 1) - 1);
              if (job.fails) throw new Error(`job ${i} failed`);
              return i;
            })
            .then(
              (v) => ({ ok: true as const, v }),
              (e: unknown) => ({ ok: false as const, e }),
            ),
        );
        // releases scheduled steps, in the order the scheduler picks, until every job has settled
        const outcomes = await s.waitFor(Promise.all(results));
        if (violation) throw new Error(violation);
        for (const key of ["a", "b", "c"]) {
          const want = jobs.flatMap((j, i) => (j.key === key ? [i] : []));
          const got = started.filter((x) => x.key === key).map((x) => x.i);
          if (JSON.stringify(got) !== JSON.stringify(want))
            throw new Error(`key ${key} ran ${got}, want ${want}`);
        }
        outcomes.forEach((o, i) => {
          if (o.ok !== !jobs[i]!.fails) throw new Error(`job ${i} outcome ${JSON.stringify(o)}`);
        });
        if (overlapSeen) runsWithOverlap++;
      },
    ),
    { numRuns: 200 },
  );
  t.true(runsWithOverlap > 0, "some runs had two keys busy at once");
});
