/**
 * npm run sim: the deterministic network simulator (docs/SIMULATION.md).
 *
 *   npm run sim -- --scenario partition --nodes 100 --masternodes 20 --blocks 50 --seed 7
 *   npm run sim -- --list
 *
 * Exits 1 when an invariant or the scenario's own expectation fails; the output names the seed,
 * the virtual time and the command that repeats the run.
 */
import { performance } from "node:perf_hooks";
import { Command, InvalidArgumentError } from "commander";
import { formatReport, runScenario } from "./scenario.js";
import { SCENARIOS } from "./scenarios/index.js";
import { defaultSimOptions, type SimOptions } from "./simulator.js";

const int = (what: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min)
    throw new InvalidArgumentError(`${what} must be an integer >= ${min}`);
  return n;
};
const num = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a number > 0`);
  return n;
};

const program = new Command("sim")
  .description("Run real TimeNodes on a simulated network and virtual clock")
  .option("--scenario <name>", "which scenario (see --list)", "steady")
  .option("--nodes <n>", "nodes, masternodes included", int("--nodes", 1))
  .option("--masternodes <n>", "masternodes (the first n nodes)", int("--masternodes", 1))
  .option("--blocks <n>", "run for n block times", int("--blocks", 1))
  .option("--duration <seconds>", "run for this much virtual time", num("--duration"))
  .option("--block-time <seconds>", "block time", num("--block-time"))
  .option("--seed <n>", "the seed: one seed, one run", int("--seed", 0), 1)
  .option("--store <kind>", "memory or lmdb")
  .option("--transport <mode>", "plaintext (default) or encrypted sessions")
  .option("--max-outbound <n>", "[network] max_outbound for every node", int("--max-outbound", 1))
  .option("--no-verify-cache", "verify every signature in every node (no shared cache)")
  .option("--log-level <level>", "node log level kept for a violation report")
  .option("--json", "print the report as JSON")
  .option(
    "--progress <seconds>",
    "print a progress line to stderr every this many virtual seconds",
    num("--progress"),
  )
  .option("--list", "list the scenarios");

program.parse();
const o = program.opts<{
  scenario: string;
  nodes?: number;
  masternodes?: number;
  blocks?: number;
  duration?: number;
  blockTime?: number;
  seed: number;
  store?: string;
  transport?: string;
  maxOutbound?: number;
  verifyCache: boolean;
  logLevel?: string;
  json?: boolean;
  list?: boolean;
  progress?: number;
}>();

if (o.list) {
  for (const s of Object.values(SCENARIOS)) console.log(`${s.name.padEnd(14)} ${s.summary}`);
  process.exit(0);
}
const scenario = SCENARIOS[o.scenario];
if (!scenario) {
  console.error(`sim: no scenario "${o.scenario}"; one of ${Object.keys(SCENARIOS).join(", ")}`);
  process.exit(2);
}
if (o.store !== undefined && o.store !== "memory" && o.store !== "lmdb") {
  console.error(`sim: --store must be memory or lmdb, got "${o.store}"`);
  process.exit(2);
}
const options: Partial<SimOptions> = { seed: o.seed, sharedVerifyCache: o.verifyCache };
if (o.nodes !== undefined) options.nodes = o.nodes;
if (o.masternodes !== undefined) options.masternodes = o.masternodes;
else if (o.nodes !== undefined) options.masternodes = Math.max(1, Math.min(o.nodes, Math.ceil(o.nodes / 10)));
if (o.blockTime !== undefined) options.blockTimeMs = Math.round(o.blockTime * 1000);
if (o.store !== undefined) options.store = o.store as SimOptions["store"];
if (o.transport !== undefined && o.transport !== "plaintext" && o.transport !== "encrypted") {
  console.error(`sim: --transport must be plaintext or encrypted, got "${o.transport}"`);
  process.exit(2);
}
if (o.transport !== undefined) options.transport = o.transport as SimOptions["transport"];
if (o.maxOutbound !== undefined) options.maxOutbound = o.maxOutbound;
if (o.logLevel !== undefined) options.logLevel = o.logLevel as SimOptions["logLevel"];
if (o.progress !== undefined) {
  const wall0 = performance.now();
  options.progressEveryMs = o.progress * 1000;
  options.onProgress = (sim) => {
    const honest = sim.honestRunning();
    const heights = honest.map((n) => n.n.chain.height);
    console.error(
      `[sim] virtual ${((sim.clock.now() - sim.startMs) / 1000).toFixed(0)} s, wall ${((performance.now() - wall0) / 1000).toFixed(1)} s, ` +
        `height ${Math.min(...heights)}..${Math.max(...heights)}, ${sim.net.connectionCount / 2} links, ` +
        `heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB`,
    );
  };
}
const blockTimeMs = options.blockTimeMs ?? scenario.defaults?.blockTimeMs ?? defaultSimOptions.blockTimeMs;
const durationMs = o.duration !== undefined ? Math.round(o.duration * 1000) : (o.blocks ?? 30) * blockTimeMs;

const report = await runScenario(scenario, options, { durationMs });
console.log(o.json ? JSON.stringify(report, null, 2) : formatReport(report));
process.exit(report.violation ? 1 : 0);
