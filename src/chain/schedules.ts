/**
 * The epoch-schedule cache for Chain: the producer schedule each anchor block fixes, computed
 * once per anchor and kept in memory (bounded); main-chain anchors are also stored. Chain builds
 * one at open and hands it the store and a plain function to find ancestors; it never imports
 * chain.ts.
 */
import type { Registry } from "../consensus/registry.js";
import {
  anchorHeightOf,
  decodeSchedule,
  encodeSchedule,
  EPOCH_BLOCKS,
  epochOf,
  genesisSchedule,
  nextSchedule,
  type EpochSchedule,
} from "../consensus/schedule.js";
import { BoundedMap } from "../util/boundedMap.js";
import { StoreError, type BlockIndex, type ChainStore } from "./chainStore.js";

/** Epoch schedules kept in memory (side anchors are not stored; main anchors are). */
const SCHEDULE_CACHE_SIZE = 256;
/** Blocks whose children's anchor is remembered: a few epochs of a long branch. */
const ANCHOR_CACHE_SIZE = 1_024;

export interface ScheduleDeps {
  store: ChainStore;
  /** The ancestor of `entry` (or `entry` itself) at `height` (Chain.ancestorAt). */
  ancestorAt: (entry: BlockIndex, height: number) => BlockIndex;
}

export class Schedules {
  private readonly schedules = new BoundedMap<string, EpochSchedule>(SCHEDULE_CACHE_SIZE);
  /**
   * By hex block hash: the anchor of that block's children. A child's anchor is its parent's
   * children's anchor unless the parent is an anchor itself, so a branch stored or connected in
   * order finds each one without walking back (up to EPOCH_BLOCKS index reads on a side branch).
   * The tree of stored blocks never changes shape, so an entry never goes stale.
   */
  private readonly childAnchors = new BoundedMap<string, BlockIndex>(ANCHOR_CACHE_SIZE);

  constructor(private readonly deps: ScheduleDeps) {}

  /** The schedule of the epoch that `parent`'s children (height parent.height + 1) belong to. */
  forChild(parent: BlockIndex): EpochSchedule {
    const height = anchorHeightOf(epochOf(parent.height + 1));
    let anchor: BlockIndex | undefined;
    if (parent.height === height) anchor = parent;
    else {
      const known = this.childAnchors.get(parent.prevHash.toString("hex"));
      anchor = known?.height === height ? known : this.deps.ancestorAt(parent, height);
    }
    this.childAnchors.set(parent.hash.toString("hex"), anchor);
    return this.at(anchor);
  }

  /**
   * The schedule fixed by an anchor block (height a multiple of EPOCH_BLOCKS): epoch 0 from the
   * genesis registry, then each from the one before and the registry after its anchor. Computed
   * once per anchor; main-chain anchors are stored, side ones kept in memory.
   */
  at(anchor: BlockIndex): EpochSchedule {
    const pending: BlockIndex[] = [];
    let base: EpochSchedule | undefined;
    for (let a: BlockIndex = anchor; ;) {
      base = this.cachedSchedule(a);
      if (base) break;
      if (a.height === 0) {
        base = genesisSchedule(this.registryOrThrow(a));
        this.schedules.set(a.hash.toString("hex"), base);
        break;
      }
      pending.push(a);
      a = this.deps.ancestorAt(a, a.height - EPOCH_BLOCKS);
    }
    for (let i = pending.length - 1; i >= 0; i--) {
      const a = pending[i]!;
      base = nextSchedule(base, this.registryOrThrow(a));
      this.schedules.set(a.hash.toString("hex"), base);
    }
    return base;
  }

  /** Drops the cached schedule of a block (a pruned side block). */
  forget(hash: Buffer): void {
    this.schedules.delete(hash.toString("hex"));
    this.childAnchors.delete(hash.toString("hex"));
  }

  /** Inside a write transaction: stores the schedule an anchor block fixes, once it is main. */
  persistIfAnchor(entry: BlockIndex): void {
    if (entry.height === 0 || entry.height % EPOCH_BLOCKS !== 0) return;
    if (this.deps.store.getSchedule(entry.hash)) return;
    this.deps.store.putSchedule(entry.hash, encodeSchedule(this.at(entry)));
  }

  private cachedSchedule(anchor: BlockIndex): EpochSchedule | undefined {
    const hex = anchor.hash.toString("hex");
    const hit = this.schedules.get(hex);
    if (hit) return hit;
    const bytes = this.deps.store.getSchedule(anchor.hash);
    if (!bytes) return undefined;
    const s = decodeSchedule(bytes);
    this.schedules.set(hex, s);
    return s;
  }

  private registryOrThrow(entry: BlockIndex): Registry {
    const reg = this.deps.store.getRegistryByRoot(entry.mnRoot);
    if (!reg) throw new StoreError(`registry snapshot ${entry.mnRoot.toString("hex")} is missing`);
    return reg;
  }
}
