/**
 * The campaign, run by run.ts inside the monitor namespace (the only place that reaches every
 * node's RPC on 10.78.0.x): start the nodes, warm up, then per cycle apply a fault, heal, time
 * the convergence and collect bans, links and reorgs; at the end stop the nodes, verify their
 * chains and print the summary.
 *
 * Exit codes: 0 pass, 1 a failure was found, 2 the harness itself failed, 130 interrupted.
 * SIGINT/SIGTERM: stop at the next step and report what ran; a second one exits at once (run.ts
 * cleans up the namespaces and whatever still runs in them).
 */
import { writeFileSync } from "node:fs";
import { applyNetworkFault, chooseFault, describeFault, healNetwork, type Fault } from "./faults.js";
import { NodeHandle, verifyDataDir, type VerifyResult } from "./nodes.js";
import {
  banKey,
  bans,
  heights,
  links,
  LogCursor,
  scanLog,
  tips,
  type BanRecord,
  type LogFindings,
} from "./observe.js";
import { readPlan, type Plan } from "./plan.js";
import {
  formatBan,
  formatCycle,
  formatLogBan,
  formatState,
  formatSummary,
  summarize,
  type CycleReport,
  type NetState,
  type Report,
  type TipGroup,
  type WarmupReport,
} from "./report.js";
import { Rng } from "./rng.js";
import { Aborted, nowMs, sleep, withTimeout } from "./wait.js";

/** Nodes need a few seconds to see 3 active masternodes, then blocks come every 2 s. */
const WARMUP_TIMEOUT_MS = 120_000;
const WARMUP_MIN_HEIGHT = 2;
/** After one tip, how long warm-up waits for every pair of nodes to be connected. */
const WARMUP_LINKS_MS = 30_000;
const POLL_MS = 150;
const KILL_PROBE_MS = 50;
const STOP_TIMEOUT_MS = 20_000;
const VERIFY_TIMEOUT_MS = 120_000;
/** Bounds one snapshot (every RPC call has its own 2 s timeout too). */
const SNAPSHOT_TIMEOUT_MS = 15_000;

const say = (s: string): void => void process.stdout.write(s + "\n");
const clockTime = (): string => new Date().toISOString().slice(11, 19);

class Campaign {
  readonly nodes: NodeHandle[];
  readonly cursors: LogCursor[];
  readonly abort = new AbortController();
  readonly report: Report;
  private readonly crashesSeen = new Map<number, number>();

  constructor(readonly plan: Plan) {
    this.nodes = plan.nodes.map((n) => new NodeHandle(n));
    this.cursors = plan.nodes.map((n) => new LogCursor(n.logFile));
    this.report = {
      prefix: plan.prefix,
      dir: plan.dir,
      genesis: plan.genesis,
      options: plan.options,
      warmup: null,
      cycles: [],
      summary: null,
    };
  }

  get o(): Plan["options"] {
    return this.plan.options;
  }

  get topology(): { prefix: string; nodes: number } {
    return { prefix: this.plan.prefix, nodes: this.plan.nodes.length };
  }

  private check(): void {
    if (this.abort.signal.aborted) throw new Aborted();
  }

  async state(): Promise<{ state: NetState; bans: BanRecord[] }> {
    const [l, b, h] = await withTimeout(
      Promise.all([links(this.nodes), bans(this.nodes), heights(this.nodes)]),
      SNAPSHOT_TIMEOUT_MS,
      "snapshot",
    );
    return {
      state: {
        links: l.pairs.length,
        possible: l.possible,
        linkPairs: l.pairs,
        bans: b.bans.length,
        heights: h.map((x) => x ?? null),
      },
      bans: b.bans,
    };
  }

  readLogs(): LogFindings {
    const f: LogFindings = { reorgs: [], logBans: [], disconnects: {} };
    this.cursors.forEach((c, k) => scanLog(k + 1, c.read(), f));
    return f;
  }

