/**
 * Turns the repeated --subnet/--gateway/--ip-range flags of `network create` into IPAM config
 * entries. As in Docker's CLI the flags are not paired by position: each gateway and range goes
 * to the one subnet that contains it, so `--subnet A --subnet B --gateway <in B>` is valid.
 */
import { flagValue } from "./args.js";
import { UsageError } from "./errors.js";
import { type Cidr, cidrContainsIp, cidrsOverlap, cidrWithin, type Ip, parseCidr, parseIp } from "./ip.js";

export interface IpamConfigEntry {
  Subnet: string;
  Gateway?: string;
  IPRange?: string;
}

export interface IpamFlags {
  subnets: readonly string[];
  gateways: readonly string[];
  ipRanges: readonly string[];
}

interface Slot {
  text: string;
  cidr: Cidr;
  entry: IpamConfigEntry;
}

function parseSubnets(subnets: readonly string[]): Slot[] {
  const slots: Slot[] = [];
  for (const text of subnets) {
    const cidr = flagValue("--subnet", text, parseCidr);
    const clash = slots.find((s) => cidrsOverlap(s.cidr, cidr));
    if (clash) throw new UsageError(`invalid --subnet "${text}": overlaps --subnet "${clash.text}"`);
    slots.push({ text, cidr, entry: { Subnet: text } });
  }
  return slots;
}

function assignRange(slots: Slot[], text: string): void {
  const range = flagValue("--ip-range", text, parseCidr);
  const slot = slots.find((s) => cidrWithin(range, s.cidr));
  if (!slot) throw new UsageError(`invalid --ip-range "${text}": not inside any --subnet`);
  if (slot.entry.IPRange !== undefined) {
    throw new UsageError(
      `invalid --ip-range "${text}": --subnet "${slot.text}" already has --ip-range "${slot.entry.IPRange}"`,
    );
  }
  slot.entry.IPRange = text;
}

function assignGateway(slots: Slot[], text: string): void {
  const ip: Ip = flagValue("--gateway", text, parseIp);
  const slot = slots.find((s) => cidrContainsIp(s.cidr, ip));
  if (!slot) throw new UsageError(`invalid --gateway "${text}": not inside any --subnet`);
  if (slot.entry.Gateway !== undefined) {
    throw new UsageError(
      `invalid --gateway "${text}": --subnet "${slot.text}" already has --gateway "${slot.entry.Gateway}"`,
    );
  }
  slot.entry.Gateway = text;
}

/** Docker rejects this up front: every gateway or range needs a subnet of its own. */
function tooMany(flag: string, values: readonly string[], subnets: number): void {
  if (values.length <= subnets) return;
  throw new UsageError(
    `invalid ${flag} "${values[values.length - 1]}": more ${flag} values (${values.length}) than --subnet values (${subnets})`,
  );
}

/** IPAM `Config` entries in --subnet order; throws UsageError naming the offending value. */
export function pairIpamConfig(flags: IpamFlags): IpamConfigEntry[] {
  const slots = parseSubnets(flags.subnets);
  tooMany("--gateway", flags.gateways, slots.length);
  tooMany("--ip-range", flags.ipRanges, slots.length);
  for (const text of flags.ipRanges) assignRange(slots, text);
  for (const text of flags.gateways) assignGateway(slots, text);
  return slots.map((s) => s.entry);
}
