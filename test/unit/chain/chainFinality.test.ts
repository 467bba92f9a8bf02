/**
 * Finality on a real chain store (LMDB in a temporary folder): votes make a block final, the
 * final block survives a restart, and nothing below it can be reorganised away. The same heavier
 * branch that a chain without a final block switches to is refused once a block above the fork
 * is final; a side block forking below it is not even stored. A certificate received whole
 * makes a second node agree.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Chain } from "../../../src/chain/chain.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { ChainHarness, tempDir, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";
import { finaliseBlock } from "../../helpers/finality.js";

const mns = testKeys("finality-mn", 3);
const genesis = testGenesis({ masternodes: mns });

const finalise = (h: ChainHarness, b: Block, voters = mns): void => finaliseBlock(h, b, voters);

describe("finality on the chain store", () => {
  it("votes of all 3 masternodes make a block final; it is announced and survives a restart", async () => {
    const t = tempDir();
    const h = new ChainHarness(genesis, mns, t.dir);
    try {
      const main = extend(h, 5);
      const seen: number[] = [];
      h.chain.events.on("finalized", (e) => seen.push(e.checkpoint.epoch));
      finalise(h, main[2]!);
      assert.equal(h.chain.finality.finalizedHeight, 3);
      assert.deepEqual(seen, [6]);
      // 2 of 3 is not more than 2/3: block 4 stays unfinal.
      finalise(h, main[3]!, mns.slice(0, 2));
      assert.equal(h.chain.finality.finalizedHeight, 3);
      await h.chain.close();
      const again = Chain.open(h.dir, genesis, { clock: h.clock });
      try {
        assert.equal(again.finality.finalizedHeight, 3, "the final block is on disk");
        assert.ok(again.finality.finalized.hash.equals(blockHash(main[2]!.header)));
        assert.equal(again.finality.tracker.finalCertificate?.votes.length, 3);
      } finally {
        await again.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it("a heavier branch forking below the final block is refused; without finality it wins", async () => {
    for (const withFinality of [false, true]) {
      const h = new ChainHarness(genesis, mns);
      try {
        const main = extend(h, 5);
        if (withFinality) finalise(h, main[2]!);
        const tipBefore = h.chain.tip.hash;
        // Fallback-round blocks from block 1: nine of them outweigh four round-0 blocks.
        const branch = extend(h, 9, { parent: main[0]!, round: 1 });
        const branchTip = blockHash(branch[branch.length - 1]!.header);
        if (withFinality) {
          assert.ok(h.chain.tip.hash.equals(tipBefore), "the tip stays on the final block's branch");
          assert.equal(h.chain.finality.finalizedHeight, 3);
        } else {
          assert.ok(h.chain.tip.hash.equals(branchTip), "the control run switches to the heavier branch");
        }
      } finally {
        await h.close();
      }
    }
  });

  it("a block final on another branch (this node was on the other side of a split): the chain switches to it, lighter or not", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const main = extend(h, 4);
      const other = extend(h, 1, { parent: main[0]!, round: 1 });
      const otherHash = blockHash(other[0]!.header);
      assert.ok(!h.chain.tip.hash.equals(otherHash), "the other branch is lighter: not the tip");
      finalise(h, other[0]!);
      assert.equal(h.chain.finality.finalizedHeight, 2);
      assert.ok(h.chain.tip.hash.equals(otherHash), "the tip moved to the final block's branch");
      // The abandoned branch can never come back: it does not hold the final block.
      const back = h.chain.processBlock(main[3]!);
      assert.ok(back.status === "duplicate" || back.status === "reorg-refused", back.status);
      assert.ok(h.chain.tip.hash.equals(otherHash));
    } finally {
      await h.close();
    }
  });

  it("a side block forking below the final block is not stored (below-final)", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      const main = extend(h, 5);
      finalise(h, main[2]!);
      const side = h.makeBlockOn(main[0]!, {
        registry: h.chain.getRegistry(),
        schedule: h.chain.scheduleForChild(h.chain.getIndex(blockHash(main[0]!.header))!),
        round: 1,
      });
      const r = h.feed(side);
      assert.equal(r.status, "side-refused");
      assert.equal(r.status === "side-refused" && r.reason, "below-final");
      assert.equal(h.chain.getIndex(blockHash(side.header)), undefined);
    } finally {
      await h.close();
    }
  });

  it("a second node takes the final certificate whole, and refuses one that is short of 2/3", async () => {
    const a = new ChainHarness(genesis, mns);
    const b = new ChainHarness(genesis, mns);
    try {
      const main = extend(a, 4);
      for (const blk of main) b.feed(blk);
      finalise(a, main[3]!);
      const cert = a.chain.finality.tracker.finalCertificate!;
      const short = { ...cert, votes: cert.votes.slice(0, 2) };
      assert.match(
        b.chain.finality.acceptCertificate(b.chain.genesisHash, short) ?? "",
        /not more than 2\/3/,
      );
      assert.equal(b.chain.finality.finalizedHeight, 0);
      assert.equal(b.chain.finality.acceptCertificate(b.chain.genesisHash, cert), null);
      assert.equal(b.chain.finality.finalizedHeight, 4);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
