/**
 * Who may vote on a finality link, and with what weight (docs/CONSENSUS.md, "The voter set").
 * A link's voters are the masternodes of the registry after a **final** block (for a vote
 * counted live, the counting node's last final block; for a certificate on chain, the last block
 * its branch has certified), each weighing its tier weight, less those that are no longer
 * registered after the link's source block. The base is a block every branch above it shares,
 * so registrations a branch makes after it cannot vote on that branch: a private branch cannot
 * register Sybils and finalise itself with them. Pure functions: no chain state, no clock.
 */
import type { Registry } from "./registry.js";
import { TIER_WEIGHT } from "./tier.js";

/** Who may vote on a link, and with what weight. */
export interface VoterSet {
  /** 0 for a key that may not vote. */
  weightOf(voter: Buffer): bigint;
  /** The weight a supermajority is measured against. */
  readonly total: bigint;
}

function weights(registry: Registry): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const e of registry) out.set(e.operatorPubkey.toString("hex"), TIER_WEIGHT[e.tier]);
  return out;
}

/** The whole registry as a voter set, with its tier weights. */
export function registryVoters(registry: Registry): VoterSet {
  const w = weights(registry);
  let total = 0n;
  for (const x of w.values()) total += x;
  return { total, weightOf: (voter) => w.get(voter.toString("hex")) ?? 0n };
}

/**
 * The voters of one link: the registry after the final (or certified) base block, less the
 * entries that are not in the registry after the link's source block (removed by evidence, or
 * deregistered, on that branch). Leaving entries out only makes a supermajority harder: the
 * total stays the base registry's.
 */
export function linkVoters(base: Registry, registryAfterSource: Registry): VoterSet {
  const all = registryVoters(base);
  const registered = new Set(registryAfterSource.map((e) => e.operatorPubkey.toString("hex")));
  return {
    total: all.total,
    weightOf: (voter) => (registered.has(voter.toString("hex")) ? all.weightOf(voter) : 0n),
  };
}
