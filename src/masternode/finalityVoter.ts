/**
 * A masternode's finality votes (docs/CONSENSUS.md, "What an honest voter signs"). On a new best
 * tip B at height h it votes from the highest justified checkpoint on B's branch to (B, 2h); when
 * it sees (B, 2h) justified while B is on its best chain, it votes (B, 2h) -> (B, 2h + 1). Each
 * vote only if its lock allows, and only once the new lock is on disk: a restart can never make
 * it sign a double or surround vote. It votes only where it is in the link's voter set (the
 * era's voter set, and still registered after the source block); each vote is signed for the era
 * in force (committee.ts).
 * Production never waits for any of this.
 */
import type { Chain } from "../chain/chain.js";
import type { BlockIndex } from "../chain/chainStore.js";
import {
  firstEpoch,
  isSecondEpoch,
  lockAfter,
  lockAllows,
  NO_LOCK,
  signVote,
  voteShapeError,
  type Checkpoint,
  type FinalityVote,
  type VoteLock,
} from "../consensus/finality.js";
import type { KeyPair } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";

export interface FinalityVoterModules {
  chain: Chain;
  operatorKey: KeyPair;
  /** Counts the vote here and sends it to the peers (FinalityRelay.publish). */
  publish: (vote: FinalityVote) => void;
  logger: Logger;
}

export class FinalityVoter {
  private lock: VoteLock = NO_LOCK;
  private unsubscribe: Array<() => void> = [];
  /** Votes signed since start. */
  signed = 0;

  constructor(private readonly modules: FinalityVoterModules) {}

  start(): void {
    const { chain } = this.modules;
    this.lock = chain.storage.getVoteLock() ?? NO_LOCK;
    this.unsubscribe.push(chain.events.on("tip", (tip) => this.onTip(tip)));
    this.unsubscribe.push(chain.events.on("justified", (c) => this.onJustified(c)));
    // A new final block may open the next era: vote on the tip again, in that era (the lock
    // refuses the vote when the era did not change).
    this.unsubscribe.push(chain.events.on("finalized", () => this.onTip(chain.tip)));
    this.onTip(chain.tip);
  }

  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** The highest source and target epochs this node has signed (on disk). */
  get currentLock(): VoteLock {
    return this.lock;
  }

  private onTip(tip: BlockIndex): void {
    // A batch (a sync, an import) fires one tip event per block after its commit: vote only on
    // the tip as it stands, not on each block it passed (each vote costs a durable lock write).
    if (tip.height < 1 || !tip.hash.equals(this.modules.chain.tip.hash)) return;
    const source = this.modules.chain.finality.tracker.justifiedAncestor(tip.hash);
    this.vote(source, { epoch: firstEpoch(tip.height), hash: tip.hash });
  }

  private onJustified(c: Checkpoint): void {
    if (isSecondEpoch(c.epoch)) return;
    const { chain } = this.modules;
    const entry = chain.getIndex(c.hash);
    if (!entry || !chain.isMain(entry)) return;
    this.vote(c, { epoch: c.epoch + 1, hash: c.hash });
  }

  private vote(source: Checkpoint, target: Checkpoint): void {
    const { chain, operatorKey } = this.modules;
    const era = chain.finality.tracker.era;
    // Nothing to vote when the target is the source or below it: the tip is the era's anchor (a
    // new era's root), or its first checkpoint is justified already.
    if (voteShapeError({ source, target }) !== null) return;
    if (!lockAllows(this.lock, era, source, target)) return;
    const sourceEntry = chain.getIndex(source.hash);
    const voters = sourceEntry ? chain.finality.linkVoterSet(sourceEntry) : undefined;
    if (!voters || voters.weightOf(operatorKey.publicKey) === 0n) return;
    const next = lockAfter(this.lock, era, source, target);
    try {
      chain.storage.putVoteLock(next);
    } catch (e) {
      // Without the lock on disk the vote must not leave.
      this.modules.logger.error("Finality: storing the vote lock failed; not voting", {}, e);
      return;
    }
    this.lock = next;
    this.signed++;
    this.modules.publish(signVote(operatorKey, chain.genesisHash, source, target, era));
  }
}
