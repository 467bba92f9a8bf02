/**
 * Finality bookkeeping (docs/CONSENSUS.md, "Finality"): the votes a node has seen, which
 * checkpoints they justify, and the last final one. It verifies each vote once, tallies it on its
 * link, and reports what changed: newly justified checkpoints, a new final checkpoint, and
 * evidence when a voter breaks a rule. It reads the chain only through FinalityView, so tests can
 * feed it any block tree.
 *
 * Counting a vote needs both of its blocks: a vote whose source or target block is not stored
 * yet waits (bounded) and is counted by `retryPending` when blocks arrive. A link counts only
 * when its source is justified, its source block is an ancestor of its target block, and each
 * epoch names a block at that epoch's height. Votes are counted in eras (committee.ts): only the
 * votes of the era in force (set by the last final block) count, weighed with that era's voter
 * set less entries no longer registered after the source block; votes of the next era wait for
 * it; and an era's votes make final at most the next era's anchor, which opens that era.
 */
import {
  checkpointKey,
  firstEpoch,
  genesisCheckpoint,
  heightOfEpoch,
  isSecondEpoch,
  isSupermajority,
  linkKey,
  sameCheckpoint,
  slashingOffence,
  voteError,
  voteShapeError,
  type Certificate,
  type Checkpoint,
  type FinalityVote,
} from "../consensus/finality.js";
import type { Registry } from "../consensus/registry.js";
import {
  ERA_RULES,
  eraAnchorHeight,
  eraEndHeight,
  eraOfFinalHeight,
  linkVoters,
  registryVoters,
  type EraRules,
  type VoterSet,
} from "../consensus/committee.js";

/** What the tracker needs to know about blocks. */
export interface FinalityView {
  /** The height of a stored block, or undefined when the block is unknown. */
  heightOf(hash: Buffer): number | undefined;
  /** Whether `ancestor` is `descendant` or one of its ancestors (both stored). */
  isAncestor(ancestor: Buffer, descendant: Buffer): boolean;
  /** The registry after a stored block. */
  registryAfter(hash: Buffer): Registry | undefined;
  /** The hash of the ancestor at `height` of a stored block (itself at its own height). */
  ancestorAt(hash: Buffer, height: number): Buffer | undefined;
  /** The seed of the era a stored anchor block opens (committee.ts, eraSeedOf). */
  eraSeedAt(anchor: Buffer): Buffer | undefined;
}

export interface FinalityLimits {
  /** Votes held while their blocks are unknown; the oldest give way. */
  maxPending: number;
  /** Votes kept per voter, to find the second vote of an offence. */
  votesPerVoter: number;
  /** Links tallied at once (targets above the final epoch); further new links wait for pruning. */
  maxLinks: number;
  /** A vote whose target epoch is this far above the final one is not tracked. */
  maxEpochsAhead: number;
}

export const DEFAULT_FINALITY_LIMITS: FinalityLimits = {
  maxPending: 10_000,
  votesPerVoter: 16,
  maxLinks: 4_096,
  maxEpochsAhead: 20_000,
};

/**
 * invalid: malformed or badly signed (proof against whoever sent it: a relay verifies first);
 * unusable: well signed, but its blocks do not fit it on this node's chain (heights, ancestry);
 * not-voter: its voter is not in the link's voter set.
 */
export type VoteStatus = "counted" | "duplicate" | "pending" | "stale" | "invalid" | "unusable" | "not-voter";

export interface VoteOutcome {
  status: VoteStatus;
  /** Why the vote is invalid or was not counted. */
  reason?: string;
  /** Two signed votes of one voter that break a rule (the second is the new one). */
  evidence?: { offence: "double" | "surround"; a: FinalityVote; b: FinalityVote };
  /** Checkpoints this vote (or votes it unblocked) justified, lowest epoch first. */
  justified: Checkpoint[];
  /** The new last final checkpoint, if it moved. */
  finalized: Checkpoint | null;
  /** A justified checkpoint that conflicts with the final one: at least 1/3 of the weight broke the rules. */
  conflict?: Checkpoint;
}