  /** Node exits we did not cause since the last call. */
  newCrashes(): string[] {
    const out: string[] = [];
    for (const n of this.nodes) {
      const seen = this.crashesSeen.get(n.index) ?? 0;
      for (const x of n.unexpectedExits.slice(seen)) out.push(`${n.info.name}: ${x}`);
      this.crashesSeen.set(n.index, n.unexpectedExits.length);
    }
    return out;
  }

  /** Polls getbestblockhash on every node until they agree or `timeoutMs` passes. */
  async waitForOneTip(
    timeoutMs: number,
  ): Promise<{ ok: true; tip: string; atMs: number } | { ok: false; last: Array<string | null> }> {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      this.check();
      const last = await tips(this.nodes);
      const first = last[0];
      if (first !== undefined && last.every((t) => t === first))
        return { ok: true, tip: first, atMs: nowMs() };
      if (nowMs() >= deadline) return { ok: false, last: last.map((t) => t ?? null) };
      await sleep(POLL_MS, this.abort.signal);
    }
  }

  async tipHeight(tip: string): Promise<number | null> {
    const b = await this.nodes[0]!.tryCall<{ height?: number }>("getblock", [tip, 1]);
    return typeof b?.height === "number" ? b.height : null;
  }

  async warmup(): Promise<void> {
    const started = nowMs();
    say(`${clockTime()} starting ${this.nodes.length} nodes…`);
    for (const n of this.nodes) n.start();
    const w: WarmupReport = { seconds: 0, ok: false, state: null, bans: [], logBans: [], problem: null };
    this.report.warmup = w;
    const deadline = started + WARMUP_TIMEOUT_MS;
    for (;;) {
      this.check();
      const t = await tips(this.nodes);
      const h = await heights(this.nodes);
      const height = Math.min(...h.map((x) => x ?? -1));
      if (t[0] !== undefined && t.every((x) => x === t[0]) && height >= WARMUP_MIN_HEIGHT) break;
      if (this.nodes.some((n) => n.unexpectedExits.length > 0)) {
        w.problem = "a node exited during warm-up";
        break;
      }
      if (nowMs() > deadline) {
        w.problem = `no common tip at height >= ${WARMUP_MIN_HEIGHT} within ${WARMUP_TIMEOUT_MS / 1000} s (heights ${h.map((x) => x ?? "-").join(", ")})`;
        break;
      }
      await sleep(500, this.abort.signal);
    }
    if (w.problem === null) {
      // Discovery may still be filling in the mesh: give it a bounded while.
      const linkDeadline = nowMs() + WARMUP_LINKS_MS;
      for (;;) {
        const l = await links(this.nodes);
        if (l.pairs.length === l.possible || nowMs() > linkDeadline) break;
        await sleep(500, this.abort.signal);
      }
    }
    const s = await this.state();
    const f = this.readLogs();
    w.seconds = Math.round((nowMs() - started) / 100) / 10;
    w.state = s.state;
    w.bans = s.bans;
    w.logBans = f.logBans;
    const crashes = this.newCrashes();
    if (crashes.length > 0) w.problem = `${w.problem ? w.problem + "; " : ""}${crashes.join("; ")}`;
    w.ok = w.problem === null;
    say(`${clockTime()} warm-up ${w.ok ? "done" : "FAILED"} in ${w.seconds} s: ${formatState(s.state)}`);
    for (const b of w.bans) say(`  BAN ${formatBan(b)}`);
    if (w.logBans.length > 0) say(`  bans in node logs: ${w.logBans.length}`);
    for (const b of w.logBans.filter(
      (x) => !w.bans.some((y) => y.node === x.node && y.address === x.subject),
    ))
      say(`  BAN ${formatLogBan(b)}`);
    if (!w.ok) throw new Error(`warm-up failed: ${w.problem}`);
  }

  async cycle(index: number, rng: Rng): Promise<void> {
    const fault: Fault = chooseFault(rng, this.o);
    const before = await this.state();
    const c: CycleReport = {
      cycle: index,
      fault,
      description: describeFault(fault),
      startedAt: new Date().toISOString(),
      healedAt: null,
      before: before.state,
      beforeBans: before.bans,
      interrupted: false,
      converged: false,
      convergeMs: null,
      tip: null,
      tipHeight: null,
      tipsAtTimeout: null,
      after: null,
      newBans: [],
      goneBans: [],
      logBans: [],
      reorgs: [],
      disconnects: {},
      kill: null,
      crashes: [],
      errors: [],
    };
    this.report.cycles.push(c);
    say(`${clockTime()} [cycle ${index}/${this.o.cycles}] ${c.description}`);
    try {
      await this.runFault(c);
    } catch (e) {
      c.interrupted = true;
      if (!(e instanceof Aborted)) c.errors.push(e instanceof Error ? e.message : String(e));
      throw e;
    }
    for (const line of formatCycle(c, this.o.convergeTimeout)) say(line);
  }

  private async runFault(c: CycleReport): Promise<void> {
    const fault = c.fault;
    const beforeKeys = new Set(c.beforeBans.map(banKey));

    let victim: NodeHandle | null = null;
    if (fault.kind === "kill") {
      victim = this.nodes[fault.node - 1]!;
      const h = await victim.tryCall<number>("getblockcount");
      c.kill = { node: fault.node, heightBefore: h ?? null, heightAfter: null, lostBlocks: 0, rpcUpMs: null };
      await victim.stop("SIGKILL", 10_000);
    } else {
      applyNetworkFault(this.topology, fault);
    }
    try {
      await sleep(fault.seconds * 1000, this.abort.signal);
    } finally {
      // Heal even when interrupted, so nothing else sees a half-broken network.
      if (fault.kind !== "kill") healNetwork(this.topology);
    }
    if (victim) victim.start();
    const healed = nowMs();
    c.healedAt = new Date().toISOString();

    // The restarted node's first height comes from its own fast probe, beside the tip polling.
    const killProbe = victim ? this.probeRestart(victim, c) : Promise.resolve();
    const r = await this.waitForOneTip(this.o.convergeTimeout * 1000);
    await killProbe;
    if (r.ok) {
      c.converged = true;
      c.convergeMs = Math.round(r.atMs - healed);
      c.tip = r.tip;
      c.tipHeight = await this.tipHeight(r.tip);
    } else {
      c.tipsAtTimeout = r.last;
    }
    await sleep(this.o.settle * 1000, this.abort.signal);
    const after = await this.state();
    c.after = after.state;
    const afterKeys = new Set(after.bans.map(banKey));
    c.newBans = after.bans.filter((b) => !beforeKeys.has(banKey(b)));
    c.goneBans = c.beforeBans.filter((b) => !afterKeys.has(banKey(b)));
    const f = this.readLogs();
    c.reorgs = f.reorgs;
    c.logBans = f.logBans;
    c.disconnects = f.disconnects;
    c.crashes = this.newCrashes();
  }

  /** getblockcount on the restarted node, every 50 ms until it answers (bounded). */
  private async probeRestart(node: NodeHandle, c: CycleReport): Promise<void> {
    const started = nowMs();
    const deadline = started + this.o.convergeTimeout * 1000;
    while (nowMs() < deadline && !this.abort.signal.aborted) {
      const h = await node.tryCall<number>("getblockcount");
      if (h !== undefined) {
        c.kill!.heightAfter = h;
        c.kill!.rpcUpMs = Math.round(nowMs() - started);
        if (c.kill!.heightBefore !== null) c.kill!.lostBlocks = Math.max(0, c.kill!.heightBefore - h);
        return;
      }
      await new Promise((res) => setTimeout(res, KILL_PROBE_MS));
    }
    c.errors.push(`node-${node.index}: RPC not up within ${this.o.convergeTimeout} s of the restart`);
  }

  /** Tips at the end; a block in flight can split them for a moment, so a few tries. */
  async finalTips(): Promise<TipGroup[]> {
    let groups: TipGroup[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      const t = await tips(this.nodes);
      const h = await heights(this.nodes);
      const byTip = new Map<string, TipGroup>();
      t.forEach((tip, k) => {
        const key = tip ?? "none";
        const g = byTip.get(key) ?? { tip: tip ?? null, height: h[k] ?? null, nodes: [] };
        g.nodes.push(k + 1);
        byTip.set(key, g);
      });
      groups = [...byTip.values()];
      if (groups.length === 1 && groups[0]!.tip !== null) break;
      await new Promise((res) => setTimeout(res, 300));
    }
    return groups;
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      this.nodes.map((n) =>
        n.stop("SIGTERM", STOP_TIMEOUT_MS).catch((e: unknown) => say(`  ${n.info.name}: ${String(e)}`)),
      ),
    );
  }
}

