import { COIN } from "../primitives/constants.js";

export enum Tier {
  Free = 0,
  Bronze = 1,
  Silver = 2,
  Gold = 3,
}

export const TIER_NAMES = ["free", "bronze", "silver", "gold"] as const;
export type TierName = (typeof TIER_NAMES)[number];

/** Collateral per tier, in TIME, as in the original: 0 / 1,000 / 10,000 / 100,000. */
export const TIER_COLLATERAL: Record<Tier, bigint> = {
  [Tier.Free]: 0n,
  [Tier.Bronze]: 1_000n * COIN,
  [Tier.Silver]: 10_000n * COIN,
  [Tier.Gold]: 100_000n * COIN,
};

/** Reward weights, as the original declared them (and then ignored): 100 / 1,000 / 10,000 / 100,000. */
export const TIER_WEIGHT: Record<Tier, bigint> = {
  [Tier.Free]: 100n,
  [Tier.Bronze]: 1_000n,
  [Tier.Silver]: 10_000n,
  [Tier.Gold]: 100_000n,
};

export function tierFromName(name: string): Tier {
  const i = TIER_NAMES.indexOf(name.toLowerCase() as TierName);
  if (i < 0) throw new Error(`unknown tier "${name}" (accepted: ${TIER_NAMES.join(", ")})`);
  return i as Tier;
}

export function tierName(t: Tier): TierName {
  return TIER_NAMES[t];
}

export function isTier(v: number): v is Tier {
  return Number.isInteger(v) && v >= 0 && v <= 3;
}
