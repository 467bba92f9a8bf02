import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
} from "../../helpers/chainFixture.js";
import { pubkeyHash } from "../../../src/crypto/address.js";

test("a chain connects blocks with transfers and moves its tip", async () => {
  const mns = testKeys("mn", 3);
  const alice = testKey("alice", 0);
  const bob = testKey("bob", 0);
  const h = new ChainHarness(
    testGenesis({ masternodes: mns, funded: [{ key: alice, amount: 50n * COIN, count: 2 }] }),
    mns,
  );
  try {
    const coins = h.genesisCoins(alice);
    assert.equal(coins.length, 2);
    h.mine();
    const tx = makeTransfer(
      alice,
      [coins[0]!.outpoint],
      [{ to: pubkeyHash(bob.publicKey), amount: 49n * COIN }],
    );
    h.mine({ txs: [tx], fees: 1n * COIN });
    assert.equal(h.chain.height, 2);
    assert.equal(h.chain.storage.getUtxo(coins[0]!.outpoint), undefined);
    const stats = h.chain.storage.getStats();
    assert.deepEqual(stats, h.chain.storage.computeStats());
    assert.equal(stats.total, 100n * COIN + 200n * COIN);
  } finally {
    await h.close();
  }
});
