/** The campaign report: per-cycle records, the summary, and how both are printed. */
import type { Fault } from "./faults.js";
import type { VerifyResult } from "./nodes.js";
import type { BanRecord, LogBanRecord, ReorgRecord } from "./observe.js";

/** A cycle "converged quickly" when one tip was reached within this of the heal. */
export const QUICK_CONVERGE_MS = 10_000;

export interface NetState {
  links: number;
  possible: number;
  linkPairs: string[];
  /** Bans in force (every node's listbanned). */
  bans: number;
  heights: Array<number | null>;
}

export interface KillRecord {
  node: number;
  heightBefore: number | null;
  heightAfter: number | null;
  lostBlocks: number;
  /** From the restart until the first successful getblockcount. */
  rpcUpMs: number | null;
}

export interface CycleReport {
  cycle: number;
  fault: Fault;
  description: string;
  startedAt: string;
  healedAt: string | null;
  before: NetState;
  /** listbanned on every node before the fault. */
  beforeBans: BanRecord[];
  /** Cut short by Ctrl-C or a harness error: left out of the convergence figures. */
  interrupted: boolean;
  converged: boolean;
  /** From the heal until every node reported the same best block hash. */
  convergeMs: number | null;
  tip: string | null;
  tipHeight: number | null;
  /** Each node's tip when the wait gave up (null = no answer); only when not converged. */
  tipsAtTimeout: Array<string | null> | null;
  after: NetState | null;
  /** Bans in listbanned after the cycle that were not there before. */
  newBans: BanRecord[];
  /** Bans there before and gone after (expired, or lost by kill -9 before banlist.json was saved). */
  goneBans: BanRecord[];
  /** Bans the node logs ("Banned …" lines) during the cycle, one per ban. */
  logBans: LogBanRecord[];
  reorgs: ReorgRecord[];
  disconnects: Record<string, number>;
  kill: KillRecord | null;
  /** Node exits the harness did not cause. */
  crashes: string[];
  errors: string[];
}

export interface WarmupReport {
  seconds: number;
  ok: boolean;
  state: NetState | null;
  bans: BanRecord[];
  logBans: LogBanRecord[];
  problem: string | null;
}

export interface TipGroup {
  tip: string | null;
  height: number | null;
  nodes: number[];
}

export interface Summary {
  seed: number;
  nodes: number;
  cyclesPlanned: number;
  cyclesRun: number;
  interrupted: boolean;
  faults: Record<string, number>;
  convergedQuickly: number;
  convergeMaxMs: number | null;
  convergeMedianMs: number | null;
  notConverged: number[];
  finalTips: TipGroup[];
  permanentFork: boolean;
  bansBetweenNodes: number;
  bansByReason: Record<string, number>;
  otherBans: number;
  logBanLines: number;
  maxReorgDepth: number;
  lostBlocks: number;
  verify: VerifyResult[];
  finalLinks: { links: number; possible: number } | null;
  crashes: string[];
  failures: string[];
  logDir: string;
}

export interface Report {
  prefix: string;
  dir: string;
  genesis: string;
  options: unknown;
  warmup: WarmupReport | null;
  cycles: CycleReport[];
  summary: Summary | null;
}

const s1 = (ms: number | null): string => (ms === null ? "-" : `${(ms / 1000).toFixed(2)} s`);
const short = (h: string | null | undefined): string => (h ? h.slice(0, 8) : "none");
/** Console lines stay readable; the JSON report keeps every value whole. */
const clip = (v: unknown): string => {
  const t = typeof v === "string" ? v : JSON.stringify(v);
  return t.length > 160 ? `${t.slice(0, 160)}…` : t;
};

/** Groups reasons that differ only in a hash or a number inside them. */
export function reasonGroup(reason: string): string {
  return reason.replace(/[0-9a-f]{16,}/gi, "…").replace(/\d+(\.\d+)?/g, "N");
}

function heightRange(hs: ReadonlyArray<number | null>): string {
  const known = hs.filter((h): h is number => h !== null);
  if (known.length === 0) return "none";
  const lo = Math.min(...known);
  const hi = Math.max(...known);
  const missing = hs.length - known.length;
  return `${lo === hi ? `${lo}` : `${lo}..${hi}`}${missing > 0 ? ` (${missing} no answer)` : ""}`;
}

export function formatState(s: NetState): string {
  return `links ${s.links}/${s.possible}, bans ${s.bans}, heights ${heightRange(s.heights)}`;
}

export function formatBan(b: BanRecord): string {
  const whom = b.subjectNode !== null ? `node-${b.subjectNode} (${b.address})` : b.address;
  const extra = Object.entries(b.extra)
    .filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => `${k}=${clip(v)}`)
    .join(" ");
  return `node-${b.node} banned ${whom}: reason "${b.reason}" source ${b.source}${extra ? ` ${extra}` : ""}`;
}

