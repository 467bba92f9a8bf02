/**
 * Shared pieces of the benchmark harness (`npm run bench`). A figure group is one file under
 * bench/ exporting a BenchGroup; bench/run.ts lists the groups in order. Progress goes to stderr
 * through ctx.log; stdout is reserved for the table or the JSON lines.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One measured figure: one row of the table, one JSON line with --json. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** Shown in the table only (floors, what was measured). */
  note?: string;
}

export interface BenchContext {
  /** Figures measured so far in this run, by name, so a later group can reuse an earlier one. */
  readonly results: ReadonlyMap<string, Figure>;
  /** Progress line on stderr. */
  log(msg: string): void;
  /** A fresh temporary directory, removed when the run ends (also on error or Ctrl-C). */
  tempDir(prefix: string): string;
  /** Whether the figure is selected by --only (a group may skip work for unselected figures). */
  wants(name: string): boolean;
}

export interface BenchGroup {
  /** Short label for progress output. */
  name: string;
  /** Every figure the group can report; the group runs when --only selects at least one. */
  figures: readonly string[];
  run(ctx: BenchContext): Promise<Figure[]> | Figure[];
  /** Minutes long: runs only when --only names one of its figures, never in the default run. */
  explicitOnly?: boolean;
}

export interface RateResult {
  /** Operations per second. */
  rate: number;
  ops: number;
  seconds: number;
}

/**
 * Calls `op` repeatedly for about `seconds` (after `warmupOps` untimed calls) and returns the rate.
 * The clock is read once per call; keep `op` well above a microsecond.
 */
export function measureRate(
  op: (i: number) => void,
  opts: { seconds: number; warmupOps?: number },
): RateResult {
  for (let i = 0; i < (opts.warmupOps ?? 0); i++) op(i);
  const budget = opts.seconds * 1000;
  const start = performance.now();
  let now = start;
  let ops = 0;
  while (now - start < budget) {
    op(ops);
    ops++;
    now = performance.now();
  }
  const seconds = (now - start) / 1000;
  return { rate: ops / seconds, ops, seconds };
}

/** Temp directories for one run, with one cleanup for all of them. */
export class TempDirs {
  private readonly dirs: string[] = [];

  make(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The nearest-rank percentile `p` (0..1] of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of nothing");
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1]!;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
