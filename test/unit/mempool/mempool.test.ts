/**
 * The mempool against a real Chain (ChainHarness, LMDB in a temp dir): admission rules, conflicts,
 * chained spends, block connection, reorgs, expiry, caps and eviction under a flood, block
 * selection, and masternode registrations (the transaction relay is in test/unit/relay/).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { blockHash } from "../../../src/primitives/block.js";
import { MAX_BLOCK_SIZE } from "../../../src/primitives/constants.js";
import { TxKind, txSize, txid, type OutPoint, type Tx } from "../../../src/primitives/tx.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { MempoolError } from "../../../src/mempool/errors.js";
import { Mempool } from "../../../src/mempool/mempool.js";
import type { MempoolOptions } from "../../../src/mempool/options.js";
import { TxRelay } from "../../../src/relay/txRelay.js";
import { MAX_REGISTRATIONS_PER_BLOCK, makeRegisterTx } from "../../../src/consensus/registryTx.js";
import { evidenceTx, makeEquivocation } from "../../../src/consensus/evidence.js";
import { checkTxSanity } from "../../../src/consensus/validation.js";
import { findByOperator } from "../../../src/consensus/registry.js";
import { TIER_COLLATERAL, Tier } from "../../../src/consensus/tier.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
  type Coin,
} from "../../helpers/chainFixture.js";
import {
  mns,
  alice,
  bob,
  carol,
  BOB,
  CAROL,
  SIMPLE_SIZE,
  hexId,
  withMempool,
  pay,
  rejection,
  mineTxs,
  fakeNetwork,
} from "./fixture.js";

describe("Mempool admission", () => {
  it("accepts a valid transfer and reports it", () =>
    withMempool(({ mp, coins, added }) => {
      const tx = pay(coins[0]!, BOB, 1_000n);
      const r = mp.accept(tx);
      assert.deepEqual(r.txid, txid(tx));
      assert.equal(r.fee, 1_000n);
      assert.ok(mp.has(r.txid), "mp.has(r.txid)");
      assert.ok(mp.has(r.txid.toString("hex")), 'mp.has(r.txid.toString("hex"))');
      assert.equal(mp.get(r.txid), tx);
      assert.deepEqual(
        mp.txids().map((t) => t.toString("hex")),
        [hexId(tx)],
      );
      assert.equal(added.length, 1);
      assert.equal(added[0]!.fee, 1_000n);
      const info = mp.info();
      assert.equal(info.size, 1);
      assert.equal(info.bytes, SIMPLE_SIZE);
      assert.ok(info.usage > info.bytes, "info.usage > info.bytes");
      assert.equal(info.minrelaytxfee, "0.00001000");
      assert.equal(info.minrelayfeerate, 1n);
      const [e] = mp.entries();
      assert.equal(e!.size, SIMPLE_SIZE);
      assert.deepEqual(e!.depends, []);
      assert.deepEqual(mp.spentBy(coins[0]!.outpoint), r.txid);
      assert.equal(mp.spentBy(coins[1]!.outpoint), undefined);
    }));

  it("rejects a bad signature as INVALID with the rule and its ban score", () =>
    withMempool(({ mp, coins }) => {
      const tx = pay(coins[0]!, BOB, 1_000n);
      tx.inputs[0]!.signature = Buffer.from(tx.inputs[0]!.signature);
      tx.inputs[0]!.signature[5]! ^= 1;
      const e = rejection(() => mp.accept(tx));
      assert.equal(e.code, "INVALID");
      assert.equal(e.ruleCode, "BAD_TX_SIGNATURE");
      assert.equal(e.banScore, 100);
      assert.match(e.message, /bad signature on input [0-9a-f]{64}:0/);
      assert.equal(mp.size, 0);
    }));

  it("rejects a key that does not own the input", () =>
    withMempool(({ mp, coins }) => {
      const tx = makeTransfer(bob, [coins[0]!.outpoint], [{ to: BOB, amount: 9n * COIN }]);
      const e = rejection(() => mp.accept(tx));
      assert.equal(e.ruleCode, "INPUT_KEY_MISMATCH");
      assert.equal(e.banScore, 100);
    }));

  it("rejects a missing input without penalty (it may be an orphan)", () =>
    withMempool(({ mp }) => {
      const ghost = { outpoint: { txid: Buffer.alloc(32, 0xab), index: 1 }, amount: COIN, key: alice };
      const e = rejection(() => mp.accept(pay(ghost, BOB, 1_000n)));
      assert.equal(e.code, "INVALID");
      assert.equal(e.ruleCode, "MISSING_INPUT");
      assert.equal(e.banScore, 0);
      assert.equal(e.message, `input ${"ab".repeat(32)}:1 is not an unspent output`);
    }));

  it("rejects outputs above inputs, with both amounts in TIME", () =>
    withMempool(({ mp, coins }) => {
      const tx = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 10n * COIN + 1n }]);
      const e = rejection(() => mp.accept(tx));
      assert.equal(e.ruleCode, "OUTPUTS_EXCEED_INPUTS");
      assert.equal(e.message, "outputs 10.00000001 exceed inputs 10.00000000");
      assert.equal(e.banScore, 100);
    }));

  it("rejects a double spend as CONFLICT naming the outpoint and the mempool transaction", () =>
    withMempool(({ mp, coins }) => {
      const first = pay(coins[0]!, BOB, 1_000n);
      mp.accept(first);
      const second = pay(coins[0]!, CAROL, 5_000n);
      const e = rejection(() => mp.accept(second));
      assert.equal(e.code, "CONFLICT");
      assert.equal(e.banScore, 0);
      const outpoint = `${coins[0]!.outpoint.txid.toString("hex")}:${coins[0]!.outpoint.index}`;
      assert.equal(e.message, `input ${outpoint} is already spent by mempool transaction ${hexId(first)}`);
      assert.equal(mp.size, 1);
    }));

  it("rejects a fee under the minimum relay fee rate", () =>
    withMempool(({ mp, coins }) => {
      const e = rejection(() => mp.accept(pay(coins[0]!, BOB, 176n)));
      assert.equal(e.code, "LOW_FEE");
      assert.equal(
        e.message,
        "fee 0.00000176 is below the minimum relay fee 0.00000177 (1 units/byte × 177 bytes)",
      );
      // Exactly the minimum is enough.
      mp.accept(pay(coins[1]!, BOB, 177n));
      assert.equal(mp.size, 1);
    }));

  it("rejects a coinbase, an unsupported kind, a duplicate, and an oversized transaction", () =>
    withMempool(
      ({ h, mp, coins }) => {
        const cb: Tx = {
          version: 1,
          kind: TxKind.Coinbase,
          inputs: [],
          outputs: [{ amount: COIN, address: BOB }],
          payload: Buffer.from([1, 0, 0, 0]),
        };
        const e1 = rejection(() => mp.accept(cb));
        assert.equal(e1.code, "COINBASE");
        assert.equal(e1.banScore, 100);

        // A registry transaction whose payload does not decode is malformed, and costs the sender.
        const reg = { ...pay(coins[0]!, BOB, 1_000n), kind: TxKind.MasternodeRegister };
        const e0 = rejection(() => mp.accept(reg));
        assert.equal(e0.code, "INVALID");
        assert.equal(e0.ruleCode, "BAD_MASTERNODE_TX");
        assert.ok(e0.banScore > 0, "a malformed registration is penalised");
        // A kind the protocol does not know is refused without penalty.
        const unknown = { ...pay(coins[0]!, BOB, 1_000n), kind: 9 as TxKind };
        const e9 = rejection(() => mp.accept(unknown));
        assert.equal(e9.code, "INVALID");
        assert.equal(e9.ruleCode, "UNSUPPORTED_TX_KIND");
        assert.equal(e9.banScore, 0);

        const tx = pay(coins[0]!, BOB, 1_000n);
        mp.accept(tx);
        const dup = rejection(() => mp.accept(tx));
        assert.equal(dup.code, "ALREADY_KNOWN");
        assert.match(dup.message, /already in the mempool/);

        // Two inputs: 17 + 2×132 + 28 = 309 bytes, over the 300-byte cap of this mempool.
        const big = makeTransfer(
          alice,
          [coins[1]!.outpoint, coins[2]!.outpoint],
          [{ to: BOB, amount: COIN }],
        );
        const e2 = rejection(() => mp.accept(big));
        assert.equal(e2.code, "TOO_LARGE");
        assert.equal(e2.message, "transaction is 309 bytes, over the relay limit of 300 bytes");

        // A transaction already in a block is known too.
        const mined = pay(coins[3]!, BOB, 1_000n);
        mineTxs(h, [mined], 1_000n);
        const e3 = rejection(() => mp.accept(mined));
        assert.equal(e3.code, "ALREADY_KNOWN");
        assert.match(e3.message, /already in block [0-9a-f]{64}/);
      },
      { maxTxSize: 300 },
    ));

  it("does not admit an Evidence transaction, even valid proof (UNSUPPORTED_TX_KIND, no penalty)", () =>
    withMempool(({ h, mp }) => {
      // Two blocks one producer signed for one slot: valid evidence, as a block may carry it.
      const b1 = h.makeBlock();
      const b2 = h.makeBlock({ timestamp: b1.header.timestamp + 1 });
      const ev = evidenceTx(makeEquivocation(b1.header, b2.header));
      assert.equal(ev.kind, TxKind.Evidence);
      checkTxSanity(ev);
      // Producers put evidence in blocks from their chain's own record, not from the mempool.
      const e = rejection(() => mp.accept(ev));
      assert.equal(e.code, "INVALID");
      assert.equal(e.ruleCode, "UNSUPPORTED_TX_KIND");
      assert.equal(e.banScore, 0);
      assert.equal(mp.size, 0);
    }));

  it("accepts a chain of unconfirmed spends and records the dependencies", () =>
    withMempool(({ mp, coins }) => {
      const parent = makeTransfer(
        alice,
        [coins[0]!.outpoint],
        [
          { to: BOB, amount: 4n * COIN },
          { to: pubkeyHash(alice.publicKey), amount: 6n * COIN - 1_000n },
        ],
      );
      mp.accept(parent);
      const child = makeTransfer(
        bob,
        [{ txid: txid(parent), index: 0 }],
        [{ to: CAROL, amount: 4n * COIN - 500n }],
      );
      const grandchild = makeTransfer(
        carol,
        [{ txid: txid(child), index: 0 }],
        [{ to: BOB, amount: 4n * COIN - 1_000n }],
      );
      assert.equal(mp.accept(child).fee, 500n);
      assert.equal(mp.accept(grandchild).fee, 500n);
      const entries = new Map(mp.entries().map((e) => [e.txid.toString("hex"), e]));
      assert.deepEqual(
        entries.get(hexId(child))!.depends.map((d) => d.toString("hex")),
        [hexId(parent)],
      );
      assert.deepEqual(
        entries.get(hexId(parent))!.spentBy.map((d) => d.toString("hex")),
        [hexId(child)],
      );
      // Spending an output the parent does not have is a missing input.
      const bad = makeTransfer(bob, [{ txid: txid(parent), index: 7 }], [{ to: CAROL, amount: 1n }]);
      assert.equal(rejection(() => mp.accept(bad)).ruleCode, "MISSING_INPUT");
      // A double spend of an unconfirmed output conflicts like any other.
      const twin = makeTransfer(bob, [{ txid: txid(parent), index: 0 }], [{ to: BOB, amount: COIN }]);
      assert.equal(rejection(() => mp.accept(twin)).code, "CONFLICT");
    }));

  it("limits chains of unconfirmed spends to maxAncestors", () =>
    withMempool(
      ({ mp, coins }) => {
        let prev = pay(coins[0]!, BOB, 1_000n);
        mp.accept(prev);
        let amount = 10n * COIN - 1_000n;
        for (let depth = 1; depth <= 3; depth++) {
          amount -= 1_000n;
          const next = makeTransfer(bob, [{ txid: txid(prev), index: 0 }], [{ to: BOB, amount }]);
          if (depth <= 2) {
            mp.accept(next);
            prev = next;
          } else {
            const e = rejection(() => mp.accept(next));
            assert.equal(e.code, "TOO_MANY_ANCESTORS");
            assert.equal(e.banScore, 0);
            assert.match(e.message, /more than 2 unconfirmed ancestors/);
          }
        }
        assert.equal(mp.size, 3);
      },
      { maxAncestors: 2 },
    ));

  it("refuses to spend an immature coinbase output, and accepts it once mature", () =>
    withMempool(({ h, mp }) => {
      const b1 = h.mine();
      const cb = b1.txs[0]!;
      const index = cb.outputs.findIndex((o) => o.address.equals(pubkeyHash(mns[0]!.publicKey)));
      const coin = { outpoint: { txid: txid(cb), index }, amount: cb.outputs[index]!.amount, key: mns[0]! };
      const tx = pay(coin, BOB, 1_000n);
      const e = rejection(() => mp.accept(tx));
      assert.equal(e.ruleCode, "IMMATURE_COINBASE_SPEND");
      assert.equal(e.banScore, 0);
      // Maturity 5 on devnet: spendable in the block at height 6, so once the tip is 5.
      for (let i = 0; i < 4; i++) h.mine();
      assert.equal(h.chain.height, 5);
      mp.accept(tx);
      assert.ok(mp.has(txid(tx)), "mp.has(txid(tx))");
    }));
});

describe("Mempool and the chain", () => {
  it("a connected block removes its transactions and those that now conflict, with descendants", () =>
    withMempool(({ h, mp, coins, removed }) => {
      const a = pay(coins[0]!, BOB, 1_000n);
      const b = makeTransfer(alice, [coins[1]!.outpoint], [{ to: BOB, amount: 10n * COIN - 1_000n }]);
      const bChild = makeTransfer(
        bob,
        [{ txid: txid(b), index: 0 }],
        [{ to: CAROL, amount: 10n * COIN - 2_000n }],
      );
      const p = pay(coins[2]!, BOB, 1_000n);
      const pChild = makeTransfer(
        bob,
        [{ txid: txid(p), index: 0 }],
        [{ to: CAROL, amount: 10n * COIN - 2_000n }],
      );
      const untouched = pay(coins[3]!, BOB, 1_000n);
      for (const tx of [a, b, bChild, p, pChild, untouched]) mp.accept(tx);
      assert.equal(mp.size, 6);

      // The block includes a and p, and a different spend of b's coin.
      const bTwin = pay(coins[1]!, CAROL, 3_000n);
      mineTxs(h, [a, p, bTwin], 5_000n);

      assert.deepEqual(
        new Set(mp.txids().map((t) => t.toString("hex"))),
        new Set([hexId(pChild), hexId(untouched)]),
      );
      const reasons = Object.fromEntries(removed.map((r) => [r.txid, r.reason]));
      assert.equal(reasons[hexId(a)], "block");
      assert.equal(reasons[hexId(p)], "block");
      assert.equal(reasons[hexId(b)], "conflict");
      assert.equal(reasons[hexId(bChild)], "conflict");
      // pChild now spends a confirmed output: no more in-mempool parent.
      assert.deepEqual(mp.getEntry(txid(pChild))!.depends, []);
      assert.equal(mp.bytes, 2 * SIMPLE_SIZE);
      // The spent outpoints are free of mempool spenders, so nothing stale is left behind.
      assert.equal(mp.spentBy(coins[1]!.outpoint), undefined);
    }));

  it("after a reorg, the losing branch's transactions come back unless they conflict with the winner", () =>
    withMempool(({ h, mp, coins, removed, added }) => {
      const g = h.chain.tip.hash;
      const t1 = pay(coins[0]!, BOB, 1_000n); // only on the losing branch: comes back
      const t2 = pay(coins[1]!, BOB, 1_000n); // double-spent on the winning branch: dropped
      const t3 = pay(coins[2]!, BOB, 1_000n); // on both branches: stays confirmed
      for (const tx of [t1, t2, t3]) mp.accept(tx);
      const a1 = mineTxs(h, [t1, t2, t3], 3_000n);
      assert.equal(mp.size, 0);

      // A mempool child of a block transaction, and an unrelated one.
      const t1Child = makeTransfer(
        bob,
        [{ txid: txid(t1), index: 0 }],
        [{ to: CAROL, amount: 10n * COIN - 2_000n }],
      );
      const loose = pay(coins[4]!, CAROL, 1_000n);
      mp.accept(t1Child);
      mp.accept(loose);

      // The winning branch, built from genesis: two blocks, the first at round 1 (a1's producer
      // signs one block for its slot; another one signs this).
      const t2Twin = pay(coins[1]!, CAROL, 2_000n);
      const b1 = h.makeBlock({ txs: [t2Twin, t3], fees: 3_000n, parentHash: g, round: 1 });
      assert.equal(h.feed(b1).status, "side");
      const b2 = h.makeBlock({ parentHash: blockHash(b1.header) });
      h.feed(b2);
      assert.ok(h.chain.tip.hash.equals(blockHash(b2.header)), "the two-block branch won");
      assert.ok(
        !h.chain.isMain(h.chain.getIndex(blockHash(a1.header))!),
        "!h.chain.isMain(h.chain.getIndex(blockHash(a1.header))!)",
      );

      const ids = new Set(mp.txids().map((t) => t.toString("hex")));
      assert.deepEqual(ids, new Set([hexId(t1), hexId(t1Child), hexId(loose)]));
      // The child follows its parent again.
      assert.deepEqual(
        mp.getEntry(txid(t1Child))!.depends.map((d) => d.toString("hex")),
        [hexId(t1)],
      );
      assert.equal(added.filter((a) => a.txid.equals(txid(t1))).length, 2, "t1 added again");
      assert.ok(!removed.some((r) => r.txid === hexId(loose)), "unrelated entry untouched");
      // The mempool is consistent with the new tip: a block of everything it selects connects.
      const sel = mp.selectForBlock(MAX_BLOCK_SIZE);
      assert.equal(sel.txs.length, 3);
      h.mine({ txs: sel.txs, fees: sel.fees });
      assert.equal(mp.size, 0);
    }));

  it("a large reorg's transactions come back a slice per turn, in order, and a disconnect meanwhile loses none", () =>
    withMempool(
      ({ h, mp, coins }) => {
        const g = h.chain.tip.hash;
        const t1 = pay(coins[0]!, BOB, 1_000n); // comes back
        const t2 = pay(coins[1]!, BOB, 1_000n); // double-spent by the winner: dropped
        const t3 = pay(coins[2]!, BOB, 1_000n); // on both branches
        for (const tx of [t1, t2, t3]) mp.accept(tx);
        const a1 = mineTxs(h, [t1, t2, t3], 3_000n);
        const t1Child = makeTransfer(
          bob,
          [{ txid: txid(t1), index: 0 }],
          [{ to: CAROL, amount: 10n * COIN - 2_000n }],
        );
        const loose = pay(coins[4]!, CAROL, 1_000n);
        mp.accept(t1Child);
        mp.accept(loose);
        let reconciled = 0;
        mp.events.on("reconciled", () => reconciled++);

        const b1 = h.makeBlock({
          txs: [pay(coins[1]!, CAROL, 2_000n), t3],
          fees: 3_000n,
          parentHash: g,
          round: 1,
        });
        h.feed(b1);
        h.feed(h.makeBlock({ parentHash: blockHash(b1.header) }));
        assert.ok(!h.chain.isMain(h.chain.getIndex(blockHash(a1.header))!), "the two-block branch won");
        // The first slice (two items: t1 back, t2 dropped) ran within the reorg; three wait.
        assert.deepEqual(
          mp.txids().map((t) => t.toString("hex")),
          [hexId(t1)],
        );
        assert.equal(mp.reconcilePending, 3);
        assert.equal(reconciled, 0);
        // What is in is valid on the new chain now: a block of it connects.
        assert.equal(mp.selectForBlock(MAX_BLOCK_SIZE).txs.length, 1);

        // The tip goes while the backlog waits: t1 joins the backlog ahead of what waits, and the
        // first slice takes t1 (still valid) and t3 (still in b1: not brought back).
        h.chain.disconnectTip();
        assert.deepEqual(
          mp.txids().map((t) => t.toString("hex")),
          [hexId(t1)],
        );
        assert.equal(mp.reconcilePending, 2, "t1Child and loose wait");
        assert.equal(reconciled, 0);
        h.clock.advance(0);
        assert.equal(mp.reconcilePending, 0);
        assert.equal(reconciled, 1);
        const ids = new Set(mp.txids().map((t) => t.toString("hex")));
        assert.deepEqual(ids, new Set([hexId(t1), hexId(t1Child), hexId(loose)]));
        assert.deepEqual(
          mp.getEntry(txid(t1Child))!.depends.map((d) => d.toString("hex")),
          [hexId(t1)],
        );
      },
      { reconcileSlice: 2 },
    ));

  it("a plain disconnect of the tip puts its transactions back and drops spends of its coinbase", () =>
    withMempool(({ h, mp, coins, removed }) => {
      for (let i = 0; i < 5; i++) h.mine();
      const tx = pay(coins[0]!, BOB, 1_000n);
      mp.accept(tx);
      const b = mineTxs(h, [tx], 1_000n);
      // Spend a coinbase output of block 1, mature at height 6.
      const cb1 = h.chain.getBlock(h.chain.getHashAtHeight(1)!)!.txs[0]!;
      const idx = cb1.outputs.findIndex((o) => o.address.equals(pubkeyHash(mns[1]!.publicKey)));
      const cbSpend = pay(
        { outpoint: { txid: txid(cb1), index: idx }, amount: cb1.outputs[idx]!.amount, key: mns[1]! },
        BOB,
        1_000n,
      );
      mp.accept(cbSpend);
      assert.equal(mp.size, 1);

      h.chain.disconnectTip();
      assert.ok(
        !h.chain.isMain(h.chain.getIndex(blockHash(b.header))!),
        "!h.chain.isMain(h.chain.getIndex(blockHash(b.header))!)",
      );
      assert.ok(mp.has(txid(tx)), "the block's transaction is back");
      // At the new tip (5) the next height is 6: the coinbase of block 1 is still mature.
      assert.ok(mp.has(txid(cbSpend)), "mp.has(txid(cbSpend))");
      // Disconnect once more: now the spend would be in block 5, too early.
      h.chain.disconnectTip();
      assert.ok(!mp.has(txid(cbSpend)), "!mp.has(txid(cbSpend))");
      assert.ok(
        removed.some((r) => r.txid === hexId(cbSpend) && r.reason === "reorg"),
        'removed.some((r) => r.txid === hexId(cbSpend) && r.reason === "reorg")',
      );
      assert.ok(mp.has(txid(tx)), "mp.has(txid(tx))");
    }));

  it("expires transactions older than expiryMs, with their descendants", () =>
    withMempool(
      ({ h, mp, coins, removed }) => {
        const old = pay(coins[0]!, BOB, 1_000n);
        mp.accept(old);
        h.clock.advance(30_000);
        const child = makeTransfer(bob, [{ txid: txid(old), index: 0 }], [{ to: CAROL, amount: 9n * COIN }]);
        const young = pay(coins[1]!, BOB, 1_000n);
        mp.accept(child);
        mp.accept(young);
        h.clock.advance(60_000 - 30_000 - 1_000); // old is 59 s old
        assert.equal(mp.size, 3);
        h.clock.advance(2_000); // old is 61 s old: the sweep at 60 s removes it and its child
        assert.deepEqual(mp.txids(), [txid(young)]);
        assert.deepEqual(
          removed.map((r) => r.reason),
          ["expired", "expired"],
        );
        h.clock.advance(60_000);
        assert.equal(mp.size, 0);
      },
      { expiryMs: 60_000, sweepIntervalMs: 1_000 },
    ));
});

describe("Mempool caps and block selection", () => {
  const floodKey = testKey("flood", 0);
  const N = 10_000;
  const floodGenesis = testGenesis({ masternodes: mns, funded: [{ key: floodKey, amount: COIN, count: N }] });
  let floodTxs: Tx[] = [];
  let fees: bigint[] = [];
  const h0: { h: ChainHarness | null } = { h: null };

  before(() => {
    h0.h = new ChainHarness(floodGenesis, mns);
    const coins = h0.h.genesisCoins(floodKey);
    assert.equal(coins.length, N);
    // Fees are a permutation of 1,000..10,999 units (7,919 is coprime to 10,000), so arrival order
    // and fee order differ and every fee rate is distinct.
    fees = coins.map((_, i) => 1_000n + BigInt((i * 7_919) % N));
    floodTxs = coins.map((c, i) => pay(c, BOB, fees[i]!));
  });
  after(async () => {
    await h0.h?.close();
  });

  function flood(opts: Partial<MempoolOptions>): {
    mp: Mempool;
    outcome: Record<string, number>;
    evicted: number;
  } {
    const h = h0.h!;
    const mp = new Mempool(opts, { chain: h.chain, clock: h.clock, logger: nullLogger });
    let evicted = 0;
    mp.events.on("txRemoved", (e) => {
      assert.equal(e.reason, "evicted");
      evicted++;
    });
    const outcome: Record<string, number> = {};
    for (const tx of floodTxs) {
      let k = "accepted";
      try {
        mp.accept(tx);
      } catch (e) {
        assert.ok(e instanceof MempoolError, "e instanceof MempoolError");
        k = e.code;
      }
      outcome[k] = (outcome[k] ?? 0) + 1;
      assert.ok(mp.size <= (opts.maxCount ?? Infinity), "mp.size <= (opts.maxCount ?? Infinity)");
      assert.ok(mp.bytes <= (opts.maxBytes ?? Infinity), "mp.bytes <= (opts.maxBytes ?? Infinity)");
    }
    return { mp, outcome, evicted };
  }

  function topFees(k: number): Set<bigint> {
    return new Set([...fees].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)).slice(0, k));
  }

  it("a flood of 10,000 transactions under a byte cap keeps the highest fee rates", () => {
    const keep = 1_500;
    const { mp, outcome, evicted } = flood({ maxBytes: SIMPLE_SIZE * keep, maxCount: 50_000 });
    assert.equal(mp.size, keep);
    assert.equal(mp.bytes, SIMPLE_SIZE * keep);
    assert.equal(outcome.accepted! + (outcome.MEMPOOL_FULL ?? 0), N);
    assert.equal(outcome.accepted! - evicted, keep);
    const kept = new Set(mp.entries().map((e) => e.fee));
    assert.deepEqual(kept, topFees(keep));
    // Full: the minimum fee is now the lowest kept rate, 9,500 / 177 = 53.7, rounded up to 54
    // units per byte, shown in TIME per 1,000 bytes.
    assert.equal(mp.info().mempoolminfee, "0.00054000");
  });

  it("a flood of 10,000 transactions under a count cap keeps the highest fee rates", () => {
    const keep = 1_000;
    const { mp, outcome } = flood({ maxCount: keep });
    assert.equal(mp.size, keep);
    assert.ok(outcome.MEMPOOL_FULL! > 0, "outcome.MEMPOOL_FULL! > 0");
    assert.deepEqual(new Set(mp.entries().map((e) => e.fee)), topFees(keep));
    // A newcomer that does not beat the lowest kept fee rate is refused with the reason.
    const probe = flood({ maxCount: 1 }).mp;
    const e = rejection(() => probe.accept(floodTxs[0]!));
    assert.equal(e.code, "MEMPOOL_FULL");
  });

  it("eviction takes descendants along and never evicts the newcomer's own parent", () =>
    withMempool(
      ({ mp, coins, removed }) => {
        const low = pay(coins[0]!, BOB, 200n);
        const lowChild = makeTransfer(
          bob,
          [{ txid: txid(low), index: 0 }],
          [{ to: CAROL, amount: 10n * COIN - 5_000n }],
        );
        mp.accept(low);
        mp.accept(lowChild); // fee rate ~27, but its parent's is ~1.1
        // Full (2 entries). A fee rate of 10 beats low but not lowChild, which would go with it.
        const mid = pay(coins[1]!, BOB, 1_770n);
        assert.equal(rejection(() => mp.accept(mid)).code, "MEMPOOL_FULL");
        // 30 units/byte beats both: both go.
        const high = pay(coins[2]!, BOB, 5_310n);
        mp.accept(high);
        assert.deepEqual(mp.txids(), [txid(high)]);
        assert.deepEqual(
          removed.map((r) => [r.txid, r.reason]),
          [
            [hexId(lowChild), "evicted"],
            [hexId(low), "evicted"],
          ],
        );
        // Full again. A child of `high` would need `high` (the lowest rate now) evicted: refused.
        mp.accept(pay(coins[3]!, BOB, 8_000n));
        const highChild = makeTransfer(
          bob,
          [{ txid: txid(high), index: 0 }],
          [{ to: CAROL, amount: 9n * COIN }],
        );
        const e = rejection(() => mp.accept(highChild));
        assert.equal(e.code, "MEMPOOL_FULL");
        assert.match(e.message, /own parent/);
      },
      { maxCount: 2 },
    ));

  it("selectForBlock: highest fee rate first, parents before children, within the byte cap", () =>
    withMempool(({ h, mp, coins }) => {
      const parent = pay(coins[0]!, BOB, 200n); // lowest rate
      const child = makeTransfer(
        bob,
        [{ txid: txid(parent), index: 0 }],
        [{ to: CAROL, amount: 10n * COIN - 20_000n }],
      );
      const mid = pay(coins[1]!, BOB, 5_000n);
      const high = pay(coins[2]!, BOB, 9_000n);
      for (const tx of [parent, child, mid, high]) mp.accept(tx);

      const all = mp.selectForBlock(MAX_BLOCK_SIZE);
      assert.deepEqual(all.txs.map(hexId), [high, mid, parent, child].map(hexId));
      assert.equal(all.fees, 200n + 19_800n + 5_000n + 9_000n);

      // Room for two: the two best independent ones; the child never without its parent.
      const two = mp.selectForBlock(2 * SIMPLE_SIZE);
      assert.deepEqual(two.txs.map(hexId), [high, mid].map(hexId));
      assert.equal(two.fees, 14_000n);
      const three = mp.selectForBlock(3 * SIMPLE_SIZE + 10);
      assert.deepEqual(three.txs.map(hexId), [high, mid, parent].map(hexId));
      assert.ok(
        three.txs.reduce((s, t) => s + txSize(t), 0) <= 3 * SIMPLE_SIZE + 10,
        "three.txs.reduce((s, t) => s + txSize(t), 0) <= 3 * SIMPLE_SIZE + 10",
      );
      assert.deepEqual(mp.selectForBlock(SIMPLE_SIZE - 1).txs, []);

      // What it selects is a valid block.
      h.mine({ txs: all.txs, fees: all.fees });
      assert.equal(mp.size, 0);
    }));

  it("selectForBlock waits for every in-mempool parent of a child", () =>
    withMempool(({ h, mp, coins }) => {
      const p1 = pay(coins[0]!, BOB, 200n);
      const p2 = pay(coins[1]!, BOB, 5_000n);
      const child = makeTransfer(
        bob,
        [
          { txid: txid(p1), index: 0 },
          { txid: txid(p2), index: 0 },
        ],
        [{ to: CAROL, amount: 20n * COIN - 5_200n - 50_000n }],
      );
      for (const tx of [p1, p2, child]) mp.accept(tx);
      const sel = mp.selectForBlock(MAX_BLOCK_SIZE);
      assert.deepEqual(sel.txs.map(hexId), [p2, p1, child].map(hexId));
      h.mine({ txs: sel.txs, fees: sel.fees });
      assert.equal(mp.size, 0);
    }));
});

describe("Mempool and masternode registrations", () => {
  // Alice holds ten outputs of exactly the Bronze collateral, and small coins to sign and pay with.
  const regGenesis = testGenesis({
    masternodes: mns,
    funded: [
      { key: alice, amount: 10n * COIN, count: 10 },
      { key: alice, amount: TIER_COLLATERAL[Tier.Bronze], count: 10 },
    ],
  });
  const ops = testKeys("mp-op", 10);
  const FEE = 10_000n;
  const ALICE = pubkeyHash(alice.publicKey);

  function split(coins: Coin[]): { small: Coin[]; big: Coin[] } {
    return {
      small: coins.filter((c) => c.amount === 10n * COIN),
      big: coins.filter((c) => c.amount === TIER_COLLATERAL[Tier.Bronze]),
    };
  }

  /** A registration owned by alice, signed with `fund` (an alice coin), paying FEE. */
  function register(op: KeyPair, fund: Coin, collateral: OutPoint | null, tier = Tier.Bronze): Tx {
    return makeRegisterTx({
      ownerKey: alice,
      operatorKey: op,
      address: `mn-${op.publicKey.toString("hex").slice(0, 8)}.test:24200`,
      tier,
      rewardAddress: pubkeyHash(op.publicKey),
      collateral,
      inputs: [fund.outpoint],
      outputs: [{ amount: fund.amount - FEE, address: ALICE }],
    });
  }

  it("admits a valid Register transaction and relays it: announced when submitted, fetched and passed on when announced", () =>
    withMempool(
      async ({ h, mp, coins }) => {
        const { small, big } = split(coins);
        const offer = new Map<string, Tx>();
        const { network, calls } = fakeNetwork((_peer, ids) =>
          ids.map((id) => offer.get(id.toString("hex"))).filter((t): t is Tx => t !== undefined),
        );
        const relay = new TxRelay(
          {},
          { mempool: mp, network, clock: h.clock, logger: nullLogger, chain: h.chain },
        );
        relay.start();
        try {
          const bronze = register(ops[0]!, small[0]!, big[0]!.outpoint);
          const r = relay.submitLocal(bronze);
          assert.equal(r.fee, FEE);
          assert.ok(mp.has(txid(bronze)));
          assert.deepEqual(calls.broadcasts, [{ txids: [hexId(bronze)], except: undefined }]);
          assert.deepEqual(mp.collateralClaimedBy(big[0]!.outpoint), txid(bronze));
          assert.equal(mp.spentBy(big[0]!.outpoint), undefined, "the collateral itself is not spent");

          // A registration from a peer: fetched, admitted, announced to everyone but that peer.
          const fromPeer = register(ops[1]!, small[1]!, big[1]!.outpoint);
          offer.set(hexId(fromPeer), fromPeer);
          const peerA = { name: "A" };
          await relay.onTxInv(peerA, [txid(fromPeer)]);
          assert.ok(mp.has(txid(fromPeer)));
          assert.deepEqual(calls.broadcasts.at(-1), { txids: [hexId(fromPeer)], except: peerA });
          assert.deepEqual(calls.penalties, []);

          // Both are mined into the next block and enter the registry.
          const { txs, fees } = mp.selectForBlock(MAX_BLOCK_SIZE);
          assert.equal(txs.length, 2);
          mineTxs(h, txs, fees);
          assert.equal(mp.size, 0);
          assert.ok(findByOperator(h.chain.getRegistry(), ops[0]!.publicKey));
          assert.ok(findByOperator(h.chain.getRegistry(), ops[1]!.publicKey));
          assert.equal(mp.collateralClaimedBy(big[0]!.outpoint), undefined);
          assert.equal(mp.collateralClaimedBy(big[1]!.outpoint), undefined);
        } finally {
          relay.stop();
        }
      },
      {},
      regGenesis,
    ));

  it("refuses a Free registration (MN_FREE_TIER, penalised), with or without a collateral; it claims nothing", () =>
    withMempool(
      ({ mp, coins }) => {
        const { small, big } = split(coins);
        for (const collateral of [null, big[0]!.outpoint]) {
          const e = rejection(() => mp.accept(register(ops[0]!, small[0]!, collateral, Tier.Free)));
          assert.equal(e.code, "INVALID");
          assert.equal(e.ruleCode, "MN_FREE_TIER");
          assert.equal(e.banScore, 100);
        }
        assert.equal(mp.size, 0);
        assert.equal(mp.collateralClaimedBy(big[0]!.outpoint), undefined);
        // The same operator, coin and collateral as Bronze get in.
        const bronze = register(ops[0]!, small[0]!, big[0]!.outpoint);
        mp.accept(bronze);
        assert.deepEqual(mp.collateralClaimedBy(big[0]!.outpoint), txid(bronze));
      },
      {},
      regGenesis,
    ));

  it("selectForBlock takes at most 8 registrations (R18); the rest wait for the next block", () =>
    withMempool(
      ({ h, mp, coins }) => {
        const { small, big } = split(coins);
        for (let i = 0; i < 10; i++) mp.accept(register(ops[i]!, small[i]!, big[i]!.outpoint));
        assert.equal(mp.size, 10);
        const first = mp.selectForBlock(MAX_BLOCK_SIZE);
        assert.equal(first.txs.length, MAX_REGISTRATIONS_PER_BLOCK);
        mineTxs(h, first.txs, first.fees);
        assert.equal(mp.size, 2);
        // The transaction-count cap the producer passes (room left after evidence) is honoured.
        assert.equal(mp.selectForBlock(MAX_BLOCK_SIZE, 1).txs.length, 1);
        const second = mp.selectForBlock(MAX_BLOCK_SIZE);
        assert.equal(second.txs.length, 2);
        mineTxs(h, second.txs, second.fees);
        for (const op of ops) assert.ok(findByOperator(h.chain.getRegistry(), op.publicKey));
      },
      {},
      regGenesis,
    ));

  it("a second pooled registration of the same operator, or of the same collateral, is refused as CONFLICT; so are spends of a pooled collateral", () =>
    withMempool(
      ({ mp, coins }) => {
        const { small, big } = split(coins);
        const first = register(ops[0]!, small[0]!, big[0]!.outpoint);
        mp.accept(first);

        const sameOperator = rejection(() => mp.accept(register(ops[0]!, small[1]!, big[1]!.outpoint)));
        assert.equal(sameOperator.code, "CONFLICT");
        assert.equal(sameOperator.banScore, 0, "a race between honest registrations costs nothing");
        assert.equal(
          sameOperator.message,
          `masternode op:${ops[0]!.publicKey.toString("hex")} is already claimed by mempool transaction ${hexId(first)}`,
        );

        const sameCollateral = rejection(() => mp.accept(register(ops[1]!, small[1]!, big[0]!.outpoint)));
        assert.equal(sameCollateral.code, "CONFLICT");
        const col = `${big[0]!.outpoint.txid.toString("hex")}:${big[0]!.outpoint.index}`;
        assert.match(
          sameCollateral.message,
          new RegExp(`col:${col} is already claimed by mempool transaction ${hexId(first)}`),
        );

        // Spending the pooled registration's collateral would make a block holding both invalid.
        const spend = rejection(() => mp.accept(pay(big[0]!, BOB, 1_000n)));
        assert.equal(spend.code, "CONFLICT");
        assert.equal(
          spend.message,
          `input ${col} is the collateral of the registration in mempool transaction ${hexId(first)}`,
        );

        // And the other way round: a registration naming a collateral a pooled transfer spends.
        const transfer = pay(big[1]!, BOB, 1_000n);
        mp.accept(transfer);
        const spent = rejection(() => mp.accept(register(ops[2]!, small[2]!, big[1]!.outpoint)));
        assert.equal(spent.code, "CONFLICT");
        assert.match(spent.message, new RegExp(`is already spent by mempool transaction ${hexId(transfer)}`));

        assert.deepEqual(
          new Set(mp.txids().map((t) => t.toString("hex"))),
          new Set([hexId(first), hexId(transfer)]),
        );
        // A registration of another operator with its own collateral and coin still gets in.
        mp.accept(register(ops[2]!, small[2]!, big[2]!.outpoint));
        assert.equal(mp.size, 3);
      },
      {},
      regGenesis,
    ));

  it("a pooled registration that a block makes invalid is dropped", () =>
    withMempool(
      ({ h, mp, coins, removed }) => {
        const { small, big } = split(coins);
        const bronze = register(ops[0]!, small[0]!, big[0]!.outpoint);
        const sameOp = register(ops[1]!, small[1]!, big[2]!.outpoint);
        const untouched = register(ops[2]!, small[3]!, big[1]!.outpoint);
        for (const tx of [bronze, sameOp, untouched]) mp.accept(tx);
        assert.equal(mp.size, 3);

        // Another node's block spends bronze's collateral and registers sameOp's operator itself,
        // each with other coins than the pooled ones: no input conflict, only registry ones.
        const spendCollateral = pay(big[0]!, BOB, 1_000n);
        const rival = register(ops[1]!, small[2]!, big[3]!.outpoint);
        mineTxs(h, [spendCollateral, rival], 1_000n + FEE);

        assert.deepEqual(
          mp.txids().map((t) => t.toString("hex")),
          [hexId(untouched)],
        );
        const reasons = Object.fromEntries(removed.map((r) => [r.txid, r.reason]));
        assert.equal(reasons[hexId(bronze)], "conflict", "its collateral is gone (MN_COLLATERAL_MISSING)");
        assert.equal(
          reasons[hexId(sameOp)],
          "conflict",
          "its operator is registered now (MN_DUPLICATE_OPERATOR)",
        );
        // Their claims are released with them.
        assert.equal(mp.collateralClaimedBy(big[0]!.outpoint), undefined);
        assert.equal(mp.collateralClaimedBy(big[2]!.outpoint), undefined);
        assert.deepEqual(mp.collateralClaimedBy(big[1]!.outpoint), txid(untouched));
        // The one still valid is mined next.
        const { txs, fees } = mp.selectForBlock(MAX_BLOCK_SIZE);
        mineTxs(h, txs, fees);
        assert.ok(findByOperator(h.chain.getRegistry(), ops[2]!.publicKey));
        assert.equal(mp.size, 0);
      },
      {},
      regGenesis,
    ));
});
