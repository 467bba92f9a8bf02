/**
 * Finality on the stored chain (docs/CONSENSUS.md, "Finality"): the FinalityTracker over the
 * block index, the last final checkpoint kept on disk (with the certificate that finalised it),
 * and certificates received whole from peers. Chain builds it and reads `finalizedHeight` for its
 * two guards: no reorg below the final block, no side block that forks below it.
 */
import { CodecError, Reader, Writer } from "../codec/index.js";
import {
  certificateError,
  heightOfEpoch,
  isSecondEpoch,
  readCertificate,
  writeCertificate,
  type Certificate,
  type Checkpoint,
  type FinalityVote,
} from "../consensus/finality.js";
import { findByOperator, MAX_REGISTRY_SIZE, type Registry } from "../consensus/registry.js";
import {
  eraAnchorHeight,
  eraOfFinalHeight,
  eraSeedInput,
  eraSeedOf,
  eraVoters,
  isEraAnchor,
  linkVoters,
  type VoterSet,
} from "../consensus/committee.js";
import { makeVoteOffence, type VoteOffence } from "../consensus/voteEvidence.js";
import { certifiedHeight, finalityTx, type FinalityContext } from "../consensus/finalityTx.js";
import type { Tx } from "../primitives/tx.js";
import { ancestorOf } from "./blockTree.js";
import type { BlockIndex, ChainStore } from "./chainStore.js";
import { isBetterTip } from "./forkOrder.js";
import type { ChainLogger } from "./chainTypes.js";
import { FinalityTracker, type FinalityView, type VoteOutcome } from "./finalityTracker.js";

export interface ChainFinalityDeps {
  store: ChainStore;
  genesisHash: Buffer;
  logger: ChainLogger | undefined;
  /** Tells the chain's listeners that a block became final. */
  emitFinalized: (c: Checkpoint, certificate: Certificate) => void;
  /** Tells them that a checkpoint became justified (an honest voter's cue for its next vote). */
  emitJustified: (c: Checkpoint) => void;
  /** Keeps evidence that a voter broke a voting rule (the evidence book). */
  recordVoteEvidence: (o: VoteOffence) => void;
  /** What following a final block onto another branch needs of the chain. */
  fork: {
    tip: () => BlockIndex;
    /** A batch of blocks is being processed (its events wait for the commit). */
    inBatch: () => boolean;
    isKnownInvalid: (hash: Buffer) => boolean;
    reorgTo: (target: BlockIndex) => unknown;
  };
}

interface FinalityRecord {
  finalized: Checkpoint;
  certificate: Certificate | null;
  /** The certificate that closed the era before the one in force, for blocks to carry. */
  closer: Certificate | null;
}

/**
 * The F record: the final checkpoint, then a u8 flag (0: the genesis, no certificate; 2: its
 * certificate and then the previous era's closing certificate, each behind a u8 presence flag).
 * Flag 1 is the record from before eras: its certificate is not read.
 */
function encodeFinality(c: Checkpoint, cert: Certificate | null, closer: Certificate | null): Buffer {
  const w = new Writer(256);
  w.u32(c.epoch)
    .fixed(c.hash, 32)
    .u8(cert ? 2 : 0);
  if (!cert) return w.toBuffer();
  writeCertificate(w, cert);
  w.u8(closer ? 1 : 0);
  if (closer) writeCertificate(w, closer);
  return w.toBuffer();
}

function decodeFinality(buf: Buffer): FinalityRecord {
  const r = new Reader(buf);
  const finalized = { epoch: r.u32(), hash: r.fixed(32) };
  if (r.u8() !== 2) return { finalized, certificate: null, closer: null };
  const certificate = readCertificate(r, MAX_REGISTRY_SIZE);
  const closer = r.u8() === 1 ? readCertificate(r, MAX_REGISTRY_SIZE) : null;
  return { finalized, certificate, closer };
}

