/**
 * rolling-crash: kill -9 and restart, one node after another. Every CRASH_EVERY_BLOCKS block
 * times a random running node (a masternode one time in two) is killed without a goodbye; it
 * comes back DOWN_BLOCKS block times later on what its store had committed. The chain must go on
 * throughout, every restarted node must rejoin, and at the end every honest node is on one tip.
 */
import type { Scenario } from "../scenario.js";
import { expectProgress, finalAgreement, pick } from "./common.js";

const CRASH_EVERY_BLOCKS = 3;
const DOWN_BLOCKS = 2;

export const rollingCrash: Scenario = {
  name: "rolling-crash",
  summary: "kill -9 one node at a time (masternodes too), restart it two blocks later",
  async run(sim, ctx) {
    const b = sim.opts.blockTimeMs;
    const end = sim.clock.now() + ctx.durationMs;
    let i = 0;
    while (sim.clock.now() + (CRASH_EVERY_BLOCKS + DOWN_BLOCKS) * b < end) {
      await sim.run(CRASH_EVERY_BLOCKS * b);
      const pool = sim.running().filter((n) => (i % 2 === 0 ? n.masternode : !n.masternode));
      const [victim] = pick(sim, pool.length > 0 ? pool : sim.running(), 1);
      i++;
      if (!victim) continue;
      sim.record(`crash ${victim.index}`);
      victim.crash();
      await sim.run(DOWN_BLOCKS * b);
      sim.record(`restart ${victim.index}`);
      await victim.start();
    }
    await sim.run(Math.max(0, end - sim.clock.now()));
    expectProgress(sim, ctx, 0.6);
    await finalAgreement(sim, 6 * b);
  },
};
