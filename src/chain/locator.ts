import type { ChainReader } from "./chainReader.js";
import type { BlockIndex } from "./chainStore.js";

/** Dense entries at the tip before the gaps start doubling (bcoin / Bitcoin use 10). */
const DENSE = 10;
export const MAX_LOCATOR_ENTRIES = 64;

/**
 * Heights of a block locator from `height` down to 0: the 10 newest consecutive heights, then
 * gaps that double (2, 4, 8, …), always ending at genesis. O(log height) entries.
 */
export function locatorHeights(height: number): number[] {
  const out: number[] = [];
  let step = 1;
  let h = height;
  while (h > 0 && out.length < MAX_LOCATOR_ENTRIES - 1) {
    out.push(h);
    if (out.length >= DENSE) step *= 2;
    h -= step;
  }
  out.push(0);
  return out;
}

/** Main-chain locator from our tip. */
export function buildLocator(chain: ChainReader): Buffer[] {
  return locatorHeights(chain.height).map((h) => chain.getHashAtHeight(h)!);
}

/** The newest locator entry on our main chain (the fork point as the peer sees it), or genesis. */
export function findLocatorFork(chain: ChainReader, locator: readonly Buffer[]): BlockIndex {
  for (const hash of locator) {
    const e = chain.getIndex(hash);
    if (e && chain.isMain(e)) return e;
  }
  return chain.getIndex(chain.getHashAtHeight(0)!)!;
}