export class ChainFinality {
  readonly tracker: FinalityTracker;
  /** Era voter sets by anchor hash (hex), for certificates on chain; a few recent ones. */
  private readonly eraSets = new Map<string, VoterSet>();
  /** Era seeds by anchor hash (hex); a few recent ones. */
  private readonly seeds = new Map<string, Buffer>();

  constructor(private readonly deps: ChainFinalityDeps) {
    const store = deps.store;
    const view: FinalityView = {
      heightOf: (hash) => store.getIndex(hash)?.height,
      isAncestor: (a, d) => {
        const de = store.getIndex(d);
        const ae = store.getIndex(a);
        if (!de || !ae || ae.height > de.height) return false;
        return ancestorOf(store, de, ae.height).hash.equals(a);
      },
      registryAfter: (hash): Registry | undefined => {
        const e = store.getIndex(hash);
        return e ? store.getRegistryByRoot(e.mnRoot) : undefined;
      },
      ancestorAt: (hash, height) => {
        const e = store.getIndex(hash);
        return e && height <= e.height ? ancestorOf(store, e, height).hash : undefined;
      },
      eraSeedAt: (anchor) => this.seedAt(anchor),
    };
    let restored: FinalityRecord | undefined;
    const raw = store.getFinality();
    if (raw) {
      try {
        restored = decodeFinality(raw);
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        deps.logger?.warn("The stored final checkpoint does not decode; starting from the genesis", {}, e);
      }
    }
    this.tracker = new FinalityTracker(deps.genesisHash, view, undefined, restored);
  }

  get finalized(): Checkpoint {
    return this.tracker.finalized;
  }

  get finalizedHeight(): number {
    return this.tracker.finalizedHeight;
  }

  /** Verifies and counts a vote; a block that becomes final is stored and announced. */
  addVote(v: FinalityVote): VoteOutcome {
    return this.settled(this.tracker.addVote(v));
  }

  /**
   * The voter set of a link whose source is the stored block `source`: the voter set of the era
   * in force, less the entries not registered after the source (committee.ts).
   */
  linkVoterSet(source: BlockIndex): VoterSet | undefined {
    const era = this.tracker.voters;
    const registry = this.deps.store.getRegistryByRoot(source.mnRoot);
    return era && registry ? linkVoters(era, registry) : undefined;
  }

  /** The seed of the era the stored anchor block `hash` opens (cached for a few anchors). */
  seedAt(hash: Buffer): Buffer | undefined {
    const k = hash.toString("hex");
    const hit = this.seeds.get(k);
    if (hit) return hit;
    const entry = this.deps.store.getIndex(hash);
    const block = entry && (entry.height === 0 ? null : this.deps.store.getBlock(hash));
    if (!entry || (entry.height > 0 && !block)) return undefined;
    const seed = eraSeedOf({
      hash,
      height: entry.height,
      coinbasePayload: block?.txs[0]?.payload ?? Buffer.alloc(0),
    });
    if (!seed) return undefined;
    if (this.seeds.size >= 8) this.seeds.delete(this.seeds.keys().next().value!);
    this.seeds.set(k, seed);
    return seed;
  }

  /**
   * What the producer of a child of `parent` proves its VRF over when that child is an era's
   * anchor (committee.ts, eraSeedInput), or undefined when it is not one (or the previous
   * era's anchor is not stored).
   */
  eraProofInputForChild(parent: BlockIndex): Buffer | undefined {
    const height = parent.height + 1;
    if (!isEraAnchor(height)) return undefined;
    const era = eraOfFinalHeight(height);
    const previous = this.seedAt(ancestorOf(this.deps.store, parent, eraAnchorHeight(era - 1)).hash);
    return previous && eraSeedInput(this.deps.genesisHash, era, previous);
  }

  /** The voter set of the era whose anchor is `anchor` (cached for a few anchors). */
  private eraSetAt(anchor: { hash: Buffer; registry: Registry | undefined }): VoterSet | undefined {
    const k = anchor.hash.toString("hex");
    const hit = this.eraSets.get(k);
    if (hit) return hit;
    const seed = this.seedAt(anchor.hash);
    if (!anchor.registry || !seed) return undefined;
    const set = eraVoters(anchor.registry, seed);
    if (this.eraSets.size >= 4) this.eraSets.delete(this.eraSets.keys().next().value!);
    this.eraSets.set(k, set);
    return set;
  }

