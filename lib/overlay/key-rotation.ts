/**
 * `trellis cluster rotate-key`: replaces the gossip key on every member without a restart. The new
 * key travels in the replicated table, so it only ever crosses the wire encrypted with the current
 * key. Three phases, each acknowledged by every live member before the next starts, so the cluster
 * never stops understanding itself:
 *   install — every member adds the new key (decrypts both, still sends with the old)
 *   use     — every member sends with the new key and writes it to its --gossip-key file
 *   retire  — every member drops every other key
 * A member that is down during a rotation needs the new key file to rejoin.
 */
import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";
import { exhausted, invalid, messageOf } from "../common/errors.js";
import type { Cluster } from "./cluster.js";
import { Keyring, type TableEntry } from "./gossip/index.js";

const KEYSPACE = "keyring";
const ACKS = "keyring-ack";
type Phase = "install" | "use" | "retire";
const PHASES: Phase[] = ["install", "use", "retire"];
/** How long each phase waits for every live member's acknowledgement. */
const PHASE_TIMEOUT_MS = 15_000;

interface Rotation {
  id: string;
  key: string;
  phase: Phase;
}

function isRotation(v: unknown): v is Rotation {
  const r = v as Rotation | undefined;
  return typeof r?.id === "string" && typeof r.key === "string" && PHASES.includes(r.phase);
}

export class KeyRotation {
  constructor(
    private readonly cluster: Cluster,
    private readonly keyFile: string | undefined,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.cluster.node.table.on("change", (ev) => this.onChange(ev));
  }

  private onChange(ev: TableEntry): void {
    if (ev.keyspace !== KEYSPACE || ev.deleted || !isRotation(ev.value)) return;
    try {
      this.apply(ev.value);
    } catch (err) {
      this.log.error({ err: messageOf(err), phase: ev.value.phase }, "gossip key rotation step failed");
    }
  }

  private apply(r: Rotation): void {
    const keyring = this.cluster.node.keyring;
    if (!keyring) return;
    const key = Keyring.parseKey(r.key);
    if (r.phase === "install") keyring.add(key);
    if (r.phase === "use") {
      keyring.add(key);
      keyring.use(key);
      this.persist(r.key);
    }
    if (r.phase === "retire") {
      for (const other of keyring.list()) if (Buffer.compare(other, key) !== 0) keyring.remove(other);
    }
    this.cluster.node.table.set(ACKS, `${r.id}/${r.phase}/${this.cluster.self}`, 1);
    this.log.info({ rotation: r.id, phase: r.phase }, "gossip key rotation step done");
  }

  /** So a restart comes back with the key the cluster now speaks. */
  private persist(base64: string): void {
    if (!this.keyFile) return;
    const tmp = `${this.keyFile}.new`;
    writeFileSync(tmp, `${base64}\n`, { mode: 0o600 });
    renameSync(tmp, this.keyFile);
  }

  /** Runs the three phases from this member; resolves with how many members took part. */
  async rotate(newKeyBase64?: string): Promise<number> {
    if (!this.cluster.node.keyring) {
      throw invalid("gossip is not encrypted: start every trellisd with --gossip-key FILE before rotating");
    }
    const key = newKeyBase64 ?? randomBytes(32).toString("base64");
    Keyring.parseKey(key); // validates
    const id = randomBytes(6).toString("hex");
    let members = 0;
    for (const phase of PHASES) {
      this.cluster.node.table.set(KEYSPACE, "rotation", { id, key, phase });
      members = await this.waitForAcks(id, phase);
    }
    return members;
  }

  private async waitForAcks(id: string, phase: Phase): Promise<number> {
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      const live = this.cluster.members().filter((m) => m.state === "alive" || m.state === "suspect");
      const missing = live.filter((m) => {
        const ack = this.cluster.node.table.get(ACKS, `${id}/${phase}/${m.name}`);
        return ack === undefined || ack.deleted;
      });
      if (missing.length === 0) return live.length;
      if (Date.now() > deadline) {
        throw exhausted(
          `key rotation stopped in phase "${phase}": no acknowledgement from ${missing.map((m) => m.name).join(", ")}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