interface Tally {
  era: number;
  source: Checkpoint;
  target: Checkpoint;
  votes: Map<string, FinalityVote>;
  weight: bigint;
  voters: VoterSet;
}

export class FinalityTracker {
  private readonly justified = new Map<string, Checkpoint>();
  /** The link that justified each checkpoint (by checkpoint key), to show others the proof. */
  private readonly justifiedBy = new Map<string, Tally>();
  private readonly links = new Map<string, Tally>();
  private readonly byVoter = new Map<string, FinalityVote[]>();
  /** The votes byVoter holds, by signature (latin1): a copy is found without a scan. */
  private readonly taken = new Map<string, FinalityVote>();
  /** The voter set of the era in force, for the anchor it was drawn at. */
  private eraSet: { era: number; anchor: Buffer; voters: VoterSet } | null = null;
  /** The registry after the last final block as voters: who may vote in the next era at all. */
  private base: { hash: Buffer; voters: VoterSet } | null = null;
  /** The certificate that closed each recent era (made its end final), for blocks to carry. */
  private readonly closers = new Map<number, Certificate>();
  private pending: FinalityVote[] = [];
  private finalCp: Checkpoint;
  private highest: Checkpoint;
  /** The certificate that made the last final checkpoint final (null for the genesis). */
  private finalCert: Certificate | null = null;

  constructor(
    private readonly genesisHash: Buffer,
    private readonly view: FinalityView,
    private readonly limits: FinalityLimits = DEFAULT_FINALITY_LIMITS,
    restored?: { finalized: Checkpoint; certificate: Certificate | null; closer?: Certificate | null },
    private readonly rules: EraRules = ERA_RULES,
  ) {
    const g = genesisCheckpoint(genesisHash);
    this.justified.set(checkpointKey(g), g);
    this.finalCp = g;
    this.highest = g;
    if (restored) {
      this.finalCp = restored.finalized;
      this.highest = restored.finalized;
      this.finalCert = restored.certificate;
      this.justified.set(checkpointKey(restored.finalized), restored.finalized);
      if (restored.closer) this.closers.set(restored.closer.era, restored.closer);
    }
  }

  /** The era in force: the one whose anchor is the highest at or below the last final block. */
  get era(): number {
    return eraOfFinalHeight(this.finalizedHeight, this.rules.eraBlocks);
  }

  /** The era in force's voter set (null while its anchor's registry is unknown). */
  get voters(): VoterSet | null {
    const era = this.era;
    if (this.eraSet?.era === era) return this.eraSet.voters;
    const anchor = this.view.ancestorAt(this.finalCp.hash, eraAnchorHeight(era, this.rules.eraBlocks));
    const registry = anchor && this.view.registryAfter(anchor);
    const seed = anchor && this.view.eraSeedAt(anchor);
    if (!anchor || !registry || !seed) return null;
    this.eraSet = { era, anchor, voters: this.rules.voters(registry, seed) };
    return this.eraSet.voters;
  }

  /** The certificate that made era `era`'s end final, if this node saw it (recent eras only). */
  closer(era: number): Certificate | null {
    return this.closers.get(era) ?? null;
  }

  get finalized(): Checkpoint {
    return this.finalCp;
  }

  get finalizedHeight(): number {
    return heightOfEpoch(this.finalCp.epoch);
  }

  /** The certificate of the link that finalised the last final checkpoint. */
  get finalCertificate(): Certificate | null {
    return this.finalCert;
  }

  /** The justified checkpoint of the highest epoch. */
  get highestJustified(): Checkpoint {
    return this.highest;
  }

  isJustified(c: Checkpoint): boolean {
    return this.justified.has(checkpointKey(c));
  }

