/**
 * byzantine: a fifth of the masternodes (at least two; fewer than a third, the bound the
 * consensus-safety rules are built for) turn Byzantine after the first block times. Half of them
 * withhold every block they are scheduled for, the other half equivocate: each of their blocks
 * gets a twin for the same slot, delivered first to a third of the honest nodes. The honest
 * network must keep producing through fallback rounds, hold evidence against every equivocator
 * that produced, drop it from the registry, and end on one tip.
 *
 * The other Byzantine attacks have their own scenarios: schedule grinding by a private branch
 * (grind.ts) and Sybil registrations (sybil.ts).
 */
import { makeEquivocator, makeWithholder } from "../adversary.js";
import type { Scenario } from "../scenario.js";
import { expectProgress, finalAgreement, pick } from "./common.js";

export const byzantine: Scenario = {
  name: "byzantine",
  summary: "a fifth of the masternodes withhold their blocks or equivocate (two blocks per slot)",
  async run(sim, ctx) {
    const mns = sim.masternodes();
    const count = Math.max(2, Math.floor(mns.length / 5));
    if (3 * count >= mns.length)
      throw new Error(`byzantine wants more than ${3 * count} masternodes (--masternodes)`);
    const warmup = 3 * sim.opts.blockTimeMs;
    await sim.run(warmup);
    const bad = pick(sim, mns, count);
    const equivocators = bad.slice(0, Math.ceil(count / 2)).map((n) => ({ n, e: makeEquivocator(n) }));
    for (const n of bad.slice(Math.ceil(count / 2))) makeWithholder(n);
    await sim.run(ctx.durationMs - warmup);
    expectProgress(sim, ctx, 0.5);
    await finalAgreement(sim, 6 * sim.opts.blockTimeMs);
    for (const { n, e } of equivocators) {
      if (e.twins() === 0) continue;
      for (const h of sim.honestRunning()) {
        if (!h.n.chain.hasEvidenceAgainst(n.operatorKey!.publicKey))
          throw new Error(
            `${h.name} holds no evidence against ${n.name}, which equivocated ${e.twins()} times`,
          );
      }
    }
  },
};
