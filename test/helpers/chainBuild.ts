import { blockHash, type Block } from "../../src/primitives/block.js";
import { epochOf, nextSchedule } from "../../src/consensus/schedule.js";
import type { ChainHarness } from "./chainFixture.js";

const EXPECT_TTL_MS = 7 * 24 * 3_600_000;

/**
 * Appends `n` blocks to the harness chain on top of `parent` (default: the tip), at `round`
 * (default 0), processing them in batches of 500 (one commit each). Fast enough for chains of
 * 10,000+ blocks in a test. A branch off the main chain is stored even while lighter than the tip
 * (see Chain.expect). Returns the blocks.
 */
export function extend(h: ChainHarness, n: number, opts: { parent?: Block; round?: number } = {}): Block[] {
  const out: Block[] = [];
  let parent: Block = opts.parent ?? h.chain.getBlock(h.chain.tip.hash)!;
  const parentEntry = h.chain.getIndex(blockHash(parent.header))!;
  const registry = h.chain.registryAfter(parentEntry)!;
  // The registry stays as it is, so each epoch's schedule follows from the one before.
  let schedule = h.chain.scheduleForChild(parentEntry);
  let batch: Block[] = [];
  const flush = (): void => {
    if (batch.length === 0) return;
    const last = batch[batch.length - 1]!;
    if (h.clock.now() < last.header.timestamp) h.clock.set(last.header.timestamp);
    // As the sync does once it has validated a branch's headers: the blocks are stored even while
    // their branch is still lighter than the tip (a side branch being built up to win).
    h.chain.expect(
      batch.map((b) => blockHash(b.header)),
      EXPECT_TTL_MS,
    );
    const r = h.chain.processBlocks(batch.map((block) => ({ block })));
    if (r.error) throw r.error as Error;
    batch = [];
  };
  for (let i = 0; i < n; i++) {
    if (schedule.epoch !== epochOf(parent.header.height + 1)) schedule = nextSchedule(schedule, registry);
    const b = h.makeBlockOn(parent, { registry, schedule, round: opts.round ?? 0 });
    out.push(b);
    batch.push(b);
    parent = b;
    if (batch.length >= 500) flush();
  }
  flush();
  return out;
}
