/** Expectations scenarios share, on top of the invariants every run checks. */
import type { ScenarioContext } from "../scenario.js";
import type { SimNode, Simulator } from "../simulator.js";

/** The honest best height must have grown by at least `fraction` of the blocks the time allows. */
export function expectProgress(sim: Simulator, ctx: ScenarioContext, fraction: number, since = 0): void {
  const height = Math.max(0, ...sim.honestRunning().map((n) => n.n.chain.height));
  const want = Math.floor(((ctx.durationMs / sim.opts.blockTimeMs) * fraction) / 1) - since;
  if (height - since < want)
    throw new Error(
      `the honest chain reached height ${height}; the scenario expects at least ${since + want}`,
    );
}

/** Ends a run: the honest nodes must come to one tip within `boundMs` (the converged invariant). */
export async function finalAgreement(sim: Simulator, boundMs: number): Promise<void> {
  sim.invariants.expectConvergence(boundMs, "final");
  await sim.runUntil("one honest tip at the end", () => !sim.invariants.converging, boundMs + 2_000);
}

/** `k` seeded picks from `from`, without repeats. */
export function pick<T>(sim: Simulator, from: readonly T[], k: number): T[] {
  const pool = [...from];
  const out: T[] = [];
  while (out.length < k && pool.length > 0) out.push(pool.splice(sim.random.int(pool.length), 1)[0]!);
  return out;
}

/** Splits `nodes` into `k` groups of seeded random membership, masternodes spread evenly. */
export function splitGroups(sim: Simulator, nodes: readonly SimNode[], k: number): SimNode[][] {
  const groups: SimNode[][] = Array.from({ length: k }, () => []);
  const mns = pick(
    sim,
    nodes.filter((n) => n.masternode),
    nodes.length,
  );
  const fns = pick(
    sim,
    nodes.filter((n) => !n.masternode),
    nodes.length,
  );
  mns.forEach((n, i) => groups[i % k]!.push(n));
  fns.forEach((n, i) => groups[i % k]!.push(n));
  return groups;
}
