/**
 * Scenarios and the report. A scenario is a named, documented file in scenarios/ that drives a
 * Simulator for a length of virtual time: it injects its faults and states its own expectations
 * on top of the invariants every run checks. runScenario builds the simulator, runs one and
 * returns the report (printed as a table, or JSON with --json).
 */
import { performance } from "node:perf_hooks";
import { MsgType } from "../../src/p2p/messageTypes.js";
import { InvariantViolation, type InvariantName } from "./invariants.js";
import { SEALED, Simulator, type SimOptions } from "./simulator.js";

export interface ScenarioContext {
  /** How long to run, virtual ms (from --blocks × block time, or --duration). */
  durationMs: number;
}

export interface Scenario {
  name: string;
  /** One line: what it does to the network. */
  summary: string;
  /** Options this scenario needs unless the command line says otherwise. */
  defaults?: Partial<SimOptions>;
  run(sim: Simulator, ctx: ScenarioContext): Promise<void>;
}

export interface Distribution {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface SimReport {
  scenario: string;
  seed: number;
  nodes: number;
  masternodes: number;
  blockTimeMs: number;
  store: SimOptions["store"];
  transport: SimOptions["transport"];
  virtualS: number;
  wallS: number;
  /** Virtual seconds per wall second: above 1 is faster than real time. */
  speedup: number;
  peakRssMiB: number;
  peakHeapMiB: number;
  /** Height the honest nodes reached (the highest honest tip). */
  height: number;
  /** Blocks the run produced on the honest best chain. */
  blocks: number;
  tipSpread: Distribution;
  healMs: Distribution;
  /** The lowest final height among running honest nodes at the end. */
  finalHeight: number;
  /** Virtual ms from a height's first block reaching any honest node to its first finalisation. */
  finalityLagMs: Distribution;
  reorgDepth: Distribution;
  messagesPerBlockPerNode: number;
  bytesPerBlockPerNode: number;
  /** Frames per block per node by message type, largest first. */
  framesByType: Record<string, number>;
  /** Goodbyes sent over the run, by reason (connection churn). */
  goodbyes: Record<string, number>;
  invariantsChecked: Record<InvariantName, number>;
  /** Signature checks answered by the cache shared across simulated nodes (null: no cache). */
  verifyCache: { hits: number; misses: number } | null;
  traceHash: string;
  steps: number;
  violation: string | null;
}

export function distribution(xs: readonly number[]): Distribution {
  if (xs.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}

export function reproduceCommand(scenario: string, o: Partial<SimOptions>, durationMs: number): string {
  const parts = [`npm run sim --`, `--scenario ${scenario}`, `--seed ${o.seed}`];
  if (o.nodes !== undefined) parts.push(`--nodes ${o.nodes}`);
  if (o.masternodes !== undefined) parts.push(`--masternodes ${o.masternodes}`);
  if (o.blockTimeMs !== undefined) parts.push(`--block-time ${o.blockTimeMs / 1000}`);
  if (o.store !== undefined && o.store !== "memory") parts.push(`--store ${o.store}`);
  if (o.transport !== undefined && o.transport !== "plaintext") parts.push(`--transport ${o.transport}`);
  parts.push(`--duration ${durationMs / 1000}`);
  return parts.join(" ");
}

/** Builds a simulator, runs the scenario, and reports; a violation is reported, not thrown. */
export async function runScenario(
  scenario: Scenario,
  options: Partial<SimOptions>,
  ctx: ScenarioContext,
): Promise<SimReport> {
  const opts = { ...scenario.defaults, ...options };
  const wallStart = performance.now();
  const sim = await Simulator.create(opts);
  sim.invariants.reproduce = reproduceCommand(scenario.name, sim.opts, ctx.durationMs);
  const startHeight = 0;
  let violation: string | null = null;
  try {
    await scenario.run(sim, ctx);
  } catch (e) {
    if (!(e instanceof InvariantViolation)) {
      violation = `scenario failed at virtual time ${((sim.clock.now() - sim.startMs) / 1000).toFixed(3)} s: ${(e as Error).message}\nreproduce: ${sim.invariants.reproduce}`;
    } else {
      violation = e.message;
    }
    violation += `\n${sim.describe().split("\n").slice(0, 40).join("\n")}`;
    violation += recentLogs(sim);
  }
  const honest = sim.honestRunning();
  const height = honest.reduce((m, n) => Math.max(m, n.n.chain.height), 0);
  const wallS = (performance.now() - wallStart) / 1000;
  const virtualS = (sim.clock.now() - sim.startMs) / 1000;
  const nodes = sim.nodes.length;
  const blocks = Math.max(1, height - startHeight);
  const report: SimReport = {
    scenario: scenario.name,
    seed: sim.opts.seed,
    nodes,
    masternodes: sim.opts.masternodes,
    blockTimeMs: sim.opts.blockTimeMs,
    store: sim.opts.store,
    transport: sim.opts.transport,
    virtualS,
    wallS,
    speedup: virtualS / wallS,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    peakHeapMiB: sim.invariants.peakHeapBytes / 2 ** 20,
    height,
    blocks: height - startHeight,
    tipSpread: distribution(sim.invariants.spreads),
    healMs: distribution(sim.invariants.healTimes),
    finalHeight: honest.reduce(
      (m, n) => Math.min(m, n.n.chain.finality.finalizedHeight),
      honest.length ? Infinity : 0,
    ),
    finalityLagMs: distribution(sim.invariants.finalityLags),
    reorgDepth: distribution(sim.invariants.reorgDepths),
    messagesPerBlockPerNode: sim.net.stats.writes / blocks / nodes,
    bytesPerBlockPerNode: sim.net.stats.bytes / blocks / nodes,
    framesByType: Object.fromEntries(
      [...sim.framesByType]
        .sort((a, b) => b[1].frames - a[1].frames)
        .map(([t, v]) => [
          t === SEALED
            ? "sealed"
            : ((MsgType as unknown as Record<number, string>)[t] ?? `0x${t.toString(16)}`),
          v.frames / blocks / nodes,
        ]),
    ),
    goodbyes: Object.fromEntries([...sim.goodbyes].sort((a, b) => b[1] - a[1])),
    invariantsChecked: { ...sim.invariants.checks },
    verifyCache: sim.verifyCache ? { hits: sim.verifyCache.hits, misses: sim.verifyCache.misses } : null,
    traceHash: sim.traceHash(),
    steps: sim.steps,
    violation,
  };
  await sim.stop();
  return report;
}

/** Each node's last kept log lines (at --log-level), newest last, for a violation report. */
function recentLogs(sim: Simulator): string {
  const out: string[] = [];
  for (const n of sim.nodes) {
    const lines = n.log.recent().slice(-12);
    if (lines.length === 0) continue;
    out.push(`--- ${n.name} (last ${lines.length} log lines at ${n.log.level} and above)`);
    for (const l of lines)
      out.push(
        `${(l.at - sim.startMs) / 1000}s ${l.level} ${l.msg} ${JSON.stringify(l.ctx, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`,
      );
  }
  return out.length ? `\n${out.join("\n")}` : "";
}

export function formatReport(r: SimReport): string {
  const d = (x: Distribution, unit = ""): string =>
    x.count === 0 ? "none" : `p50 ${x.p50}${unit}  p99 ${x.p99}${unit}  max ${x.max}${unit}  (${x.count})`;
  const rows: Array<[string, string]> = [
    ["scenario", `${r.scenario} (seed ${r.seed})`],
    ["nodes", `${r.nodes} (${r.masternodes} masternodes, ${r.nodes - r.masternodes} full nodes)`],
    ["block time", `${r.blockTimeMs / 1000} s, store ${r.store}, ${r.transport} sessions`],
    ["virtual time", `${r.virtualS.toFixed(1)} s`],
    ["wall time", `${r.wallS.toFixed(1)} s  (${r.speedup.toFixed(2)}× real time)`],
    ["peak RSS", `${r.peakRssMiB.toFixed(0)} MiB (heap peak ${r.peakHeapMiB.toFixed(0)} MiB)`],
    ["height", `${r.height} (${r.blocks} blocks)`],
    ["tip spread (blocks)", d(r.tipSpread)],
    ["heal time", d(r.healMs, " ms")],
    ["final height", `${r.finalHeight} (finality lag ${d(r.finalityLagMs, " ms")})`],
    ["reorg depth", d(r.reorgDepth)],
    ["messages / block / node", r.messagesPerBlockPerNode.toFixed(1)],
    ["bytes / block / node", r.bytesPerBlockPerNode.toFixed(0)],
    [
      "  by type (frames)",
      Object.entries(r.framesByType)
        .slice(0, 8)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(", "),
    ],
    [
      "goodbyes",
      Object.entries(r.goodbyes)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ") || "none",
    ],
    [
      "invariants checked",
      Object.entries(r.invariantsChecked)
        .map(([k, v]) => `${k} ${v}`)
        .join(", "),
    ],
    [
      "signature cache",
      r.verifyCache
        ? `shared across simulated nodes: ${r.verifyCache.hits} hits, ${r.verifyCache.misses} verified`
        : "off",
    ],
    ["trace hash", r.traceHash],
    ["result", r.violation ? "VIOLATION" : "ok"],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const table = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
  return r.violation ? `${table}\n\n${r.violation}` : table;
}