export function formatLogBan(b: LogBanRecord): string {
  const f = Object.entries(b.fields)
    .map(([k, v]) => `${k}=${clip(v)}`)
    .join(" ");
  return `node-${b.node} log: ${b.msg} ${f}`;
}

/** The lines printed for one finished cycle (after its header line). */
export function formatCycle(c: CycleReport, convergeTimeoutS: number): string[] {
  const out: string[] = [];
  out.push(`  before: ${formatState(c.before)}`);
  if (c.kill) {
    const k = c.kill;
    out.push(
      `  kill: node-${k.node} height before ${k.heightBefore ?? "?"}, first after restart ${k.heightAfter ?? "?"}` +
        ` (RPC up ${s1(k.rpcUpMs)} after restart), lost ${k.lostBlocks}`,
    );
  }
  if (c.converged) {
    out.push(`  converged ${s1(c.convergeMs)} after heal, tip h=${c.tipHeight ?? "?"} ${short(c.tip)}`);
  } else {
    const tips = (c.tipsAtTimeout ?? []).map((t, k) => `node-${k + 1} ${short(t)}`).join(", ");
    out.push(`  NOT CONVERGED within ${convergeTimeoutS} s of heal: ${tips}`);
  }
  const reorgs =
    c.reorgs.length === 0 ? "none" : c.reorgs.map((r) => `node-${r.node} depth ${r.depth}`).join(", ");
  out.push(`  reorgs: ${reorgs}`);
  const disc = Object.entries(c.disconnects)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${r} ${n}`)
    .join(", ");
  if (disc) out.push(`  disconnects (from the logs): ${disc}`);
  if (c.after) out.push(`  after: ${formatState(c.after)}; new bans ${c.newBans.length}`);
  for (const b of c.newBans) out.push(`  BAN ${formatBan(b)}`);
  // Gone bans are mostly expiries of bans already printed when they were made: keep it short.
  if (c.goneBans.length > 3) out.push(`  bans gone (expired, or lost to kill -9): ${c.goneBans.length}`);
  else for (const b of c.goneBans) out.push(`  ban gone: ${formatBan(b)}`);
  // A logged ban is printed only when listbanned does not show it (kill -9 loses unsaved bans).
  const listed = new Set(c.newBans.map((b) => `${b.node}|${b.address}`));
  const unlisted = c.logBans.filter((b) => !listed.has(`${b.node}|${b.subject}`));
  if (c.logBans.length > 0)
    out.push(`  bans in node logs: ${c.logBans.length}, ${unlisted.length} of them not in listbanned`);
  for (const b of unlisted) out.push(`  BAN ${formatLogBan(b)}`);
  for (const x of c.crashes) out.push(`  CRASH ${x}`);
  for (const e of c.errors) out.push(`  error: ${e}`);
  return out;
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const a = [...xs].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

/** Fills the summary's counts from the cycles; the caller supplies the end-of-run facts. */
export function summarize(
  r: Report,
  facts: {
    seed: number;
    nodes: number;
    cyclesPlanned: number;
    interrupted: boolean;
    finalTips: TipGroup[];
    verify: VerifyResult[];
    finalLinks: { links: number; possible: number } | null;
    crashes: string[];
    logDir: string;
  },
): Summary {
  // A cycle cut short (Ctrl-C, harness error) says nothing about convergence.
  const cycles = r.cycles.filter((c) => !c.interrupted);
  const faults: Record<string, number> = {};
  for (const c of cycles) {
    faults[c.fault.kind] = (faults[c.fault.kind] ?? 0) + 1;
    if (c.fault.short) faults.short = (faults.short ?? 0) + 1;
  }
  const times = cycles.filter((c) => c.converged && c.convergeMs !== null).map((c) => c.convergeMs!);
  const allBans = [...(r.warmup?.bans ?? []), ...r.cycles.flatMap((c) => c.newBans)];
  const between = allBans.filter((b) => b.subjectNode !== null);
  const bansByReason: Record<string, number> = {};
  for (const b of between)
    bansByReason[reasonGroup(b.reason)] = (bansByReason[reasonGroup(b.reason)] ?? 0) + 1;
  const logBanLines = (r.warmup?.logBans.length ?? 0) + r.cycles.reduce((n, c) => n + c.logBans.length, 0);
  const lostBlocks = r.cycles.reduce((n, c) => n + (c.kill?.lostBlocks ?? 0), 0);
  const notConverged = cycles.filter((c) => !c.converged).map((c) => c.cycle);
  const permanentFork = facts.finalTips.length !== 1 || facts.finalTips[0]!.tip === null;
  const failures: string[] = [];
  if (r.warmup && !r.warmup.ok) failures.push(`warm-up failed: ${r.warmup.problem ?? "?"}`);
  if (notConverged.length > 0) failures.push(`${notConverged.length} cycle(s) did not converge`);
  // Cut short mid-fault, the nodes had no time to converge: their tips prove nothing.
  if (permanentFork && !facts.interrupted) failures.push("nodes on different tips at the end");
  if (between.length > 0 || logBanLines > 0)
    failures.push(`bans between nodes (${between.length} in listbanned, ${logBanLines} in logs)`);
  if (lostBlocks > 0) failures.push(`${lostBlocks} lost block(s) after kill -9`);
  const badVerify = facts.verify.filter((v) => v.code !== 0);
  if (badVerify.length > 0) failures.push(`verify failed on ${badVerify.map((v) => v.node).join(", ")}`);
  if (facts.crashes.length > 0) failures.push(`${facts.crashes.length} unexpected node exit(s)`);
  return {
    seed: facts.seed,
    nodes: facts.nodes,
    cyclesPlanned: facts.cyclesPlanned,
    cyclesRun: cycles.length,
    interrupted: facts.interrupted,
    faults,
    convergedQuickly: cycles.filter((c) => c.converged && (c.convergeMs ?? Infinity) <= QUICK_CONVERGE_MS)
      .length,
    convergeMaxMs: times.length > 0 ? Math.max(...times) : null,
    convergeMedianMs: median(times),
    notConverged,
    finalTips: facts.finalTips,
    permanentFork,
    bansBetweenNodes: between.length,
    bansByReason,
    otherBans: allBans.length - between.length,
    logBanLines,
    maxReorgDepth: Math.max(0, ...r.cycles.flatMap((c) => c.reorgs.map((x) => x.depth))),
    lostBlocks,
    verify: facts.verify,
    finalLinks: facts.finalLinks,
    crashes: facts.crashes,
    failures,
    logDir: facts.logDir,
  };
}

export function formatSummary(s: Summary): string[] {
  const row = (k: string, v: string): string => `  ${k.padEnd(22)} ${v}`;
  const faults =
    Object.entries(s.faults)
      .filter(([k]) => k !== "short")
      .map(([k, n]) => `${n} ${k}`)
      .join(", ") + (s.faults.short ? ` (${s.faults.short} of them short)` : "");
  const tips = s.permanentFork
    ? (s.interrupted ? "different tips (interrupted, not judged): " : "PERMANENT FORK: ") +
      s.finalTips
        .map((g) => `${short(g.tip)} h=${g.height ?? "?"} on ${g.nodes.map((n) => `node-${n}`).join(",")}`)
        .join("; ")
    : `all ${s.nodes} on ${short(s.finalTips[0]?.tip)} h=${s.finalTips[0]?.height ?? "?"}`;
  const reasons = Object.entries(s.bansByReason)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${n}× "${r}"`)
    .join(", ");
  const verify =
    s.verify.length === 0
      ? "not run"
      : `${s.verify.filter((v) => v.code === 0).length}/${s.verify.length} ok` +
        s.verify
          .filter((v) => v.code !== 0)
          .map((v) => `; ${v.node} exit ${v.code ?? "none"}: ${v.output.split("\n").pop() ?? ""}`)
          .join("");
  return [
    `== chaos summary: seed ${s.seed}, ${s.nodes} nodes, ${s.cyclesRun}/${s.cyclesPlanned} cycles${s.interrupted ? " (INTERRUPTED)" : ""} ==`,
    row("faults", faults || "none"),
    row("converged <= 10 s", `${s.convergedQuickly}/${s.cyclesRun}`),
    row("converge time", `max ${s1(s.convergeMaxMs)}, median ${s1(s.convergeMedianMs)}`),
    row(
      "never converged",
      s.notConverged.length === 0 ? "0" : `${s.notConverged.length}: cycles ${s.notConverged.join(", ")}`,
    ),
    row("final tips", tips),
    row("max reorg depth", String(s.maxReorgDepth)),
    row("bans between nodes", `${s.bansBetweenNodes}${reasons ? `: ${reasons}` : ""}`),
    row("bans in node logs", String(s.logBanLines)),
    ...(s.otherBans > 0 ? [row("other bans", String(s.otherBans))] : []),
    row("lost blocks", String(s.lostBlocks)),
    row("verify", verify),
    row("final links", s.finalLinks ? `${s.finalLinks.links}/${s.finalLinks.possible}` : "unknown"),
    ...(s.crashes.length > 0 ? [row("unexpected exits", s.crashes.join("; "))] : []),
    row(
      "result",
      s.failures.length > 0
        ? `FAIL: ${s.failures.join("; ")}`
        : s.interrupted
          ? `INTERRUPTED (no failure in the ${s.cyclesRun} finished cycle(s))`
          : "PASS",
    ),
  ];
}