  /** Voters whose recent votes are kept (to find offences); bounded by the final block's registry. */
  get votersTracked(): number {
    return this.byVoter.size;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * The highest justified checkpoint on the branch of `head` (an ancestor of it, or itself):
   * the source an honest voter uses for a vote on `head`.
   */
  justifiedAncestor(head: Buffer): Checkpoint {
    let best: Checkpoint = this.finalCp;
    for (const c of this.justified.values()) {
      if (c.epoch <= best.epoch) continue;
      if (this.view.heightOf(c.hash) !== undefined && this.view.isAncestor(c.hash, head)) best = c;
    }
    return best;
  }

  /** The votes of the link that justified `c` (null for the genesis, or one taken whole). */
  justification(c: Checkpoint): Certificate | null {
    const t = this.justifiedBy.get(checkpointKey(c));
    if (!t) return null;
    return {
      era: t.era,
      source: t.source,
      target: t.target,
      votes: [...t.votes.values()].map((v) => ({ voter: v.voter, signature: v.signature })),
    };
  }

  /** The votes on one link, as a certificate (for gossip), or null if the link is unknown. */
  certificate(source: Checkpoint, target: Checkpoint): Certificate | null {
    const t = this.links.get(linkKey({ era: this.era, source, target }));
    if (!t) return null;
    return {
      era: t.era,
      source,
      target,
      votes: [...t.votes.values()].map((v) => ({ voter: v.voter, signature: v.signature })),
    };
  }

  /** Verifies and counts one vote. */
  addVote(v: FinalityVote): VoteOutcome {
    const out: VoteOutcome = { status: "counted", justified: [], finalized: null };
    // The cheap checks first: a stale vote costs no signature check.
    const shape = voteShapeError(v);
    if (shape) return { ...out, status: "invalid", reason: shape };
    const era = this.era;
    if (v.era < era || v.target.epoch <= this.finalCp.epoch) {
      // Too late to count, not too late to convict: a voter's other side of a split arrives here
      // after the heal. The signature is checked only when the vote would be evidence.
      const offence = this.offenceWith(v);
      if (offence && voteError(this.genesisHash, v) === null) out.evidence = offence;
      const reason =
        v.era < era ? `era ${v.era} is over (era ${era} is in force)` : "at or below the final epoch";
      return { ...out, status: "stale", reason };
    }
    if (v.target.epoch > this.finalCp.epoch + this.limits.maxEpochsAhead || v.era > era + 1)
      return { ...out, status: "stale", reason: "too far above the final epoch or era" };
    // A key outside the era's voter set can never count: dropped before its signature is checked
    // or its vote kept (else any fresh key could fill byVoter without bound). A vote for the next
    // era, whose voter set is not known yet, must at least come from a registered masternode.
    const allowed = v.era === era ? this.voters : this.baseVoters();
    if (allowed?.weightOf(v.voter) === 0n)
      return {
        ...out,
        status: "not-voter",
        reason:
          v.era === era
            ? `the voter is not in era ${era}'s voter set`
            : "the voter is not registered after the last final block",
      };
    // A copy of a vote already taken (flooding brings each one from several peers) costs no
    // signature check: the same signature on the same link was verified the first time.
    if (this.isCopy(v)) return { ...out, status: "duplicate" };
    // Its target is justified already (a second-epoch target only through its own block's first
    // epoch, which is then final): one more vote changes nothing here. Every masternode sees each
    // link's votes from all voters, and each final certificate from several peers, but a link
    // needs only a supermajority, so most votes arrive after this point. Like a stale vote it is
    // checked only when it would be evidence, and it is neither kept nor passed on.
    if (v.era === era && this.isJustified(v.target)) {
      const offence = this.offenceWith(v);
      if (offence && voteError(this.genesisHash, v) === null) out.evidence = offence;
      return { ...out, status: "stale", reason: "its target is already justified" };
    }
    const bad = voteError(this.genesisHash, v);
    if (bad) return { ...out, status: "invalid", reason: bad };
    const offence = this.recordForVoter(v);
    if (offence === "duplicate") return { ...out, status: "duplicate" };
    if (offence) out.evidence = offence;
    this.count(v, out);
    this.onEraOpened(era, out);
    return out;
  }

  /**
   * Takes a checked certificate of a second-epoch link (B, 2h) -> (B, 2h + 1) that the caller has
   * verified against B's registry and found on the final block's branch: B is final.
   */
  acceptFinal(cert: Certificate): VoteOutcome {
    const out: VoteOutcome = { status: "counted", justified: [], finalized: null };
    if (cert.era !== this.era || cert.source.epoch <= this.finalCp.epoch) return out;
    for (const c of [cert.source, cert.target]) {
      if (this.isJustified(c)) continue;
      this.justified.set(checkpointKey(c), c);
      out.justified.push(c);
    }
    if (cert.target.epoch > this.highest.epoch) this.highest = cert.target;
    const era = this.era;
    this.setFinal(cert, out);
    this.onEraOpened(era, out);
    return out;
  }

  /**
   * If a later era than `before` opened, the votes for it that waited (they came before this node
   * saw the anchor final) count now, and what they justify or finalise joins `out`.
   */
  private onEraOpened(before: number, out: VoteOutcome): void {
    for (let i = 0; i < 4 && this.era !== before; i++) {
      before = this.era;
      const more = this.recount();
      out.justified.push(...more.justified);
      if (more.finalized) out.finalized = more.finalized;
      if (more.conflict) out.conflict = more.conflict;
      out.evidence ??= more.evidence;
    }
  }

  /**
   * `cert` finalises its source checkpoint's block B. An era's votes make final at most the next
   * era's anchor: when B is above it, the anchor (B's ancestor there) is the final block, and
   * what lies above it is the next era's to finalise. Reaching the anchor opens the next era.
   * The final checkpoint is always a block's first; a link that finalises a block already final
   * (from its second checkpoint, (B, 2h + 1) -> (C, 2h + 2)) changes nothing and announces
   * nothing.
   */
  private setFinal(cert: Certificate, out: VoteOutcome): void {
    const end = eraEndHeight(cert.era, this.rules.eraBlocks);
    let height = heightOfEpoch(cert.source.epoch);
    let hash: Buffer | undefined = cert.source.hash;
    if (height > end) {
      hash = this.view.ancestorAt(hash, end);
      height = end;
    }
    if (!hash || height <= this.finalizedHeight) return;
    const era = this.era;
    const proof = this.carriable(cert);
    this.finalCp = { epoch: firstEpoch(height), hash };
    this.finalCert = proof;
    out.finalized = this.finalCp;
    if (this.era !== era) this.openEra(proof);
    this.prune();
  }

  /**
   * The certificate a block can carry for what `cert` finalised: `cert` itself when it is a
   * block's second link (B, 2h) -> (B, 2h + 1), the only shape on chain; for a link from a second
   * checkpoint, (B, 2h + 1) -> (C, 2h + 2), the second link that justified (B, 2h + 1).
   */
  private carriable(cert: Certificate): Certificate {
    if (isSecondEpoch(cert.target.epoch)) return cert;
    return this.justification(cert.source) ?? cert;
  }

  /**
   * The last final block reached the next era's anchor: that era's votes count from now on, from
   * the anchor (justified and final). Checkpoints the old era justified above it are not justified
   * in the new one, and its links count no more.
   */
  private openEra(closer: Certificate): void {
    this.closers.set(closer.era, closer);
    for (const e of this.closers.keys()) if (e < closer.era - 3) this.closers.delete(e);
    this.links.clear();
    this.justified.clear();
    this.justifiedBy.clear();
    this.justified.set(checkpointKey(this.finalCp), this.finalCp);
    this.highest = this.finalCp;
  }

  /**
   * Blocks (hex) whose second link has a supermajority among the votes still waiting for their
   * blocks, weighed with the registry after the last final block (the base of every voter set
   * here; the source's registry, which may only take voters out, is unknown with the block). Not
   * a decision: a reason to fetch the branch that holds them (the sync), after which the votes
   * are counted for real.
   */
  claimedFinal(): Set<string> {
    const voters = this.voters;
    if (!voters) return new Set();
    const era = this.era;
    const byTarget = new Map<string, Set<string>>();
    for (const v of this.pending) {
      if (v.era !== era) continue;
      if (v.target.epoch !== v.source.epoch + 1 || !v.target.hash.equals(v.source.hash)) continue;
      const k = v.target.hash.toString("hex");
      const ids = byTarget.get(k) ?? new Set<string>();
      ids.add(v.voter.toString("hex"));
      byTarget.set(k, ids);
    }
    const out = new Set<string>();
    for (const [k, ids] of byTarget) {
      let w = 0n;
      for (const id of ids) w += voters.weightOf(Buffer.from(id, "hex"));
      if (isSupermajority(w, voters.total)) out.add(k);
    }
    return out;
  }

  /** Counts the waiting votes whose blocks have arrived. */
  retryPending(): VoteOutcome {
    const era = this.era;
    const out = this.recount();
    this.onEraOpened(era, out);
    return out;
  }

  private recount(): VoteOutcome {
    const out: VoteOutcome = { status: "counted", justified: [], finalized: null };
    const waiting = this.pending;
    this.pending = [];
    for (const v of waiting) {
      if (v.era < this.era || v.target.epoch <= this.finalCp.epoch) continue;
      this.count(v, out);
    }
    return out;
  }

  /** Whether `v` is a copy (same link, same signature) of a vote already taken from its voter. */
  private isCopy(v: FinalityVote): boolean {
    const old = this.taken.get(v.signature.toString("latin1"));
    return old !== undefined && old.voter.equals(v.voter) && sameLink(old, v);
  }

  /** The registry after the last final block as voters (null while that registry is unknown). */
  private baseVoters(): VoterSet | null {
    if (this.base?.hash.equals(this.finalCp.hash)) return this.base.voters;
    const registry = this.view.registryAfter(this.finalCp.hash);
    if (!registry) return null;
    this.base = { hash: this.finalCp.hash, voters: registryVoters(registry) };
    return this.base.voters;
  }

  /** An offence `v` commits with one of its voter's recent votes, without keeping `v`. */
  private offenceWith(v: FinalityVote): VoteOutcome["evidence"] | null {
    for (const old of this.byVoter.get(v.voter.toString("hex")) ?? []) {
      const offence = slashingOffence(old, v);
      if (offence) return { offence, a: old, b: v };
    }
    return null;
  }

  /** Keeps `v` in its voter's recent votes; reports a rule it breaks with one of them. */
  private recordForVoter(v: FinalityVote): "duplicate" | VoteOutcome["evidence"] | null {
    const id = v.voter.toString("hex");
    const mine = this.byVoter.get(id) ?? [];
    let evidence: VoteOutcome["evidence"] | null = null;
    for (const old of mine) {
      if (old.signature.equals(v.signature) && sameLink(old, v)) return "duplicate";
      const offence = slashingOffence(old, v);
      if (offence && !evidence) evidence = { offence, a: old, b: v };
    }
    mine.push(v);
    this.taken.set(v.signature.toString("latin1"), v);
    if (mine.length > this.limits.votesPerVoter)
      this.taken.delete(mine.shift()!.signature.toString("latin1"));
    this.byVoter.set(id, mine);
    return evidence;
  }

  private count(v: FinalityVote, out: VoteOutcome): void {
    if (v.era < this.era) {
      out.status = "stale";
      out.reason = `era ${v.era} is over`;
      return;
    }
    const sh = this.view.heightOf(v.source.hash);
    const th = this.view.heightOf(v.target.hash);
    // A vote for the next era waits for it to open, like a vote whose blocks are unknown.
    if (sh === undefined || th === undefined || v.era > this.era) {
      this.pending.push(v);
      if (this.pending.length > this.limits.maxPending) this.pending.shift();
      out.status = "pending";
      return;
    }
    if (sh !== heightOfEpoch(v.source.epoch) || th !== heightOfEpoch(v.target.epoch)) {
      out.status = "unusable";
      out.reason = "a checkpoint's epoch does not match its block's height";
      return;
    }
    if (!this.view.isAncestor(v.source.hash, v.target.hash)) {
      out.status = "unusable";
      out.reason = "the source block is not an ancestor of the target block";
      return;
    }
    const key = linkKey(v);
    let t = this.links.get(key);
    if (!t) {
      if (this.links.size >= this.limits.maxLinks) {
        out.status = "stale";
        out.reason = "too many links in flight";
        return;
      }
      const registry = this.view.registryAfter(v.source.hash);
      const voters = this.voters;
      if (!registry || !voters) {
        this.pending.push(v);
        out.status = "pending";
        return;
      }
      t = {
        era: v.era,
        source: v.source,
        target: v.target,
        votes: new Map(),
        weight: 0n,
        voters: linkVoters(voters, registry),
      };
      this.links.set(key, t);
    }
    const id = v.voter.toString("hex");
    const w = t.voters.weightOf(v.voter);
    if (w === 0n) {
      out.status = "not-voter";
      out.reason =
        "the voter is not in the link's voter set (its era's, and still registered after the source)";
      return;
    }
    if (t.votes.has(id)) {
      out.status = "duplicate";
      return;
    }
    t.votes.set(id, v);
    t.weight += w;
    this.settle(t, out);
  }

  /** Justifies (and finalises) what `t` now supports, then whatever that unblocks. */
  private settle(first: Tally, out: VoteOutcome): void {
    const queue = [first];
    while (queue.length > 0) {
      const t = queue.shift()!;
      if (!isSupermajority(t.weight, t.voters.total) || this.isJustified(t.target)) continue;
      if (!this.isJustified(t.source)) {
        // A block's second link (B, 2h) -> (B, 2h + 1) with a supermajority: more than 1/3 of the
        // weight is honest among its voters, and an honest voter signs it only once it has seen
        // (B, 2h) justified. So (B, 2h) is justified, though this node missed the votes (it was
        // away or syncing): take it, and B is final below.
        const secondLink = t.target.epoch === t.source.epoch + 1 && t.source.epoch > this.finalCp.epoch;
        if (!secondLink) continue;
        this.justified.set(checkpointKey(t.source), t.source);
        out.justified.push(t.source);
      }
      this.justified.set(checkpointKey(t.target), t.target);
      this.justifiedBy.set(checkpointKey(t.target), t);
      out.justified.push(t.target);
      if (t.target.epoch > this.highest.epoch) this.highest = t.target;
      if (!this.onFinalBranch(t.target)) out.conflict = t.target;
      if (t.target.epoch === t.source.epoch + 1 && t.source.epoch > this.finalCp.epoch) {
        if (this.onFinalBranch(t.source)) {
          const votes = [...t.votes.values()].map((x) => ({ voter: x.voter, signature: x.signature }));
          this.setFinal({ era: t.era, source: t.source, target: t.target, votes }, out);
        } else {
          out.conflict = t.source;
        }
      }
      // Links waiting on this checkpoint as their source may now count.
      for (const other of this.links.values()) {
        if (other.source.epoch === t.target.epoch && other.source.hash.equals(t.target.hash))
          queue.push(other);
      }
    }
  }

  /** Whether `c` descends from (or is) the last final checkpoint's block. */
  private onFinalBranch(c: Checkpoint): boolean {
    return this.view.isAncestor(this.finalCp.hash, c.hash);
  }

  /** Drops links and justified checkpoints at or below the final epoch. */
  private prune(): void {
    const f = this.finalCp.epoch;
    for (const [k, t] of this.links) if (t.target.epoch <= f) this.links.delete(k);
    for (const [k, c] of this.justified)
      if (c.epoch < f) {
        this.justified.delete(k);
        this.justifiedBy.delete(k);
      }
    const era = this.era;
    this.pending = this.pending.filter((v) => v.target.epoch > f && v.era >= era);
  }
}

function sameLink(a: FinalityVote, b: FinalityVote): boolean {
  return a.era === b.era && sameCheckpoint(a.source, b.source) && sameCheckpoint(a.target, b.target);
}
