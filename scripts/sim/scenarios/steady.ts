/**
 * steady: no faults beyond the links' own latency, jitter and loss. The masternodes produce in
 * turn and every node follows. Expects at least 80 % of the slots filled and, at the end, one
 * honest tip within two block times.
 */
import type { Scenario } from "../scenario.js";
import { expectProgress, finalAgreement } from "./common.js";

export const steady: Scenario = {
  name: "steady",
  summary: "no faults: the masternodes produce in turn and every node follows",
  async run(sim, ctx) {
    await sim.run(ctx.durationMs);
    expectProgress(sim, ctx, 0.8);
    await finalAgreement(sim, 2 * sim.opts.blockTimeMs);
  },
};
