import type { BlockIndex } from "./storeLayout.js";

/**
 * Fork choice (docs/CONSENSUS.md): the tip with more cumulative work wins; equal work goes to the
 * smaller block hash (bytewise). It is a total order on distinct tips. (Only branches that hold
 * the last final block are ranked at all: Chain and ChainFinality see to that.)
 */
export function isBetterTip(a: BlockIndex, b: BlockIndex): boolean {
  if (a.work !== b.work) return a.work > b.work;
  return Buffer.compare(a.hash, b.hash) < 0;
}