  /** Blocks (hex) that waiting votes claim final (FinalityTracker.claimedFinal). */
  claimedFinal(): Set<string> {
    return this.tracker.claimedFinal();
  }

  /** Counts the votes that waited for blocks that have now arrived. */
  retryPending(): VoteOutcome {
    return this.settled(this.tracker.retryPending());
  }

  /**
   * A certificate received whole (a peer's final certificate, for a node that was away). Only a
   * second-epoch link finalises: (B, 2h) -> (B, 2h + 1). More than 2/3 of the weight signed it,
   * and an honest voter signs it only once it has seen (B, 2h) justified. Returns why it was not
   * taken, or null.
   */
  acceptCertificate(genesisHash: Buffer, cert: Certificate): string | null {
    if (!isSecondEpoch(cert.target.epoch)) return "only a second-epoch certificate finalises a block";
    if (cert.target.epoch <= this.finalized.epoch + 1) return null;
    // Another era's voter set is not this node's to check: an earlier era's certificate finalises
    // nothing new, and a later one needs the blocks (and their certificates) in between.
    if (cert.era !== this.tracker.era)
      return `a certificate of era ${cert.era}, not the era in force (${this.tracker.era})`;
    const entry = this.deps.store.getIndex(cert.source.hash);
    if (!entry) return "the certified block is unknown";
    if (entry.height !== heightOfEpoch(cert.source.epoch))
      return "the certified epoch is not its block's height";
    const voters = this.linkVoterSet(entry);
    if (!voters) return "the certified block's registry is unknown";
    const bad = certificateError(genesisHash, cert, voters);
    if (bad) return bad;
    const fin = ancestorOf(this.deps.store, entry, this.finalizedHeight);
    if (!fin.hash.equals(this.finalized.hash)) {
      (this.deps.logger?.error ?? this.deps.logger?.warn)?.call(
        this.deps.logger,
        "A valid certificate conflicts with the final block: over 1/3 of the weight broke the rules",
        {
          certified: entry.hash.toString("hex"),
          height: entry.height,
          final: this.finalized.hash.toString("hex"),
        },
      );
      return "the certified block conflicts with the final block";
    }
    const out = this.tracker.acceptFinal(cert);
    this.settled(out);
    return null;
  }

  /** What validation needs to check a certificate carried by a child of `parent` (rules C4–C7). */
  contextFor(parent: BlockIndex): FinalityContext {
    const store = this.deps.store;
    const branchBlock = (height: number): { hash: Buffer; registry: Registry | undefined } | undefined => {
      if (height > parent.height) return undefined;
      const e = ancestorOf(store, parent, height);
      return { hash: e.hash, registry: store.getRegistryByRoot(e.mnRoot) };
    };
    return {
      genesisHash: this.deps.genesisHash,
      parentCertified: parent.certified ?? 0,
      branchBlock,
      eraVoters: (era) => {
        const anchor = branchBlock(eraAnchorHeight(era));
        return anchor && this.eraSetAt(anchor);
      },
      eraSeed: (era) => {
        const anchor = branchBlock(eraAnchorHeight(era));
        return anchor && this.seedAt(anchor.hash);
      },
    };
  }

  /**
   * Main-chain blocks carried these certificates (one block's, or a batch's last of each era), and
   * validation checked them (rules C1–C7): their blocks are final. The blocks are on the main
   * chain, which holds the final block, so they cannot conflict with it; an older one changes
   * nothing.
   */
  acceptOnChain(certs: readonly Certificate[]): void {
    // In order: each era's last certificate closes that era before the next era's counts. What
    // they make final is written and announced once.
    const out: VoteOutcome = { status: "counted", justified: [], finalized: null };
    for (const cert of certs) {
      if (cert.era !== this.tracker.era || cert.target.epoch <= this.finalized.epoch + 1) continue;
      const one = this.tracker.acceptFinal(cert);
      out.justified.push(...one.justified);
      out.finalized = one.finalized ?? out.finalized;
    }
    if (out.finalized) this.settled(out);
  }

