import { ZERO_HASH } from "../crypto/hash.js";
import { HASH_AGREEMENT_DENOMINATOR, HASH_AGREEMENT_NUMERATOR } from "./constants.js";
import type { ForkPoint } from "./ancestor.js";

/** A branch we are about to reorg to, and our current tip. */
export interface AgreementQuery {
  /** The common ancestor (a block on our main chain). */
  fork: ForkPoint;
  /** The branch block we would end on (the target). */
  target: ForkPoint;
  /** Our current tip. */
  ours: ForkPoint;
  /** Our main-chain block at the target height, if our chain reaches it. */
  oursAtTarget?: Buffer | null;
}

/** The heights each peer is asked for, in this order: fork, our tip, target. */
export function agreementHeights(q: AgreementQuery): number[] {
  return [q.fork.height, q.ours.height, q.target.height];
}

export interface AgreementTally {
  confirmed: boolean;
  /** Peers whose hash at the fork height is the fork's. */
  forkAgree: number;
  /** Peers with another block at the fork height. */
  forkOther: number;
  /** Peers whose hash at the target height is the target's. */
  branch: number;
  /**
   * Peers still on our chain (their hash at our tip height is our tip, or at the target height
   * is ours): they have not switched yet.
   */
  ours: number;
  /** Peers below the target height that are not on our chain: they cannot confirm either way. */
  none: number;
  /** Peers with a third block at the target height. */
  other: number;
  /** Answers that contradict the branch (forkOther + other): alerted on and counted. */
  mismatches: number;
  /** Peers that answered. */
  answered: number;
}

/**
 * Seed 002's hash agreement, before a reorg: at least 2/3 of the peers that answer with a block
 * at the fork height must have the fork's block, and at least 2/3 of the peers that answer with
 * an alternative to our chain at the target height must have the target's block (at least one
 * must). Peers still on our own chain are left out of the second vote: they are the ones that
 * will switch too, and counting them would let the two halves of a healed split block each other
 * forever. Fork choice still decides; this only defers a reorg that the network does not confirm.
 */
export function tallyAgreement(
  q: AgreementQuery,
  answers: ReadonlyArray<readonly Buffer[] | null>,
): AgreementTally {
  const t: AgreementTally = {
    confirmed: false,
    forkAgree: 0,
    forkOther: 0,
    branch: 0,
    ours: 0,
    none: 0,
    other: 0,
    mismatches: 0,
    answered: 0,
  };
  for (const a of answers) {
    if (!a || a.length !== 3) continue;
    t.answered++;
    const [atFork, atOurs, atTarget] = a as [Buffer, Buffer, Buffer];
    if (atFork.equals(q.fork.hash)) t.forkAgree++;
    else if (!atFork.equals(ZERO_HASH)) t.forkOther++;
    if (atTarget.equals(q.target.hash)) t.branch++;
    else if (atOurs.equals(q.ours.hash) || (q.oursAtTarget?.equals(atTarget) ?? false)) t.ours++;
    else if (atTarget.equals(ZERO_HASH)) t.none++;
    else t.other++;
  }
  const twoThirds = (yes: number, total: number): boolean =>
    HASH_AGREEMENT_DENOMINATOR * yes >= HASH_AGREEMENT_NUMERATOR * total;
  t.mismatches = t.forkOther + t.other;
  t.confirmed =
    t.branch >= 1 &&
    twoThirds(t.forkAgree, t.forkAgree + t.forkOther) &&
    twoThirds(t.branch, t.branch + t.other);
  return t;
}
