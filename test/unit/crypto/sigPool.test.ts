/**
 * The signature pool (crypto/sigPool.ts): worker threads check signatures ahead of import, and
 * the import's verifySignature takes a good result by its exact bytes, once. A pool can make a
 * block be judged faster, never differently: a bad signature, or a good one with one byte
 * changed, is still checked by the import and refused.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { blockSignatureItems } from "../../../src/chain/blockSignatures.js";
import {
  clearPreverified,
  KeyPair,
  notePreverified,
  preverifiedCount,
  verifySignature,
} from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { SignaturePool, type SigItem } from "../../../src/crypto/sigPool.js";
import { blockHash } from "../../../src/primitives/block.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import {
  ChainHarness,
  cloneBlock,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
} from "../../helpers/chainFixture.js";

const pools: SignaturePool[] = [];
const pool = (threads = 2, jobTimeoutMs?: number): SignaturePool => {
  const p = new SignaturePool({ threads, jobTimeoutMs });
  pools.push(p);
  return p;
};
after(async () => {
  for (const p of pools.splice(0)) await p.close();
  clearPreverified();
});

const key = KeyPair.fromSeed(sha256(Buffer.from("pool-key")));
const signed = (i: number): SigItem => {
  const message = Buffer.from(`message ${i}`);
  return { pubkey: key.publicKey, message, signature: key.sign(message) };
};

describe("signature pool", () => {
  it("records the good signatures only, and the import takes each one once", async () => {
    clearPreverified();
    const good = Array.from({ length: 300 }, (_, i) => signed(i));
    const bad = { ...signed(100), message: Buffer.from("another message") };
    const short = { ...signed(101), signature: Buffer.alloc(10) };
    const p = pool();
    assert.equal(await p.verifyAll([...good, bad, short]), 300);
    assert.equal(preverifiedCount(), 300);
    assert.equal(p.checked, 301, "the malformed one never reached a worker");
    assert.ok(verifySignature(good[0]!.pubkey, good[0]!.message, good[0]!.signature));
    assert.equal(preverifiedCount(), 299, "taken once");
    assert.equal(verifySignature(bad.pubkey, bad.message, bad.signature), false, "checked again, and bad");
    // One byte changed in a good signature: not the bytes the worker checked.
    const flipped = Buffer.from(good[1]!.signature);
    flipped[5]! ^= 1;
    assert.equal(verifySignature(good[1]!.pubkey, good[1]!.message, flipped), false);
    clearPreverified();
  });

  it("an entry matches only its exact bytes, which are copied when it is recorded", () => {
    clearPreverified();
    const a = signed(1);
    const sig = Buffer.from(a.signature);
    notePreverified(a.pubkey, a.message, sig);
    // The recorder's buffer changes afterwards (past the 6 bytes that pick the bucket): the entry
    // keeps the checked bytes, so the changed signature is checked for real, and fails.
    sig[40]! ^= 1;
    assert.equal(verifySignature(a.pubkey, a.message, sig), false);
    assert.equal(preverifiedCount(), 1);
    // Same signature, another message or key: same bucket, no match.
    assert.equal(verifySignature(a.pubkey, Buffer.from("message 2"), a.signature), false);
    assert.equal(verifySignature(testKey("other", 0).publicKey, a.message, a.signature), false);
    assert.equal(preverifiedCount(), 1);
    assert.ok(verifySignature(a.pubkey, a.message, a.signature));
    assert.equal(preverifiedCount(), 0, "taken");
    clearPreverified();
  });

  it("a job past its timeout records nothing; its worker is replaced and the next call works", async () => {
    clearPreverified();
    const p = pool(1, 1);
    // 5,000 checks take a worker far longer than 1 ms.
    const many = Array.from({ length: 5_000 }, (_, i) => signed(i % 50));
    assert.equal(await p.verifyAll(many), 0);
    assert.equal(preverifiedCount(), 0);
    const q = pool(1);
    assert.equal(await q.verifyAll(Array.from({ length: 300 }, (_, i) => signed(i))), 300);
    clearPreverified();
  });

  it("after close, a call checks nothing and jobs in flight record nothing", async () => {
    clearPreverified();
    const p = pool(1);
    const inFlight = p.verifyAll(Array.from({ length: 3_000 }, (_, i) => signed(i % 30)));
    await p.close();
    assert.equal(await inFlight, 0);
    assert.equal(await p.verifyAll(Array.from({ length: 300 }, (_, i) => signed(i))), 0);
    assert.equal(preverifiedCount(), 0);
  });

  it("a handful of signatures is left to the import: no worker starts for it", async () => {
    clearPreverified();
    const p = pool(1);
    assert.equal(await p.verifyAll(Array.from({ length: 255 }, (_, i) => signed(i))), 0);
    assert.equal(p.checked, 0);
    assert.equal(preverifiedCount(), 0);
  });

  it("a block's items: the producer's signature, each distinct input signature, nothing more", async () => {
    const mns = testKeys("pool-mn", 3);
    const alice = testKey("pool-alice", 0);
    const h = new ChainHarness(
      testGenesis({ masternodes: mns, funded: [{ key: alice, amount: 50n * COIN, count: 4 }] }),
      mns,
    );
    try {
      const coins = h.genesisCoins(alice);
      const tx = makeTransfer(
        alice,
        [coins[0]!.outpoint, coins[1]!.outpoint],
        [{ to: pubkeyHash(alice.publicKey), amount: 99n * COIN }],
      );
      // And a transfer with one input (most of them): its one signature.
      const single = makeTransfer(
        alice,
        [coins[2]!.outpoint],
        [{ to: pubkeyHash(alice.publicKey), amount: 49n * COIN }],
      );
      const block = h.makeBlock({ txs: [tx, single], fees: 2n * COIN });
      const items = blockSignatureItems([block], h.chain.genesisHash);
      // Both inputs of the first carry one (key, signature) pair: checked once.
      assert.equal(items.length, 3);
      assert.deepEqual(Buffer.from(items[2]!.signature), single.inputs[0]!.signature);
      assert.ok(items.every((x) => verifySignature(x.pubkey, x.message, x.signature)));
    } finally {
      await h.close();
    }
  });

  it("import verdicts do not change: a tampered copy checked ahead is still refused, the real block connects", async () => {
    clearPreverified();
    const mns = testKeys("pool-mn2", 3);
    const alice = testKey("pool-alice2", 0);
    const bob = testKey("pool-bob2", 0);
    const h = new ChainHarness(
      testGenesis({ masternodes: mns, funded: [{ key: alice, amount: 50n * COIN, count: 4 }] }),
      mns,
    );
    try {
      const coins = h.genesisCoins(alice);
      const tx = makeTransfer(
        alice,
        [coins[0]!.outpoint],
        [{ to: pubkeyHash(bob.publicKey), amount: 49n * COIN }],
      );
      const good = h.makeBlock({ txs: [tx], fees: COIN });
      const bad = cloneBlock(good);
      bad.txs[1]!.inputs[0]!.signature = bob.sign(Buffer.from("something else"));
      assert.ok(blockHash(bad.header).equals(blockHash(good.header)), "signatures are outside the txid");
      const p = pool();
      // Other signatures fill each call up to the pool's minimum.
      const filler = Array.from({ length: 300 }, (_, i) => signed(i));
      // The pool sees the tampered copy first: its input signature is bad and not recorded.
      assert.equal(
        await p.verifyAll([...filler, ...blockSignatureItems([bad], h.chain.genesisHash)]),
        301,
        "the filler and the producer's",
      );
      const r = h.chain.processBlocks([{ block: bad }]);
      assert.equal((r.error as { code?: string } | undefined)?.code, "BAD_TX_SIGNATURE");
      // The real block, checked ahead, connects.
      assert.equal(await p.verifyAll([...filler, ...blockSignatureItems([good], h.chain.genesisHash)]), 302);
      assert.equal(h.chain.processBlock(good).status, "connected");
    } finally {
      await h.close();
      clearPreverified();
    }
  });
});
