/** Command-line flags of `npm run chaos`. */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

export interface ChaosOptions {
  nodes: number;
  cycles: number;
  seed: number;
  /** Seconds. */
  minFault: number;
  maxFault: number;
  /** Share of cycles that are short partitions or isolations, 0..1. */
  shortShare: number;
  /** Seconds; short faults last 1 s to this. */
  shortMax: number;
  convergeTimeout: number;
  settle: number;
  /** Absolute path, or null. */
  json: string | null;
  keep: boolean;
  cleanup: boolean;
  help: boolean;
}

export class UsageError extends Error {}

export const USAGE = `usage: npm run chaos -- [flags]   (Linux, root, iproute2)
  --nodes N              masternodes, 3..32 (default 6)
  --cycles C             fault cycles (default 30)
  --seed S               RNG seed, 0..4294967295 (default: random, printed)
  --min-fault S          shortest long fault, seconds (default 10)
  --max-fault S          longest long fault, seconds (default 40)
  --short-share F        share of cycles that are 1..--short-max s partitions/isolations (default 0.3)
  --short-max S          longest short fault, seconds (default 4)
  --converge-timeout S   give up waiting for one tip after this, seconds (default 60)
  --settle S             pause after convergence, seconds (default 5)
  --json FILE            write the full report as JSON
  --keep                 keep the temporary directory (data dirs, logs) after a passing run
  --cleanup              only remove leftovers of earlier runs (namespaces, processes), then exit
  --help                 this text`;

function num(
  raw: string | undefined,
  flag: string,
  dflt: number,
  min: number,
  max: number,
  integer = false,
): number {
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new UsageError(`${flag} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}`);
  }
  return v;
}

export function parseOptions(argv: readonly string[]): ChaosOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        nodes: { type: "string" },
        cycles: { type: "string" },
        seed: { type: "string" },
        "min-fault": { type: "string" },
        "max-fault": { type: "string" },
        "short-share": { type: "string" },
        "short-max": { type: "string" },
        "converge-timeout": { type: "string" },
        settle: { type: "string" },
        json: { type: "string" },
        keep: { type: "boolean" },
        cleanup: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const s = (k: string): string | undefined => {
    const v = values[k];
    return typeof v === "string" ? v : undefined;
  };
  const o: ChaosOptions = {
    nodes: num(s("nodes"), "--nodes", 6, 3, 32, true),
    cycles: num(s("cycles"), "--cycles", 30, 1, 10_000, true),
    seed: num(s("seed"), "--seed", randomBytes(4).readUInt32BE(0), 0, 0xffffffff, true),
    minFault: num(s("min-fault"), "--min-fault", 10, 0.5, 3600),
    maxFault: num(s("max-fault"), "--max-fault", 40, 0.5, 3600),
    shortShare: num(s("short-share"), "--short-share", 0.3, 0, 1),
    shortMax: num(s("short-max"), "--short-max", 4, 1, 600),
    convergeTimeout: num(s("converge-timeout"), "--converge-timeout", 60, 1, 3600),
    settle: num(s("settle"), "--settle", 5, 0, 3600),
    json: s("json") !== undefined ? resolve(s("json")!) : null,
    keep: values.keep === true,
    cleanup: values.cleanup === true,
    help: values.help === true,
  };
  if (o.maxFault < o.minFault) throw new UsageError("--max-fault must be at least --min-fault");
  return o;
}