async function main(): Promise<number> {
  const i = process.argv.indexOf("--plan");
  const planFile = i >= 0 ? process.argv[i + 1] : undefined;
  if (planFile === undefined) {
    process.stderr.write("controller.ts is started by run.ts: --plan FILE\n");
    return 2;
  }
  const plan = readPlan(planFile);
  const campaign = new Campaign(plan);
  const o = plan.options;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      say(`${clockTime()} ${sig}: stopping after the current step (again to quit at once)…`);
      campaign.abort.abort();
    } else {
      process.exit(130);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);

  say(
    `chaos: seed ${o.seed}, ${plan.nodes.length} nodes, ${o.cycles} cycles, faults ${o.minFault}-${o.maxFault} s,` +
      ` short ${Math.round(o.shortShare * 100)}% of 1-${o.shortMax} s, converge timeout ${o.convergeTimeout} s, settle ${o.settle} s`,
  );
  say(`  namespaces ${plan.prefix}-*, data and logs in ${plan.dir}`);

  let interrupted = false;
  let harnessError: string | null = null;
  const rng = new Rng(o.seed);
  try {
    await campaign.warmup();
    for (let c = 1; c <= o.cycles; c++) await campaign.cycle(c, rng);
  } catch (e) {
    if (e instanceof Aborted) interrupted = true;
    else harnessError = e instanceof Error ? e.message : String(e);
  }
  if (harnessError !== null) say(`${clockTime()} ERROR: ${harnessError}`);

  let finalTips: TipGroup[] = [];
  let finalLinks: { links: number; possible: number } | null = null;
  try {
    finalTips = await withTimeout(campaign.finalTips(), 30_000, "final tips");
    const l = await withTimeout(links(campaign.nodes), SNAPSHOT_TIMEOUT_MS, "final links");
    finalLinks = { links: l.pairs.length, possible: l.possible };
  } catch (e) {
    say(`  could not read the final state: ${String(e)}`);
  }
  say(`${clockTime()} stopping nodes…`);
  await campaign.stopAll();
  const crashes = campaign.newCrashes();
  const allCrashes = [...campaign.report.cycles.flatMap((c) => c.crashes), ...crashes];
  const verify: VerifyResult[] = [];
  if (!interrupted) {
    for (const n of plan.nodes) verify.push(await verifyDataDir(n, VERIFY_TIMEOUT_MS));
  } else {
    say("  verify skipped (interrupted)");
  }
  const summary = summarize(campaign.report, {
    seed: o.seed,
    nodes: plan.nodes.length,
    cyclesPlanned: o.cycles,
    interrupted,
    finalTips,
    verify,
    finalLinks,
    crashes: allCrashes,
    logDir: plan.dir,
  });
  if (harnessError !== null) summary.failures.unshift(`harness error: ${harnessError}`);
  campaign.report.summary = summary;
  for (const line of formatSummary(summary)) say(line);
  if (o.json !== null) {
    try {
      writeFileSync(o.json, JSON.stringify(campaign.report, null, 2) + "\n");
      say(`  report written to ${o.json}`);
    } catch (e) {
      say(`  could not write the report to ${o.json}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (summary.failures.length > 0 || interrupted) {
    say(`  node logs: ${plan.dir}/node-<i>.log (JSON lines), data dirs ${plan.dir}/node-<i>`);
  }
  if (harnessError !== null) return 2;
  if (interrupted) return 130;
  return summary.failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`chaos controller: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);
