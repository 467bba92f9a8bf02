import type { TxOut } from "../primitives/tx.js";
import type { MasternodeEntry, Registry } from "./registry.js";
import { TIER_WEIGHT } from "./tier.js";

/**
 * The reward rule (docs/CONSENSUS.md): the block reward is split among every registered
 * masternode in proportion to its tier weight, floor(reward · w_i / Σw). The producer's output
 * additionally gets the rounding remainder and all transaction fees. Outputs follow registry
 * order (sorted by operator key); zero amounts are left out.
 */
export function coinbaseOutputs(
  registry: Registry,
  producer: MasternodeEntry,
  reward: bigint,
  fees: bigint,
): TxOut[] {
  let total = 0n;
  for (const e of registry) total += TIER_WEIGHT[e.tier];
  const shares: bigint[] = registry.map((e) => (total === 0n ? 0n : (reward * TIER_WEIGHT[e.tier]) / total));
  let paid = 0n;
  for (const s of shares) paid += s;
  const remainder = reward - paid;
  const out: TxOut[] = [];
  registry.forEach((e, i) => {
    let amount = shares[i]!;
    if (e.operatorPubkey.equals(producer.operatorPubkey)) amount += remainder + fees;
    if (amount > 0n) out.push({ amount, address: e.rewardAddress });
  });
  return out;
}
