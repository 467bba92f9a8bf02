/**
 * Evidence keeping for Chain: equivocation evidence found here or received is stored once per
 * offender, listed, and turned into evidence transactions for the next block. Chain builds one
 * at open and hands it the store and a plain function to emit the "evidence" event (so events
 * still wait for a batch's commit); it never imports chain.ts.
 */
import {
  checkEquivocation,
  decodeEquivocation,
  makeEquivocation,
  describeEquivocation,
  encodeEquivocation,
  evidenceTx,
  offenderOf,
  type Equivocation,
} from "../consensus/evidence.js";
import { findByOperator as findRegistered } from "../consensus/registry.js";
import type { BlockHeader } from "../primitives/block.js";
import {
  decodeVoteOffence,
  describeVoteOffence,
  encodeVoteOffence,
  voteEvidenceTx,
  voteOffender,
  VOTE_EVIDENCE_SIZE,
  type VoteOffence,
} from "../consensus/voteEvidence.js";
import type { Tx } from "../primitives/tx.js";
import type { Clock } from "../util/clock.js";
import type { ChainStore } from "./chainStore.js";
import type { ChainLogger } from "./chainTypes.js";

export interface EvidenceDeps {
  store: ChainStore;
  clock: Clock;
  logger: ChainLogger | undefined;
  /** Emits the chain's "evidence" event. */
  emit: (ev: Equivocation) => void;
  /** Emits the chain's "voteEvidence" event. */
  emitVote: (o: VoteOffence) => void;
}

/** A stored record is two headers (equivocation) or two votes (a voting offence), by its length. */
function decodeStored(bytes: Uint8Array): { blocks: Equivocation } | { votes: VoteOffence } {
  return bytes.length === VOTE_EVIDENCE_SIZE
    ? { votes: decodeVoteOffence(bytes) }
    : { blocks: decodeEquivocation(bytes) };
}

export class EvidenceBook {
  constructor(private readonly deps: EvidenceDeps) {}

  /**
   * Keeps evidence of equivocation (the first one per offender is all that is needed). Returns
   * true when it is new. The caller has checked it (checkEquivocation).
   */
  record(ev: Equivocation): boolean {
    const store = this.deps.store;
    const offender = offenderOf(ev);
    const fresh = store.atomically(() =>
      store.putEvidence(offender, encodeEquivocation(ev), this.deps.clock.now()),
    );
    if (!fresh) return false;
    this.deps.logger?.warn(
      "Equivocation: a producer signed two blocks for one slot",
      describeEquivocation(ev),
    );
    this.deps.emit(ev);
    return true;
  }

  /**
   * A header seen without its block (a NewTip announcement, or one the sync refuses before
   * download, such as a twin of a final block): if its producer already has another stored block
   * for the same (height, round) and both signatures verify, that is evidence, kept as if the
   * block had arrived. Only against a producer registered at the tip, once per offender.
   * Returns whether new evidence was recorded.
   */
  noteHeader(header: BlockHeader, hash: Buffer): boolean {
    const store = this.deps.store;
    const holder = store.getSlot(header.producer, header.height, header.round);
    if (!holder || holder.equals(hash) || this.hasAgainst(header.producer)) return false;
    if (!findRegistered(store.getRegistry(), header.producer)) return false;
    const other = store.getHeader(holder);
    if (!other) return false;
    const ev = makeEquivocation(other, header);
    try {
      checkEquivocation(ev);
    } catch {
      return false; // a forged signature is not proof against the producer
    }
    return this.record(ev);
  }

  /**
   * Keeps evidence that a finality voter broke a voting rule (the tracker found it and checked
   * both signatures). One piece per offender, shared with equivocation evidence: either removes
   * it. Returns true when it is new.
   */
  recordVote(o: VoteOffence): boolean {
    const store = this.deps.store;
    const fresh = store.atomically(() =>
      store.putEvidence(voteOffender(o), encodeVoteOffence(o), this.deps.clock.now()),
    );
    if (!fresh) return false;
    this.deps.logger?.warn("Finality: a voter signed two votes that break a rule", describeVoteOffence(o));
    this.deps.emitVote(o);
    return true;
  }

  /** Whether evidence against this operator key is held. */
  hasAgainst(operator: Uint8Array): boolean {
    return this.deps.store.getEvidence(operator) !== undefined;
  }

  /** Every piece of equivocation evidence held, with when it was first seen and where it was put on chain. */
  list(): Array<{ evidence: Equivocation; seenAt: number; slashedAt: number | null }> {
    return this.all().flatMap((r) =>
      "blocks" in r.ev ? [{ evidence: r.ev.blocks, seenAt: r.seenAt, slashedAt: r.slashedAt }] : [],
    );
  }

  /** Every piece of vote evidence held, likewise. */
  listVotes(): Array<{ evidence: VoteOffence; seenAt: number; slashedAt: number | null }> {
    return this.all().flatMap((r) =>
      "votes" in r.ev ? [{ evidence: r.ev.votes, seenAt: r.seenAt, slashedAt: r.slashedAt }] : [],
    );
  }

  private all(): Array<{
    operator: Buffer;
    ev: { blocks: Equivocation } | { votes: VoteOffence };
    seenAt: number;
    slashedAt: number | null;
  }> {
    const out = [];
    for (const r of this.deps.store.iterateEvidence()) {
      try {
        out.push({
          operator: r.operator,
          ev: decodeStored(r.bytes),
          seenAt: r.seenAt,
          slashedAt: this.deps.store.slashedAt(r.operator) ?? null,
        });
      } catch {
        // Stored by this node after checking; skip anything unreadable rather than fail the list.
      }
    }
    return out;
  }

  /**
   * Evidence transactions for the next block on the tip: against producers and voters still
   * registered after the tip (at most `max`, Evidence and VoteEvidence together).
   */
  pendingTxs(max: number): Tx[] {
    const registry = this.deps.store.getRegistry();
    const out: Tx[] = [];
    for (const { operator, ev } of this.all()) {
      if (out.length >= max) break;
      if (!findRegistered(registry, operator)) continue;
      out.push("blocks" in ev ? evidenceTx(ev.blocks) : voteEvidenceTx(ev.votes));
    }
    return out;
  }
}
