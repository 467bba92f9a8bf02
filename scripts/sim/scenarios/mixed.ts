/**
 * mixed: a network of masternodes and many more full nodes, on slower and lossier links than
 * the default: 50–250 ms one way, 1 % loss, 10 Mbit/s, clocks up to 2 s apart. Full nodes take
 * no part in production; they must follow it as closely as the masternodes do.
 */
import type { Scenario } from "../scenario.js";
import { expectProgress, finalAgreement } from "./common.js";

export const mixed: Scenario = {
  name: "mixed",
  summary: "masternodes and more full nodes on slow, lossy links with skewed clocks",
  defaults: {
    link: { latencyMs: 50, jitterMs: 200, loss: 0.01, bandwidthBytesPerS: 1_250_000 },
    maxSkewMs: 2_000,
  },
  async run(sim, ctx) {
    if (sim.nodes.filter((n) => !n.masternode).length < sim.masternodes().length)
      throw new Error("mixed wants at least as many full nodes as masternodes (--nodes, --masternodes)");
    await sim.run(ctx.durationMs);
    expectProgress(sim, ctx, 0.75);
    await finalAgreement(sim, 3 * sim.opts.blockTimeMs);
  },
};
