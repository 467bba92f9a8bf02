/**
 * churn: full nodes join empty and leave. Every JOIN_EVERY_BLOCKS block times a new full node
 * starts from the genesis, bootstrapped to a few running nodes, and a random older full node
 * leaves for good (a graceful stop). Each newcomer must reach the honest tip within
 * CATCH_UP_BLOCKS block times of joining, and at the end every honest node is on one tip.
 */
import type { Scenario } from "../scenario.js";
import type { SimNode } from "../simulator.js";
import { expectProgress, finalAgreement, pick } from "./common.js";

const JOIN_EVERY_BLOCKS = 2;
const CATCH_UP_BLOCKS = 6;

export const churn: Scenario = {
  name: "churn",
  summary: "full nodes join empty and leave; each newcomer catches up within 6 block times",
  async run(sim, ctx) {
    const b = sim.opts.blockTimeMs;
    const end = sim.clock.now() + ctx.durationMs;
    const joined: Array<{ node: SimNode; at: number }> = [];
    while (sim.clock.now() + JOIN_EVERY_BLOCKS * b < end) {
      await sim.run(JOIN_EVERY_BLOCKS * b);
      const fresh = sim.addNode(false);
      sim.record(`join ${fresh.index}`);
      await fresh.start();
      joined.push({ node: fresh, at: sim.clock.now() });
      const leavers = sim.running().filter((n) => !n.masternode && n !== fresh);
      const [leaver] = pick(sim, leavers, 1);
      if (leaver && leavers.length > 2) {
        sim.record(`leave ${leaver.index}`);
        leaver.left = true;
        await leaver.stop();
      }
      // Every newcomer past its catch-up bound must have caught up.
      const best = Math.max(...sim.honestRunning().map((n) => n.n.chain.height));
      for (const j of joined) {
        if (!j.node.running || sim.clock.now() - j.at < CATCH_UP_BLOCKS * b) continue;
        if (j.node.n.chain.height < best - 1)
          throw new Error(
            `${j.node.name} joined ${((sim.clock.now() - j.at) / 1000).toFixed(0)} s ago and is at ${j.node.n.chain.height}, the network at ${best}`,
          );
      }
    }
    await sim.run(Math.max(0, end - sim.clock.now()));
    expectProgress(sim, ctx, 0.7);
    await finalAgreement(sim, CATCH_UP_BLOCKS * b);
  },
};