  /**
   * The Finality transaction a child of `parent` should carry: the certificate of the last final
   * block, when that block is on `parent`'s branch, above what the branch has certified, and of
   * the branch's era (C7); or, when the branch is still in the era before, the certificate that
   * closed it.
   */
  pendingTx(parent: BlockIndex): Tx | null {
    const certified = parent.certified ?? 0;
    const era = eraOfFinalHeight(certified);
    const final = this.tracker.finalCertificate;
    const cert = final?.era === era ? final : this.tracker.closer(era);
    // Only a block's second link goes on chain (rule C2).
    if (!cert || !isSecondEpoch(cert.target.epoch) || cert.source.epoch + 1 !== cert.target.epoch)
      return null;
    const height = certifiedHeight(cert);
    if (height <= certified || height > parent.height) return null;
    const store = this.deps.store;
    const entry = ancestorOf(store, parent, height);
    if (!entry.hash.equals(cert.source.hash)) return null;
    const voters = this.contextFor(parent).eraVoters(era);
    const registry = store.getRegistryByRoot(entry.mnRoot);
    return voters && registry ? finalityTx(cert, linkVoters(voters, registry)) : null;
  }

  /** Whether the branch ending at `entry` holds the last final block (at its height). */
  holds(entry: BlockIndex): boolean {
    const h = this.finalizedHeight;
    return entry.height >= h && ancestorOf(this.deps.store, entry, h).hash.equals(this.finalized.hash);
  }

  /**
   * A block just became final. If the tip's branch does not hold it (this node was on another
   * side of a split when more than 2/3 of the weight finalised it), switch to the best stored tip
   * that does: fork choice ranks only branches that hold the final block.
   */
  private followFinal(): void {
    const { store, logger, fork } = this.deps;
    if (fork.inBatch() || this.holds(fork.tip())) return;
    const f = this.finalized;
    let best = store.getIndex(f.hash);
    if (!best) return;
    for (const { hash } of store.iterateSide()) {
      const e = store.getIndex(hash);
      if (e && !fork.isKnownInvalid(hash) && this.holds(e) && isBetterTip(e, best)) best = e;
    }
    logger?.warn("The final block is not on this node's branch: switching to the best branch that holds it", {
      final: f.hash.toString("hex"),
      tip: fork.tip().hash.toString("hex"),
      to: best.hash.toString("hex"),
    });
    try {
      fork.reorgTo(best);
    } catch (e) {
      logger?.warn("Switching to the final block's branch failed", {}, e);
    }
  }

  private settled(out: VoteOutcome): VoteOutcome {
    for (const c of out.justified) this.deps.emitJustified(c);
    // Both votes are verified (the tracker checks a vote's signature before it can convict).
    // Kept only against a registered masternode: only that can go on chain, and the table stays
    // bounded by the registry.
    if (out.evidence && findByOperator(this.deps.store.getRegistry(), out.evidence.a.voter))
      this.deps.recordVoteEvidence(makeVoteOffence(out.evidence.a, out.evidence.b));
    if (out.conflict) {
      (this.deps.logger?.error ?? this.deps.logger?.warn)?.call(
        this.deps.logger,
        "A justified checkpoint conflicts with the final block: over 1/3 of the weight broke the rules",
        {
          epoch: out.conflict.epoch,
          hash: out.conflict.hash.toString("hex"),
        },
      );
    }
    if (out.finalized) {
      const cert = this.tracker.finalCertificate;
      const closer = this.tracker.closer(this.tracker.era - 1);
      this.deps.store.putFinality(encodeFinality(out.finalized, cert, closer));
      if (cert) this.deps.emitFinalized(out.finalized, cert);
      this.followFinal();
    }
    return out;
  }
}
