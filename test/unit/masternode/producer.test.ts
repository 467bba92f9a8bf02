// The block producer's decisions on a ManualClock over a real chain: it produces in its own slot,
// and holds while the sync is fetching a better branch (a block on a tip about to be replaced
// would only be orphaned, and after a partition it prolongs the race between the two sides).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { slotStart } from "../../../src/consensus/schedule.js";
import { createMemoryLogger } from "../../../src/logging/index.js";
import { BlockProducer } from "../../../src/masternode/producer.js";
import { ChainHarness, testGenesis, testKeys } from "../../helpers/chainFixture.js";

describe("BlockProducer", () => {
  const keys = testKeys("producer", 1);
  const harnesses: ChainHarness[] = [];
  after(async () => {
    await Promise.all(harnesses.map((h) => h.close()));
  });

  it("holds its slot while the sync fetches a better branch, and produces once the hold ends", () => {
    const h = new ChainHarness(testGenesis({ masternodes: keys }), keys);
    harnesses.push(h);
    let hold: { hash: Buffer; height: number } | null = { hash: Buffer.alloc(32, 0xab), height: 40 };
    const producer = new BlockProducer(
      { minMasternodes: 1, operatorKey: keys[0]! },
      {
        chain: h.chain,
        clock: h.clock,
        logger: createMemoryLogger({ level: "info" }),
        activeMasternodes: () => 1,
        productionHold: () => hold,
      },
    );
    // Its slot for height 1, round 0 (the only masternode) is open.
    h.clock.set(slotStart(h.chain.params, h.chain.tip.timestamp, 0) + 10);
    producer.tick();
    assert.equal(h.chain.height, 0, "no block while the sync is fetching a better branch");
    assert.equal(producer.blocksProduced, 0);
    assert.equal(producer.status.state, "ready");
    assert.match(
      producer.status.reason,
      /^holding: the sync is fetching a better branch \(height 40, abababab/,
    );

    hold = null;
    producer.tick();
    assert.equal(h.chain.height, 1, "the hold over, it produces in the slot still open");
    assert.equal(producer.blocksProduced, 1);
    assert.equal(producer.status.reason, "produced height 1");
  });
});
