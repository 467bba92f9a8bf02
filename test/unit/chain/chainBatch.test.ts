import assert from "node:assert/strict";
import { test } from "node:test";
import { BlockError } from "../../../src/primitives/errors.js";
import { ChainHarness, tempDir, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { Chain } from "../../../src/chain/chain.js";

test("processBlocks commits a batch at once, stops at an invalid block, and fires events only after commit", async () => {
  const mns = testKeys("batch", 3);
  const genesis = testGenesis({ masternodes: mns });
  const src = new ChainHarness(genesis, mns);
  const t = tempDir();
  try {
    const blocks = [];
    for (let i = 0; i < 6; i++) blocks.push(src.mine());
    const bad = { ...blocks[4]!, header: { ...blocks[4]!.header, signature: Buffer.alloc(64, 7) } };
    const items = [...blocks.slice(0, 4), bad, blocks[5]!].map((block) => ({ block }));

    const dst = Chain.open(t.dir, genesis, { clock: src.clock });
    const seen: number[] = [];
    let uncommittedEvents = 0;
    dst.events.on("blockConnected", ({ entry }) => {
      // When an event fires, the block is already committed and readable from the store.
      if (!dst.storage.getHashAtHeight(entry.height)?.equals(entry.hash)) uncommittedEvents++;
      seen.push(entry.height);
    });
    const r = dst.processBlocks(items);
    assert.equal(r.results.length, 4);
    assert.ok(r.error instanceof BlockError);
    assert.equal((r.error as BlockError).code, "BAD_PRODUCER_SIGNATURE");
    assert.equal(dst.height, 4);
    assert.deepEqual(seen, [1, 2, 3, 4]);
    assert.equal(uncommittedEvents, 0);
    assert.deepEqual(dst.storage.getStats(), dst.storage.computeStats());
    // The rest of the chain still connects afterwards, with the genuine block.
    const r2 = dst.processBlocks([blocks[4]!, blocks[5]!].map((block) => ({ block })));
    assert.equal(r2.error, undefined);
    assert.equal(dst.height, 6);
    assert.ok(dst.tip.hash.equals(src.chain.tip.hash));
    await dst.close();
  } finally {
    await src.close();
    t.cleanup();
  }
});
