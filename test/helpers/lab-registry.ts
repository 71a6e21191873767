/**
 * A record of every live test lab in /run/trellis-test/<prefix>.json: who owns it (PID + start time),
 * which processes it started and which temp dir it uses.
 *
 * Normally Lab.destroy() (or the exit hook) cleans up and deletes the record. When a test process dies
 * without that (SIGKILL, a worker killed at a timeout), the record stays; the next Lab.create() on the
 * machine finds it, sees the owner is gone, and removes exactly what that lab made: its recorded
 * processes (PID + start time must still match), the namespaces named with its prefix, its temp dir.
 * Creating the record with O_EXCL is also what reserves a prefix between concurrent test processes.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isAlive, processStartTime, run, signalPid } from "./proc.js";

export const REGISTRY_DIR = "/run/trellis-test";

interface ProcessId {
  pid: number;
  start: string;
}

interface RecordData {
  prefix: string;
  owner: ProcessId;
  dir?: string;
  processes: ProcessId[];
}

export class LabRecord {
  private readonly data: RecordData;
  private readonly file: string;

  private constructor(prefix: string) {
    this.file = join(REGISTRY_DIR, `${prefix}.json`);
    this.data = { prefix, owner: selfId(), processes: [] };
  }

  /** Reserves `prefix`; undefined when another lab already holds it. */
  static claim(prefix: string): LabRecord | undefined {
    const record = new LabRecord(prefix);
    for (let attempt = 0; ; attempt++) {
      mkdirSync(REGISTRY_DIR, { recursive: true });
      try {
        writeFileSync(record.file, JSON.stringify(record.data), { flag: "wx" });
        return record;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EEXIST") return undefined;
        // another process's remove() took the empty directory away in between: make it again
        if (code !== "ENOENT" || attempt >= 3) throw err;
      }
    }
  }

  setDir(dir: string): void {
    this.data.dir = dir;
    this.save();
  }

  addProcess(pid: number): void {
    const start = processStartTime(pid);
    if (start === undefined) return;
    this.data.processes.push({ pid, start });
    this.save();
  }

  /** Deletes the record, and the registry directory once it is empty (nothing is left behind). */
  remove(): void {
    rmSync(this.file, { force: true });
    removeRegistryDirIfEmpty();
  }

  private save(): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.data));
    renameSync(tmp, this.file);
  }
}

function selfId(): ProcessId {
  return { pid: process.pid, start: processStartTime(process.pid) ?? "" };
}

function sameProcess(id: ProcessId): boolean {
  return isAlive(id.pid) && processStartTime(id.pid) === id.start;
}

/** Names from `ip netns list` that start with `${prefix}-`. */
export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  const { stdout } = await run(["ip", "netns", "list"]);
  return stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`${prefix}-`));
}

/** PIDs of the processes inside a named namespace (they can only be ours: the namespace is ours). */
export async function pidsInNamespace(ns: string): Promise<number[]> {
  const { stdout } = await run(["ip", "netns", "pids", ns]);
  return stdout
    .split("\n")
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 1 && pid !== process.pid);
}

/**
 * Reaps the labs whose owner is gone, and those a reaper that died left half done. Returns their
 * prefixes. Never throws.
 */
export async function reapAbandonedLabs(): Promise<string[]> {
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR);
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const file of files) {
    const m = /^tr[0-9a-f]{4}\.json(?:\.reaping\.(\d+))?$/.exec(file);
    if (!m || (m[1] !== undefined && isAlive(Number(m[1])))) continue;
    const path = join(REGISTRY_DIR, file);
    let data: RecordData;
    try {
      data = JSON.parse(readFileSync(path, "utf8")) as RecordData;
    } catch {
      continue; // being written, or not ours to judge
    }
    if (sameProcess(data.owner)) continue;
    // Take it over atomically so that two reapers never work on one lab.
    const claimed = join(REGISTRY_DIR, `${data.prefix}.json.reaping.${process.pid}`);
    try {
      renameSync(path, claimed);
    } catch {
      continue;
    }
    await reapLab(data);
    rmSync(claimed, { force: true });
    reaped.push(data.prefix);
  }
  removeRegistryDirIfEmpty();
  return reaped;
}

function removeRegistryDirIfEmpty(): void {
  try {
    rmdirSync(REGISTRY_DIR);
  } catch {
    // not empty: other labs are live
  }
}

async function reapLab(data: RecordData): Promise<void> {
  for (const proc of data.processes) {
    if (sameProcess(proc)) signalPid(proc.pid, "SIGKILL");
  }
  for (const ns of await namespacesWithPrefix(data.prefix)) {
    for (const pid of await pidsInNamespace(ns)) signalPid(pid, "SIGKILL");
    await run(["ip", "netns", "del", ns]);
  }
  if (data.dir?.includes(data.prefix)) rmSync(data.dir, { recursive: true, force: true });
}
