/**
 * A masternode's finality voter on a real chain store: it votes on the tip as it stands (not once
 * per block of a batch), casts the second vote when the first checkpoint is justified, writes its
 * lock before a vote leaves, and after a restart never signs a vote its lock forbids.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { slashingOffence, type FinalityVote } from "../../../src/consensus/finality.js";
import { nullLogger } from "../../../src/logging/index.js";
import { FinalityVoter } from "../../../src/masternode/finalityVoter.js";
import { blockHash } from "../../../src/primitives/block.js";
import { extend } from "../../helpers/chainBuild.js";
import { ChainHarness, testGenesis, testKeys } from "../../helpers/chainFixture.js";

const mns = testKeys("voter-mn", 3);
const genesis = testGenesis({ masternodes: mns });

describe("finality voter", () => {
  it("votes once on a batch's final tip, not on every block it passed; the lock is on disk first", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const votes: FinalityVote[] = [];
      const locksAtPublish: number[] = [];
      const voter = new FinalityVoter({
        chain: h.chain,
        operatorKey: mns[0]!,
        publish: (v) => {
          locksAtPublish.push(h.chain.storage.getVoteLock()?.maxTarget ?? -1);
          votes.push(v);
          h.chain.finality.addVote(v);
        },
        logger: nullLogger,
      });
      voter.start();
      const blocks = extend(h, 40); // one batch: 40 tip events after one commit
      const tip = blockHash(blocks[39]!.header);
      assert.equal(votes.length, 1, `${votes.length} votes for one batch`);
      assert.ok(votes[0]!.target.hash.equals(tip) && votes[0]!.target.epoch === 80);
      assert.deepEqual(locksAtPublish, [80], "the lock was written before the vote left");
      voter.stop();
    } finally {
      await h.close();
    }
  });

  it("after a restart on the same store, it signs nothing its lock forbids (no double vote)", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const signed: FinalityVote[] = [];
      const make = () =>
        new FinalityVoter({
          chain: h.chain,
          operatorKey: mns[0]!,
          publish: (v) => signed.push(v),
          logger: nullLogger,
        });
      extend(h, 5);
      const first = make();
      first.start(); // votes on the tip at height 5
      first.stop();
      // A reorg-free restart: same tip. A voter without its lock would vote on it again.
      const second = make();
      second.start();
      second.stop();
      assert.equal(signed.length, 1, "the second start signed nothing for the same target");
      extend(h, 1);
      const third = make();
      third.start();
      third.stop();
      assert.equal(signed.length, 2, "a new tip gets a vote");
      for (let i = 0; i < signed.length; i++)
        for (let j = i + 1; j < signed.length; j++)
          assert.equal(slashingOffence(signed[i]!, signed[j]!), null);
    } finally {
      await h.close();
    }
  });
});
