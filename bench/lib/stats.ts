/** Summaries of latency samples (milliseconds) and the small formatting helpers the report shares. */

export interface Summary {
  /** How many samples. */
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

/**
 * The q-quantile (0..1) of ascending `sorted`, interpolated linearly between the two closest ranks
 * (the usual "type 7" definition, as in R and NumPy). NaN for no samples.
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((acc, x) => acc + x, 0);
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
  };
}

/** Milliseconds since `start` (a process.hrtime.bigint() reading). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** "3.14" / "42.1" / "1234": three significant digits for small values, none wasted on big ones. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

/** "3.14 / 5.20 ms" */
export function fmtP50P95(s: Summary | undefined): string {
  if (!s || s.n === 0) return "—";
  return `${fmtMs(s.p50)} / ${fmtMs(s.p95)} ms`;
}

/** "12.3×"; "—" when either side is missing. */
export function fmtRatio(ratio: number | undefined): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return "—";
  return `${ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(1)}×`;
}

/** Renders rows as a text table with a header rule; every column left-aligned to its widest cell. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join(" | ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("-|-");
  return [line(header), rule, ...rows.map(line)].join("\n");
}
