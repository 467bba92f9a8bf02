/**
 * One test per consensus rule (BlockErrorCode): each starts from a valid block built by the
 * harness, breaks exactly one rule (re-computing the merkle root and re-signing the header where
 * the mutation would otherwise trip those rules), and checks that processBlock throws that code
 * and leaves no trace. Where it makes sense, the unmutated block is then accepted, which shows the
 * mutation alone caused the rejection.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { blockWork } from "../../../src/chain/chainStore.js";
import { buildBlock } from "../../../src/consensus/blockBuilder.js";
import { BLOCK_REWARD, MAX_MONEY } from "../../../src/primitives/constants.js";
import { BlockError, type BlockErrorCode } from "../../../src/primitives/errors.js";
import { GenesisError, makeGenesisSpec } from "../../../src/consensus/genesis.js";
import { TxKind, txid, type OutPoint, type Tx } from "../../../src/primitives/tx.js";
import { checkHeaderContext, checkBlockSanity, checkTxSanity } from "../../../src/consensus/validation.js";
import { addressFromPubkey, pubkeyHash } from "../../../src/crypto/address.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { scheduledProducer, slotStart } from "../../../src/consensus/schedule.js";
import { TIER_WEIGHT, Tier } from "../../../src/consensus/tier.js";
import {
  ChainHarness,
  COIN,
  cloneBlock,
  makeTransfer,
  reseal,
  testGenesis,
  testKey,
  testKeys,
  type Coin,
} from "../../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const alice = testKey("alice", 0);
const bob = testKey("bob", 0);
const outsider = testKey("outsider", 0);
const BOB = pubkeyHash(bob.publicKey);
const ALICE = pubkeyHash(alice.publicKey);

/** A fresh chain with one mined block on top of a genesis that gives alice 4 × 50 TIME. */
async function withChain(fn: (h: ChainHarness, coins: Coin[]) => void | Promise<void>): Promise<void> {
  const h = new ChainHarness(
    testGenesis({ masternodes: mns, funded: [{ key: alice, amount: 50n * COIN, count: 4 }] }),
    mns,
  );
  try {
    h.mine();
    await fn(h, h.genesisCoins(alice));
  } finally {
    await h.close();
  }
}

function producerOf(h: ChainHarness, b: Block) {
  return h.keyFor(b.header.producer);
}

/**
 * Asserts processBlock rejects `bad` with exactly `code`, that the chain (tip, stats, registry,
 * every UTXO) is unchanged and the block not stored; then, if given, that `good` is accepted.
 */
