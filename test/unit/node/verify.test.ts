/**
 * `timed verify` (node/verify.ts) replays the stored chain in batches, with signatures checked
 * ahead on the signature pool. Its verdict and the height it names must be those of a replay
 * one block at a time, with or without the pool.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { verifyChain } from "../../../src/node/verify.js";
import { ChainStore } from "../../../src/chain/chainStore.js";
import { blockHash, encodeBlock } from "../../../src/primitives/block.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import { extend } from "../../helpers/chainBuild.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
} from "../../helpers/chainFixture.js";

const mns = testKeys("verify-mn", 3);
const alice = testKey("verify-alice", 0);
const bob = testKey("verify-bob", 0);
const genesis = testGenesis({ masternodes: mns, funded: [{ key: alice, amount: 50n * COIN, count: 2 }] });

describe("timed verify", () => {
  it("past the first replay batch, a stored block with a forged input signature is named by its height, with and without the pool", async () => {
    const h = new ChainHarness(genesis, mns);
    try {
      extend(h, 599);
      const coin = h.genesisCoins(alice)[0]!;
      const tx = makeTransfer(
        alice,
        [coin.outpoint],
        [{ to: pubkeyHash(bob.publicKey), amount: 49n * COIN }],
      );
      const block = h.mine({ txs: [tx], fees: COIN }); // height 600
      extend(h, 20);
      const gHash = h.chain.genesisHash;
      await h.chain.close();
      for (const threads of [0, 2]) {
        const ok = await verifyChain(h.dir, genesis, { sigPoolThreads: threads });
        assert.equal(ok.ok, true, ok.problem);
        assert.equal(ok.height, 620);
      }
      // The signature is outside the block hash: overwrite the stored block with a forged one.
      const forged = structuredClone(block);
      forged.txs[1]!.inputs[0]!.signature = Buffer.from(bob.sign(Buffer.from("not this transaction")));
      const store = ChainStore.open(h.dir, genesis.network, gHash);
      const db = (store as unknown as { db: { putSync(k: Buffer, v: Buffer): void } }).db;
      db.putSync(Buffer.concat([Buffer.from("b"), blockHash(block.header)]), encodeBlock(forged));
      await store.close();
      for (const threads of [0, 2]) {
        const bad = await verifyChain(h.dir, genesis, { sigPoolThreads: threads });
        assert.equal(bad.ok, false, `threads ${threads}`);
        assert.match(bad.problem ?? "", /^block at height 600 is invalid on replay: BAD_TX_SIGNATURE/);
      }
    } finally {
      await h.close().catch(() => undefined);
    }
  });
});
