/**
 * lying-peers: a fifth of the full nodes lie (at least three): one third claim heights 1,000
 * blocks above their own, one third announce tips under hashes nobody has, one third never
 * answer a request for blocks, headers or hashes. The honest nodes must keep producing and
 * following, ban no honest node, and end on one tip.
 */
import { makeLiar, type LieKind } from "../adversary.js";
import type { Scenario } from "../scenario.js";
import { expectProgress, finalAgreement, pick } from "./common.js";

const KINDS: LieKind[] = ["heights", "hashes", "stall"];

export const lyingPeers: Scenario = {
  name: "lying-peers",
  summary: "a fifth of the full nodes lie about heights and hashes, or stall every request",
  async run(sim, ctx) {
    const full = sim.nodes.filter((n) => !n.masternode);
    const liars = pick(sim, full, Math.max(3, Math.floor(full.length / 5)));
    if (liars.length < 3) throw new Error("lying-peers wants at least 3 full nodes (--nodes, --masternodes)");
    // A liar rewrites its frames on the wire; a sealed session would refuse every rewritten one.
    if (sim.opts.transport === "encrypted")
      throw new Error("lying-peers runs only with --transport plaintext");
    // Restart each liar behind its lying transport: its honest neighbours meet it fresh.
    for (const [i, n] of liars.entries()) {
      makeLiar(n, KINDS[i % KINDS.length]!);
      n.crash();
    }
    await sim.run(sim.opts.blockTimeMs);
    for (const n of liars) await n.start();
    await sim.run(ctx.durationMs - sim.opts.blockTimeMs);
    expectProgress(sim, ctx, 0.75);
    await finalAgreement(sim, 3 * sim.opts.blockTimeMs);
  },
};