function expectReject(h: ChainHarness, bad: Block, code: BlockErrorCode, good?: Block): BlockError {
  const before = h.snapshot();
  let caught: unknown;
  try {
    h.chain.processBlock(bad);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BlockError, `expected BlockError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.deepEqual(h.snapshot(), before, "a rejected block must leave the chain unchanged");
  if (!good || !blockHash(good.header).equals(blockHash(bad.header))) {
    assert.equal(
      h.chain.storage.hasBlock(blockHash(bad.header)),
      false,
      "a rejected block must not be stored",
    );
  }
  if (good) {
    const r = h.chain.processBlock(good);
    assert.equal(r.status, "connected", "the unmutated block is valid");
  }
  return caught;
}

/** A block whose body was changed: re-root and re-sign with its producer, so only `code` trips. */
function mutated(h: ChainHarness, good: Block, mutate: (b: Block) => void, keepMerkle = false): Block {
  const b = cloneBlock(good);
  mutate(b);
  return reseal(b, producerOf(h, b), { keepMerkle });
}

function rawTransfer(over: Partial<Tx>, coin: Coin): Tx {
  const base = makeTransfer(alice, [coin.outpoint], [{ to: BOB, amount: coin.amount - COIN }]);
  return { ...base, ...over };
}

const NOWHERE: OutPoint = { txid: sha256(Buffer.from("no such tx")), index: 0 };

describe("structure rules", () => {
  test("BAD_HEADER_VERSION", () =>
    withChain((h) => {
      const good = h.makeBlock();
      expectReject(
        h,
        mutated(h, good, (b) => (b.header.version = 2)),
        "BAD_HEADER_VERSION",
        good,
      );
    }));

  test("BLOCK_TOO_LARGE", () =>
    withChain((h, coins) => {
      // 36,000 outputs of 28 bytes: a block just over 1,000,000 bytes.
      const outs = Array.from({ length: 36_000 }, () => ({ to: BOB, amount: 1n }));
      const tx = makeTransfer(alice, [coins[0]!.outpoint], outs);
      expectReject(
        h,
        h.makeBlock({ txs: [tx], fees: coins[0]!.amount - 36_000n }),
        "BLOCK_TOO_LARGE",
        h.makeBlock(),
      );
    }));

  test("NO_TRANSACTIONS", () =>
    withChain((h) => {
      const good = h.makeBlock();
      expectReject(
        h,
        mutated(h, good, (b) => (b.txs = [])),
        "NO_TRANSACTIONS",
        good,
      );
    }));

  test("FIRST_TX_NOT_COINBASE", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const good = h.makeBlock({ txs: [tx], fees: COIN });
      expectReject(
        h,
        mutated(h, good, (b) => b.txs.reverse()),
        "FIRST_TX_NOT_COINBASE",
        good,
      );
    }));

  test("EXTRA_COINBASE", () =>
    withChain((h) => {
      const good = h.makeBlock();
      const bad = mutated(h, good, (b) => {
        const second = cloneBlock(b).txs[0]!;
        second.outputs = [{ amount: 1n, address: BOB }];
        b.txs.push(second);
      });
      expectReject(h, bad, "EXTRA_COINBASE", good);
    }));

  test("BAD_COINBASE_PAYLOAD (wrong height, or inputs on the coinbase)", () =>
    withChain((h, coins) => {
      const good = h.makeBlock();
      const wrongHeight = mutated(h, good, (b) => b.txs[0]!.payload.writeUInt32LE(b.header.height + 1));
      expectReject(h, wrongHeight, "BAD_COINBASE_PAYLOAD");
      const longPayload = mutated(
        h,
        good,
        (b) => (b.txs[0]!.payload = Buffer.concat([b.txs[0]!.payload, Buffer.alloc(1)])),
      );
      expectReject(h, longPayload, "BAD_COINBASE_PAYLOAD");
      const withInput = mutated(h, good, (b) =>
        b.txs[0]!.inputs.push({
          prevout: coins[0]!.outpoint,
          pubkey: alice.publicKey,
          signature: Buffer.alloc(64),
        }),
      );
      expectReject(h, withInput, "BAD_COINBASE_PAYLOAD", good);
    }));

  test("BAD_MERKLE_ROOT", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const good = h.makeBlock({ txs: [tx], fees: COIN });
      const wrongRoot = mutated(h, good, (b) => (b.header.merkleRoot = sha256(Buffer.from("x"))), true);
      expectReject(h, wrongRoot, "BAD_MERKLE_ROOT");
      // The header is unchanged but a transaction was swapped for another one.
      const other = makeTransfer(alice, [coins[1]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const swapped = mutated(h, good, (b) => (b.txs[1] = other), true);
      expectReject(h, swapped, "BAD_MERKLE_ROOT", good);
    }));

  test("DUPLICATE_TX", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const good = h.makeBlock({ txs: [tx], fees: COIN });
      expectReject(h, h.makeBlock({ txs: [tx, tx], fees: 2n * COIN }), "DUPLICATE_TX", good);
    }));

  test("BAD_TX_VERSION", () =>
    withChain((h, coins) => {
      expectReject(
        h,
        h.makeBlock({ txs: [rawTransfer({ version: 2 }, coins[0]!)] }),
        "BAD_TX_VERSION",
        h.makeBlock(),
      );
    }));

  test("UNSUPPORTED_TX_KIND (a kind no rule defines; the codec refuses it on the wire)", () =>
    withChain((h, coins) => {
      expectReject(
        h,
        h.makeBlock({ txs: [rawTransfer({ kind: 8 as TxKind }, coins[0]!)] }),
        "UNSUPPORTED_TX_KIND",
      );
      h.mine();
    }));

  test("BAD_EVIDENCE (Evidence is active: with inputs, or a payload that is not two headers)", () =>
    withChain((h, coins) => {
      expectReject(
        h,
        h.makeBlock({ txs: [rawTransfer({ kind: TxKind.Evidence }, coins[0]!)] }),
        "BAD_EVIDENCE",
      );
      h.mine();
    }));

  test("BAD_MASTERNODE_TX (masternode kinds are active: an empty payload does not decode)", () =>
    withChain((h, coins) => {
      for (const kind of [TxKind.MasternodeRegister, TxKind.MasternodeUpdate, TxKind.MasternodeDeregister]) {
        expectReject(h, h.makeBlock({ txs: [rawTransfer({ kind }, coins[0]!)] }), "BAD_MASTERNODE_TX");
      }
      h.mine();
    }));

  test("TX_NO_INPUTS", () =>
    withChain((h, coins) => {
      expectReject(
        h,
        h.makeBlock({ txs: [rawTransfer({ inputs: [] }, coins[0]!)] }),
        "TX_NO_INPUTS",
        h.makeBlock(),
      );
    }));

  test("TX_NO_OUTPUTS", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(alice, [coins[0]!.outpoint], []);
      expectReject(h, h.makeBlock({ txs: [tx], fees: coins[0]!.amount }), "TX_NO_OUTPUTS", h.makeBlock());
    }));

  test("TX_TOO_LARGE (checkTxSanity; inside a block BLOCK_TOO_LARGE always trips first)", () => {
    const outs = Array.from({ length: 36_000 }, () => ({ to: BOB, amount: 1n }));
    const tx = makeTransfer(alice, [NOWHERE], outs);
    assert.throws(
      () => checkTxSanity(tx),
      (e) => e instanceof BlockError && e.code === "TX_TOO_LARGE",
    );
    assert.doesNotThrow(() => checkTxSanity(makeTransfer(alice, [NOWHERE], outs.slice(0, 35_000))));
  });

  test("BAD_TX_PAYLOAD", () =>
    withChain((h, coins) => {
      const tx = rawTransfer({ payload: Buffer.from([1]) }, coins[0]!);
      expectReject(h, h.makeBlock({ txs: [tx], fees: COIN }), "BAD_TX_PAYLOAD", h.makeBlock());
    }));

  test("ZERO_OUTPUT (in a transfer and in the coinbase)", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(
        alice,
        [coins[0]!.outpoint],
        [
          { to: BOB, amount: 49n * COIN },
          { to: BOB, amount: 0n },
        ],
      );
      expectReject(h, h.makeBlock({ txs: [tx], fees: COIN }), "ZERO_OUTPUT");
      const good = h.makeBlock();
      const zeroCb = mutated(h, good, (b) => b.txs[0]!.outputs.push({ amount: 0n, address: BOB }));
      expectReject(h, zeroCb, "ZERO_OUTPUT", good);
    }));

  test("OUTPUT_OVER_MAX (one output, and outputs that only together exceed the supply)", () =>
    withChain((h, coins) => {
      const one = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: MAX_MONEY + 1n }]);
      expectReject(h, h.makeBlock({ txs: [one] }), "OUTPUT_OVER_MAX");
      const sum = makeTransfer(
        alice,
        [coins[0]!.outpoint],
        [
          { to: BOB, amount: MAX_MONEY },
          { to: BOB, amount: 1n },
        ],
      );
      expectReject(h, h.makeBlock({ txs: [sum] }), "OUTPUT_OVER_MAX", h.makeBlock());
    }));

  test("DUPLICATE_INPUT", () =>
    withChain((h, coins) => {
      const c = coins[0]!;
      const tx = makeTransfer(alice, [c.outpoint, c.outpoint], [{ to: BOB, amount: c.amount }]);
      expectReject(h, h.makeBlock({ txs: [tx] }), "DUPLICATE_INPUT", h.makeBlock());
    }));
});

describe("header context rules", () => {
  test("BAD_HEIGHT", () =>
    withChain((h) => {
      const good = h.makeBlock();
      const bad = mutated(h, good, (b) => {
        b.header.height += 1;
        b.txs[0]!.payload.writeUInt32LE(b.header.height); // keep the coinbase payload rule satisfied
      });
      expectReject(h, bad, "BAD_HEIGHT", good);
    }));

  test("BAD_PREV_HASH (a block on a known-invalid block, and checkHeaderContext directly)", () =>
    withChain((h) => {
      const good = h.makeBlock();
      const tip = h.chain.tip;
      // A block by a masternode that is not scheduled: invalid, and remembered as such.
      const wrong = mns.find((k) => !k.publicKey.equals(good.header.producer))!;
      const invalid = buildBlock({
        parentHash: tip.hash,
        parentHeight: tip.height,
        registry: h.chain.getRegistry(),
        producer: wrong,
        round: 0,
        timestamp: good.header.timestamp,
        txs: [],
        fees: 0n,
      });
      expectReject(h, invalid, "WRONG_PRODUCER");
      assert.ok(h.chain.isKnownInvalid(blockHash(invalid.header)));
      const child = h.makeBlockOn(invalid);
      expectReject(h, child, "BAD_PREV_HASH");
      assert.ok(
        h.chain.isKnownInvalid(blockHash(child.header)),
        "descendants of invalid blocks are invalid too",
      );

      const checked = checkBlockSanity(good);
      const ctx = {
        params: h.chain.params,
        parentHash: sha256(Buffer.from("another parent")),
        parentHeight: tip.height,
        parentTimestamp: tip.timestamp,
        registry: h.chain.getRegistry(),
        schedule: h.chain.scheduleForChild(tip),
        now: h.clock.now(),
      };
      assert.throws(
        () => checkHeaderContext(checked, ctx),
        (e) => e instanceof BlockError && e.code === "BAD_PREV_HASH",
      );
      assert.doesNotThrow(() => checkHeaderContext(checked, { ...ctx, parentHash: tip.hash }));
      assert.equal(h.chain.processBlock(good).status, "connected");
    }));

  test("TIME_NOT_AFTER_PARENT", () =>
    withChain((h) => {
      const ts = h.chain.tip.timestamp;
      expectReject(h, h.makeBlock({ timestamp: ts }), "TIME_NOT_AFTER_PARENT");
      expectReject(h, h.makeBlock({ timestamp: ts - 1 }), "TIME_NOT_AFTER_PARENT", h.makeBlock());
    }));

  test("TIME_BEFORE_SLOT (round 0 before its slot; round 1 in round 0's slot)", () =>
    withChain((h) => {
      const slot0 = slotStart(h.chain.params, h.chain.tip.timestamp, 0);
      expectReject(h, h.makeBlock({ timestamp: slot0 - 1 }), "TIME_BEFORE_SLOT");
      expectReject(h, h.makeBlock({ round: 1, timestamp: slot0 + 10 }), "TIME_BEFORE_SLOT");
      const slot1 = slotStart(h.chain.params, h.chain.tip.timestamp, 1);
      expectReject(h, h.makeBlock({ round: 1, timestamp: slot1 - 1 }), "TIME_BEFORE_SLOT", h.makeBlock());
    }));

  test("TIME_AFTER_SLOT (a round's block stamped after its own slot has ended)", () =>
    withChain((h) => {
      const slot1 = slotStart(h.chain.params, h.chain.tip.timestamp, 1);
      h.clock.set(slot1 + 5_000);
      // Round 0 stamped when round 1 is already open: too late, even though it is not in the future.
      expectReject(h, h.makeBlock({ round: 0, timestamp: slot1 }), "TIME_AFTER_SLOT");
      // The last millisecond of round 0's slot is still fine.
      assert.equal(h.chain.processBlock(h.makeBlock({ round: 0, timestamp: slot1 - 1 })).status, "connected");
    }));

  test("TIME_TOO_FAR_IN_FUTURE uses the injected clock and is not remembered as invalid", () =>
    withChain((h) => {
      const slot = slotStart(h.chain.params, h.chain.tip.timestamp, 0);
      const drift = h.chain.params.maxFutureDriftMs;
      const block = h.makeBlock({ timestamp: slot + drift + 1 });
      h.clock.set(slot);
      const err = expectReject(h, block, "TIME_TOO_FAR_IN_FUTURE");
      assert.ok(err.banScore < 100, "clock skew is not proof of malice");
      assert.equal(h.chain.isKnownInvalid(blockHash(block.header)), false);
      h.clock.set(slot + 1); // now the timestamp is exactly at the drift limit
      assert.equal(h.chain.processBlock(block).status, "connected");
    }));

  test("WRONG_PRODUCER (registered but not scheduled; not registered; scheduled for another round)", () =>
    withChain((h) => {
      const good = h.makeBlock();
      const tip = h.chain.tip;
      const registry = h.chain.getRegistry();
      const sched = h.chain.scheduleForChild(tip);
      const scheduled = scheduledProducer(sched, tip.height + 1, 0, registry)!;
      const other = mns.find((k) => !k.publicKey.equals(scheduled.operatorPubkey))!;
      const notScheduled = buildBlock({
        parentHash: tip.hash,
        parentHeight: tip.height,
        registry,
        producer: other,
        round: 0,
        timestamp: good.header.timestamp,
        txs: [],
        fees: 0n,
      });
      expectReject(h, notScheduled, "WRONG_PRODUCER");
      const stranger = cloneBlock(good);
      stranger.header.producer = outsider.publicKey;
      expectReject(h, reseal(stranger, outsider), "WRONG_PRODUCER");
      // The round-0 producer signing a round-1 block (the schedule names someone else for round 1).
      const round1 = scheduledProducer(sched, tip.height + 1, 1, registry)!;
      assert.ok(!round1.operatorPubkey.equals(scheduled.operatorPubkey));
      const wrongRound = mutated(h, good, (b) => {
        b.header.round = 1;
        b.header.timestamp = slotStart(h.chain.params, tip.timestamp, 1);
      });
      h.clock.set(wrongRound.header.timestamp);
      expectReject(h, wrongRound, "WRONG_PRODUCER", good);
    }));

  test("BAD_PRODUCER_SIGNATURE is not remembered, so a tampered copy cannot block the real block", () =>
    withChain((h) => {
      const good = h.makeBlock();
      const flipped = cloneBlock(good);
      flipped.header.signature[0] = flipped.header.signature[0]! ^ 1;
      expectReject(h, flipped, "BAD_PRODUCER_SIGNATURE");
      const byOther = cloneBlock(good);
      byOther.header.signature = outsider.sign(Buffer.from("whatever"));
      expectReject(h, byOther, "BAD_PRODUCER_SIGNATURE");
      assert.equal(h.chain.isKnownInvalid(blockHash(good.header)), false);
      // Same block hash (the signature is not hashed): the genuine block must still connect.
      assert.equal(h.chain.processBlock(good).status, "connected");
    }));

  test("BAD_MN_ROOT", () =>
    withChain((h) => {
      const good = h.makeBlock();
      expectReject(
        h,
        mutated(h, good, (b) => (b.header.mnRoot = sha256(Buffer.from("bad root")))),
        "BAD_MN_ROOT",
        good,
      );
    }));
});

describe("transactions in context", () => {
  test("MISSING_INPUT (unknown output; output created later in the same block)", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(alice, [NOWHERE], [{ to: BOB, amount: 1n }]);
      expectReject(h, h.makeBlock({ txs: [tx] }), "MISSING_INPUT");
      const first = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const second = makeTransfer(
        bob,
        [{ txid: txid(first), index: 0 }],
        [{ to: ALICE, amount: 48n * COIN }],
      );
      expectReject(h, h.makeBlock({ txs: [second, first], fees: 2n * COIN }), "MISSING_INPUT");
      // In the right order the same two transactions are valid.
      const good = h.makeBlock({ txs: [first, second], fees: 2n * COIN });
      assert.equal(h.chain.processBlock(good).status, "connected");
    }));

  test("DOUBLE_SPEND (two transactions in one block spending one output)", () =>
    withChain((h, coins) => {
      const c = coins[0]!;
      const a = makeTransfer(alice, [c.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const b = makeTransfer(alice, [c.outpoint], [{ to: ALICE, amount: 48n * COIN }]);
      expectReject(h, h.makeBlock({ txs: [a, b], fees: 3n * COIN }), "DOUBLE_SPEND");
      // A chain of spends that comes back to an output already spent in the block.
      const x = makeTransfer(alice, [c.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const y = makeTransfer(bob, [{ txid: txid(x), index: 0 }], [{ to: BOB, amount: 48n * COIN }]);
      const z = makeTransfer(bob, [{ txid: txid(x), index: 0 }], [{ to: ALICE, amount: 47n * COIN }]);
      expectReject(h, h.makeBlock({ txs: [x, y, z], fees: 5n * COIN }), "DOUBLE_SPEND");
      h.mine({ txs: [a], fees: COIN });
    }));

  test("INPUT_KEY_MISMATCH", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(bob, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      expectReject(h, h.makeBlock({ txs: [tx], fees: COIN }), "INPUT_KEY_MISMATCH", h.makeBlock());
    }));

  test("BAD_TX_SIGNATURE is not remembered, so a tampered copy cannot block the real block", () =>
    withChain((h, coins) => {
      const tx = makeTransfer(
        alice,
        [coins[0]!.outpoint, coins[1]!.outpoint],
        [{ to: BOB, amount: 99n * COIN }],
      );
      const good = h.makeBlock({ txs: [tx], fees: COIN });
      const bad = cloneBlock(good);
      bad.txs[1]!.inputs[1]!.signature = bob.sign(Buffer.from("TIME/tx/v1" + "x"));
      // Signatures are not part of the txid, so the block hash and merkle root are unchanged.
      assert.ok(blockHash(bad.header).equals(blockHash(good.header)));
      expectReject(h, bad, "BAD_TX_SIGNATURE");
      assert.equal(h.chain.isKnownInvalid(blockHash(good.header)), false);
      assert.equal(h.chain.processBlock(good).status, "connected");
    }));

  test("IMMATURE_COINBASE_SPEND (rejected one block early, accepted at maturity)", () =>
    withChain((h) => {
      const b1 = h.chain.getBlock(h.chain.getHashAtHeight(1)!)!;
      const cb = b1.txs[0]!;
      const owner = mns.find((k) => pubkeyHash(k.publicKey).equals(cb.outputs[0]!.address))!;
      const spend = makeTransfer(
        owner,
        [{ txid: txid(cb), index: 0 }],
        [{ to: BOB, amount: cb.outputs[0]!.amount }],
      );
      const maturity = h.chain.params.coinbaseMaturity;
      assert.ok(maturity > 1);
      while (h.chain.height < maturity - 1) h.mine();
      // Next height is `maturity`: 1 block short.
      expectReject(h, h.makeBlock({ txs: [spend] }), "IMMATURE_COINBASE_SPEND");
      h.mine();
      h.mine({ txs: [spend] });
      assert.equal(h.chain.height, 1 + maturity);
    }));

  test("OUTPUTS_EXCEED_INPUTS", () =>
    withChain((h, coins) => {
      const c = coins[0]!;
      const tx = makeTransfer(alice, [c.outpoint], [{ to: BOB, amount: c.amount + 1n }]);
      const exact = makeTransfer(alice, [c.outpoint], [{ to: BOB, amount: c.amount }]);
      expectReject(h, h.makeBlock({ txs: [tx] }), "OUTPUTS_EXCEED_INPUTS", h.makeBlock({ txs: [exact] }));
    }));

  test("BAD_COINBASE_AMOUNT (claims fees it does not have; leaves out fees it has)", () =>
    withChain((h, coins) => {
      expectReject(h, h.makeBlock({ fees: 1n }), "BAD_COINBASE_AMOUNT");
      const tx = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      expectReject(h, h.makeBlock({ txs: [tx], fees: 0n }), "BAD_COINBASE_AMOUNT");
      expectReject(
        h,
        h.makeBlock({ txs: [tx], fees: COIN + 1n }),
        "BAD_COINBASE_AMOUNT",
        h.makeBlock({ txs: [tx], fees: COIN }),
      );
    }));

  test("BAD_COINBASE_SPLIT (right total, wrong shares; right shares, wrong order or address)", () =>
    withChain((h) => {
      const good = h.makeBlock();
      assert.equal(good.txs[0]!.outputs.length, 3);
      const shifted = mutated(h, good, (b) => {
        b.txs[0]!.outputs[0]!.amount -= 1n;
        b.txs[0]!.outputs[1]!.amount += 1n;
      });
      expectReject(h, shifted, "BAD_COINBASE_SPLIT");
      expectReject(
        h,
        mutated(h, good, (b) => b.txs[0]!.outputs.reverse()),
        "BAD_COINBASE_SPLIT",
      );
      expectReject(
        h,
        mutated(h, good, (b) => (b.txs[0]!.outputs[2]!.address = BOB)),
        "BAD_COINBASE_SPLIT",
      );
      const merged = mutated(h, good, (b) => {
        const [o0, o1, o2] = b.txs[0]!.outputs;
        b.txs[0]!.outputs = [{ amount: o0!.amount + o1!.amount, address: o0!.address }, o2!];
      });
      expectReject(h, merged, "BAD_COINBASE_SPLIT", good);
    }));
});

describe("valid blocks", () => {
  test("a fallback round (round 1 at its slot by the round-1 producer) is accepted, with half the work", () =>
    withChain((h) => {
      const parent = h.chain.tip;
      const b = h.makeBlock({ round: 1 });
      assert.equal(b.header.timestamp, slotStart(h.chain.params, parent.timestamp, 1));
      const scheduled1 = scheduledProducer(
        h.chain.scheduleForChild(parent),
        parent.height + 1,
        1,
        h.chain.getRegistry(),
      )!;
      assert.ok(b.header.producer.equals(scheduled1.operatorPubkey));
      assert.equal(h.chain.processBlock(b).status, "connected");
      assert.equal(h.chain.tip.work, parent.work + blockWork(1));
      assert.equal(blockWork(1) * 2n, blockWork(0));
      assert.deepEqual(h.chain.storage.getStats(), h.chain.storage.computeStats());
    }));

  test("an output created earlier in the same block can be spent later in it", () =>
    withChain((h, coins) => {
      const before = h.chain.storage.getStats();
      const first = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
      const mid = { txid: txid(first), index: 0 };
      const second = makeTransfer(bob, [mid], [{ to: ALICE, amount: 48n * COIN }]);
      const b = h.makeBlock({ txs: [first, second], fees: 2n * COIN });
      assert.equal(h.chain.processBlock(b).status, "connected");
      const s = h.chain.storage;
      assert.equal(s.getUtxo(coins[0]!.outpoint), undefined);
      assert.equal(s.getUtxo(mid), undefined, "an output spent in its own block never enters the set");
      assert.equal(s.getUtxo({ txid: txid(second), index: 0 })?.amount, 48n * COIN);
      const after = s.getStats();
      assert.deepEqual(after, s.computeStats());
      // Minus alice's coin, plus bob→alice's output, plus the coinbase (reward + 2 TIME of fees).
      assert.equal(after.count, before.count - 1 + 1 + 3);
      assert.equal(after.total, before.total - 50n * COIN + 48n * COIN + BLOCK_REWARD + 2n * COIN);
      // Disconnecting it takes back exactly what it did: the output spent inside it was never in
      // the set, so nothing is subtracted for it.
      h.chain.disconnectTip();
      assert.deepEqual(s.getStats(), before);
      assert.deepEqual(s.getStats(), s.computeStats());
      assert.equal(s.getUtxo(coins[0]!.outpoint)?.amount, 50n * COIN);
    }));

  test("the reward is split by tier weight; the producer gets the remainder and the fees", async () => {
    const keys = testKeys("tiered", 4);
    const tiers = ["free", "bronze", "silver", "gold"] as const;
    const spec = makeGenesisSpec({
      network: "devnet",
      timestamp: 1_700_000_000_000,
      blockTimeMs: 1000,
      masternodes: keys.map((k, i) => ({
        operatorPubkey: k.publicKey,
        address: `127.0.2.${i + 1}:24200`,
        tier: tiers[i]!,
      })),
      allocations: [{ address: addressFromPubkey(alice.publicKey, "devnet"), amount: 50n * COIN }],
    });
    const h = new ChainHarness(spec, keys);
    try {
      const coin = h.genesisCoins(alice)[0]!;
      const fee = 3n * COIN + 7n;
      const tx = makeTransfer(alice, [coin.outpoint], [{ to: BOB, amount: coin.amount - fee }]);
      const b = h.mine({ txs: [tx], fees: fee });
      const registry = h.chain.getRegistry();
      const weights = registry.map((e) => TIER_WEIGHT[e.tier]);
      assert.deepEqual(
        [...weights].sort((x, y) => Number(x - y)),
        [Tier.Free, Tier.Bronze, Tier.Silver, Tier.Gold].map((t) => TIER_WEIGHT[t]),
      );
      const sum = weights.reduce((a, w) => a + w, 0n);
      assert.equal(sum, 111_100n);
      const shares = weights.map((w) => (BLOCK_REWARD * w) / sum);
      const remainder = BLOCK_REWARD - shares.reduce((a, s) => a + s, 0n);
      assert.ok(remainder > 0n, "these weights leave a rounding remainder");
      const expected = registry.map((e, i) => ({
        amount: shares[i]! + (e.operatorPubkey.equals(b.header.producer) ? remainder + fee : 0n),
        address: e.rewardAddress,
      }));
      assert.deepEqual(b.txs[0]!.outputs, expected);
      const cbId = txid(b.txs[0]!);
      expected.forEach((o, index) =>
        assert.equal(h.chain.storage.getUtxo({ txid: cbId, index })?.amount, o.amount),
      );
    } finally {
      await h.close();
    }
  });
});

describe("genesis spec", () => {
  test("allocations that together exceed the maximum supply are refused with one clear error", () => {
    const each = MAX_MONEY / 2n + 1n;
    assert.throws(
      () =>
        makeGenesisSpec({
          network: "devnet",
          timestamp: 1_700_000_000_000,
          blockTimeMs: 1000,
          masternodes: [{ operatorPubkey: mns[0]!.publicKey, address: "127.0.0.1:24200" }],
          allocations: [
            { address: addressFromPubkey(alice.publicKey, "devnet"), amount: each },
            { address: addressFromPubkey(bob.publicKey, "devnet"), amount: each },
          ],
        }),
      (e) => e instanceof GenesisError && /maximum supply/.test(e.message) && !e.message.includes("\n"),
    );
  });
});
