/**
 * Walking the tree of stored blocks through their index entries: an entry that must be there,
 * the ancestor of a block at a height, and where two branches meet. Plain functions of the
 * store, used by Chain and its schedule cache.
 */
import { StoreError, type BlockIndex, type ChainStore } from "./chainStore.js";

/** The index entry of a stored block; a missing one is a damaged store (StoreError). */
export function mustIndex(store: ChainStore, hash: Buffer): BlockIndex {
  const e = store.getIndex(hash);
  if (!e) throw new StoreError(`block index entry ${hash.toString("hex")} is missing`);
  return e;
}

/** The ancestor of `entry` (or `entry` itself) at `height`. */
export function ancestorOf(store: ChainStore, entry: BlockIndex, height: number): BlockIndex {
  if (height > entry.height || height < 0)
    throw new StoreError(`no ancestor of ${entry.hash.toString("hex")} at height ${height}`);
  let e = entry;
  while (e.height > height) {
    if (!store.isSide(e.hash)) {
      // On the main chain: every ancestor is too, and the height index finds it at once.
      const h = store.getHashAtHeight(height);
      if (h) return mustIndex(store, h);
    }
    e = mustIndex(store, e.prevHash);
  }
  return e;
}

/** The last common block of the main chain (ending at `tip`) and the branch ending at `entry`. */
export function forkOf(store: ChainStore, tip: BlockIndex, entry: BlockIndex): BlockIndex {
  let a: BlockIndex = tip;
  let b: BlockIndex = entry;
  while (!a.hash.equals(b.hash)) {
    if (a.height >= b.height) a = mustIndex(store, a.prevHash);
    else b = mustIndex(store, b.prevHash);
  }
  return a;
}
