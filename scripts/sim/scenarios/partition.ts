/**
 * partition: a k-way split, then a heal. For the middle third of the run the nodes are cut into
 * `k` groups (default 3) with the masternodes spread evenly; each group with enough active
 * masternodes goes on producing its own branch. After the heal every honest node must be on one
 * tip within HEAL_BOUND_BLOCKS block times (the converged invariant): fork choice picks the
 * heaviest branch, and the others reorg to it.
 */
import type { Scenario } from "../scenario.js";
import { expectProgress, finalAgreement, splitGroups } from "./common.js";

/** The stated bound: one honest tip within this many block times of a heal. */
export const HEAL_BOUND_BLOCKS = 6;

export function partitionScenario(k: number): Scenario {
  return {
    name: k === 2 ? "partition" : `partition${k}`,
    summary: `a ${k}-way partition for the middle third of the run, then a heal: one tip within ${HEAL_BOUND_BLOCKS} block times`,
    async run(sim, ctx) {
      const third = Math.floor(ctx.durationMs / 3);
      await sim.run(third);
      const groups = splitGroups(sim, sim.running(), k);
      sim.partition(groups);
      await sim.run(third);
      sim.heal(HEAL_BOUND_BLOCKS * sim.opts.blockTimeMs);
      await sim.run(ctx.durationMs - 2 * third);
      expectProgress(sim, ctx, 0.5);
      await finalAgreement(sim, HEAL_BOUND_BLOCKS * sim.opts.blockTimeMs);
    },
  };
}

export const partition = partitionScenario(2);
export const partition3 = partitionScenario(3);
