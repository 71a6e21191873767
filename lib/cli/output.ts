/** Output formatting shared by the read commands; pure functions over strings. */

/**
 * Columns laid out like Docker's tabwriter (minwidth 10, padding 3): every column but the last
 * is as wide as its widest cell plus 3, and at least 10. The last column is not padded.
 */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(10, ...all.map((row) => (row[col] ?? "").length + 3)));
  const last = header.length - 1;
  const lines = all.map((row) =>
    row.map((cell, col) => (col === last ? cell : cell.padEnd(widths[col]!))).join(""),
  );
  return `${lines.join("\n")}\n`;
}

/** Pretty JSON with 4-space indentation, as `docker network inspect` prints it. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 4)}\n`;
}

/** The 12-character short ID Docker shows in lists. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}

/**
 * "net2" before "net10": digit runs compare by value, everything else by code unit.
 * Docker sorts `network ls` this way; Intl.Collator would do too but costs start-up time.
 */
export function naturalCompare(a: string, b: string): number {
  const chunk = /(\d+|\D+)/g;
  const as = a.match(chunk) ?? [];
  const bs = b.match(chunk) ?? [];
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i]!;
    const y = bs[i]!;
    if (x === y) continue;
    const xd = /^\d/.test(x);
    const yd = /^\d/.test(y);
    if (xd && yd) {
      const diff = BigInt(x) - BigInt(y);
      if (diff !== 0n) return diff < 0n ? -1 : 1;
    }
    return x < y ? -1 : 1;
  }
  return as.length - bs.length;
}
