import { blockHash, type Block } from "../../src/chain/block.js";
import type { ChainHarness } from "./chainFixture.js";

/**
 * Appends `n` blocks to the harness chain on top of `parent` (default: the tip), at `round`
 * (default 0), processing them in batches of 500 (one commit each). Fast enough for chains of
 * 10,000+ blocks in a test. Returns the blocks.
 */
export function extend(h: ChainHarness, n: number, opts: { parent?: Block; round?: number } = {}): Block[] {
  const out: Block[] = [];
  let parent: Block = opts.parent ?? h.chain.getBlock(h.chain.tip.hash)!;
  const registry = h.chain.registryAfter(h.chain.getIndex(blockHash(parent.header))!)!;
  let batch: Block[] = [];
  const flush = (): void => {
    if (batch.length === 0) return;
    const last = batch[batch.length - 1]!;
    if (h.clock.now() < last.header.timestamp) h.clock.set(last.header.timestamp);
    const r = h.chain.processBlocks(batch.map((block) => ({ block })));
    if (r.error) throw r.error as Error;
    batch = [];
  };
  for (let i = 0; i < n; i++) {
    const b = h.makeBlockOn(parent, { registry, round: opts.round ?? 0 });
    out.push(b);
    batch.push(b);
    parent = b;
    if (batch.length >= 500) flush();
  }
  flush();
  return out;
}
