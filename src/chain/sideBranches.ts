/**
 * Side-branch policy for Chain: which side blocks are worth storing (their branch could still
 * win, or the sync expects them), and pruning the stored ones that can no longer win. Chain
 * builds one at open and hands it the store and plain functions (the tip, forgetting a cached
 * schedule); it never imports chain.ts.
 */
import type { Clock } from "../util/clock.js";
import { BoundedMap } from "../util/boundedMap.js";
import { blockHash, type BlockHeader } from "../primitives/block.js";
import { ROUND_WEIGHT_BASE } from "../primitives/constants.js";
import type { ChainParams } from "../primitives/params.js";
import { blockWork, type BlockIndex, type ChainStore } from "./chainStore.js";
import type { ChainLogger, SideRefusal } from "./chainTypes.js";
export type { SideRefusal };

/**
 * A side block is stored only while its branch could still win: its cumulative work is at least
 * the tip's minus the work of 8 round-0 blocks (or the sync has validated headers showing its
 * branch beats the tip), and it forks above tip − max_reorg_depth. A competing block at the tip,
 * a partition's other side and a late block all fit; junk on an old parent does not.
 */
export const SIDE_BRANCH_WORK_MARGIN = 8n * ROUND_WEIGHT_BASE;
/** Hashes the sync coordinator has validated headers for and will fetch (bounded). */
const MAX_EXPECTED = 20_000;

export interface SideBranchDeps {
  store: ChainStore;
  clock: Clock;
  logger: ChainLogger | undefined;
  /** The chain's params (the reorg policy's maxDepth is read from it). */
  params: ChainParams;
  /** The current tip. */
  tip: () => BlockIndex;
  /** Drops a pruned block's cached schedule. */
  forgetSchedule: (hash: Buffer) => void;
  /** The height of the last final block; 0 before any. */
  finalHeight: () => number;
  /** Whether the branch ending at a stored block holds the last final block. */
  holdsFinal: (entry: BlockIndex) => boolean;
}

export class SideBranches {
  /** Block hash → until when (epoch ms) the sync expects it: stored whatever its branch's work. */
  private readonly expected = new BoundedMap<string, number>(MAX_EXPECTED);

  constructor(private readonly deps: SideBranchDeps) {}

  /**
   * Whether a block with this header would be refused as a side block (its branch cannot win),
   * judged from the header alone so a relay need not download the body: null when the parent is
   * unknown or the tip, when the sync expects it, or when it would be a second block for a stored
   * block's (producer, height, round), which is evidence worth fetching.
   */
  refusalOf(header: BlockHeader): SideRefusal | null {
    const store = this.deps.store;
    const parent = store.getIndex(header.prevHash);
    if (!parent || parent.hash.equals(this.deps.tip().hash)) return null;
    const hash = blockHash(header);
    if (this.isExpected(hash)) return null;
    const holder = store.getSlot(header.producer, header.height, header.round);
    if (holder && !holder.equals(hash)) return null;
    const work = parent.work + blockWork(header.round);
    return this.refusal({ work }, parent);
  }

  /**
   * Why a side block's branch cannot win, or null: it forks below the last final block, too
   * deep a fork, or too little work.
   */
  refusal(entry: Pick<BlockIndex, "work">, parent: BlockIndex): SideRefusal | null {
    const tip = this.deps.tip();
    const store = this.deps.store;
    // Against the final block first: it is the reason that holds for ever (and is logged).
    if (parent.height < this.deps.finalHeight() || !this.deps.holdsFinal(parent)) return "below-final";
    if (entry.work + SIDE_BRANCH_WORK_MARGIN < tip.work) return "too-light";
    const floor = tip.height - this.deps.params.reorg.maxDepth;
    // Walk down the side branch to the main chain; heights fall by one a step, so the walk ends
    // within entry.height − floor steps.
    let e: BlockIndex | undefined = parent;
    while (e && store.isSide(e.hash)) {
      if (e.height < floor) return "too-deep";
      e = store.getIndex(e.prevHash);
    }
    if (!e || e.height < floor) return "too-deep";
    return null;
  }

  /**
   * The sync coordinator validated these headers and will fetch their blocks: store them as side
   * blocks whatever their branch's work so far (a long heavier branch is lighter than our tip
   * until its end). Kept for `ttlMs`, and never pruned meanwhile.
   */
  expect(hashes: readonly Buffer[], ttlMs: number): void {
    const until = this.deps.clock.now() + Math.max(0, ttlMs);
    for (const h of hashes) this.expected.set(h.toString("hex"), until);
  }

  isExpected(hash: Buffer): boolean {
    const hex = hash.toString("hex");
    const until = this.expected.get(hex);
    if (until === undefined) return false;
    if (until >= this.deps.clock.now()) return true;
    this.expected.delete(hex);
    return false;
  }

  /**
   * Deletes stored side blocks whose branch can no longer win (work more than the margin behind
   * the tip, or below tip − max_reorg_depth), unless the sync expects them or a descendant that
   * can still win needs them. Returns how many were deleted.
   */
  prune(): number {
    const store = this.deps.store;
    const tip = this.deps.tip();
    // A side block at or below the final height conflicts with the final block: never needed.
    const floor = Math.max(tip.height - this.deps.params.reorg.maxDepth, this.deps.finalHeight() + 1);
    const side: BlockIndex[] = [];
    for (const { hash } of store.iterateSide()) {
      const e = store.getIndex(hash);
      if (e) side.push(e);
    }
    if (side.length === 0) return 0;
    side.sort((a, b) => b.height - a.height);
    const needed = new Set<string>();
    for (const e of side) {
      const hex = e.hash.toString("hex");
      const keep =
        needed.has(hex) ||
        this.isExpected(e.hash) ||
        (e.work + SIDE_BRANCH_WORK_MARGIN >= tip.work && e.height >= floor);
      if (keep) {
        needed.add(hex);
        needed.add(e.prevHash.toString("hex"));
      }
    }
    const doomed = side.filter((e) => !needed.has(e.hash.toString("hex")));
    if (doomed.length === 0) return 0;
    store.atomically(() => {
      for (const e of doomed) store.deleteSideBlock(e);
    });
    for (const e of doomed) this.deps.forgetSchedule(e.hash);
    this.deps.logger?.info("Pruned side blocks that can no longer win", {
      blocks: doomed.length,
      tip: tip.height,
    });
    return doomed.length;
  }
}
