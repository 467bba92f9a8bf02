/**
 * Benchmark harness: `npm run bench [-- --json] [-- --only SUBSTRING]`.
 *
 * Each figure group is one file under bench/ exporting a BenchGroup; add a new one to GROUPS
 * below. Groups run in this order, and a later group can reuse an earlier figure through
 * ctx.results. stdout carries only the table, or with --json one {"name","value","unit"} object
 * per line; progress goes to stderr. Benchmarks are not tests: `npm test` never runs them.
 */
import { codecBench } from "./codec.js";
import { finalityBench } from "./finality.js";
import { ibdBench } from "./ibd.js";
import { importBench } from "./import.js";
import { TempDirs, type BenchContext, type BenchGroup, type Figure } from "./lib.js";
import { masternodeBench } from "./masternode.js";
import { mempoolBench } from "./mempool.js";
import { p2pBench } from "./p2p.js";
import { sigVerifyBench } from "./sigVerify.js";
import { scaleBench } from "./scale.js";
import { syncBench } from "./sync.js";

const GROUPS: readonly BenchGroup[] = [
  sigVerifyBench,
  codecBench,
  importBench,
  p2pBench,
  mempoolBench,
  masternodeBench,
  finalityBench,
  syncBench,
  ibdBench,
  scaleBench,
];

interface Options {
  json: boolean;
  only: string[];
}

const USAGE =
  "usage: npm run bench -- [--json] [--only SUBSTRING]... (figures: " + allFigures().join(", ") + ")";

function allFigures(): string[] {
  return GROUPS.flatMap((g) => g.figures);
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { json: false, only: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") opts.json = true;
    else if (a === "--only") {
      const v = argv[++i];
      if (v === undefined || v === "") throw new UsageError("--only needs a substring");
      opts.only.push(v);
    } else if (a.startsWith("--only=")) opts.only.push(a.slice("--only=".length));
    else if (a === "--help" || a === "-h") throw new UsageError("");
    else throw new UsageError(`unknown argument ${a}`);
  }
  return opts;
}

class UsageError extends Error {}

function formatValue(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return v.toLocaleString("en-US", { maximumFractionDigits: 3 });
}

function table(figures: readonly Figure[]): string {
  const head = ["name", "value", "unit", "note"];
  const rows = figures.map((f) => [f.name, formatValue(f.value), f.unit, f.note ?? ""]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (c === 1 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message) process.stderr.write(`bench: ${e.message}\n`);
    process.stderr.write(USAGE + "\n");
    return e.message ? 2 : 0;
  }
  const wants = (name: string): boolean => opts.only.length === 0 || opts.only.some((s) => name.includes(s));
  const groups = GROUPS.filter((g) => g.figures.some(wants) && (!g.explicitOnly || opts.only.length > 0));
  if (groups.length === 0) {
    process.stderr.write(`bench: no figure matches ${opts.only.join(", ")}\n${USAGE}\n`);
    return 2;
  }

  const temp = new TempDirs();
  const onSignal = (sig: NodeJS.Signals): void => {
    temp.cleanup();
    process.stderr.write(`bench: interrupted by ${sig}\n`);
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const results = new Map<string, Figure>();
  const ctx: BenchContext = {
    results,
    log: (msg) => process.stderr.write(`[bench] ${msg}\n`),
    tempDir: (prefix) => temp.make(prefix),
    wants,
  };
  const reported: Figure[] = [];
  const start = performance.now();
  try {
    for (const g of groups) {
      const t0 = performance.now();
      const figures = await g.run(ctx);
      for (const f of figures) {
        results.set(f.name, f);
        if (!wants(f.name)) continue;
        reported.push(f);
        if (opts.json)
          process.stdout.write(JSON.stringify({ name: f.name, value: f.value, unit: f.unit }) + "\n");
      }
      ctx.log(`${g.name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    temp.cleanup();
  }
  if (!opts.json) process.stdout.write(table(reported) + "\n");
  ctx.log(`total ${((performance.now() - start) / 1000).toFixed(1)} s`);
  return 0;
}

process.exitCode = await main();
