/**
 * ChainStore: connect/disconnect round-trips of the UTXO set (property test), the data-directory
 * identity check, and atomicity of every state change.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { blockHash, encodeBlock, type Block } from "../../../src/primitives/block.js";
import { Chain } from "../../../src/chain/chain.js";
import { StoreError } from "../../../src/chain/chainStore.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { makeGenesisSpec } from "../../../src/consensus/genesis.js";
import { txid, type Tx } from "../../../src/primitives/tx.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { ManualClock } from "../../../src/util/clock.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  tempDir,
  testGenesis,
  testKeys,
  type ChainSnapshot,
  type Coin,
} from "../../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const users = testKeys("user", 3);
const genesis = testGenesis({
  masternodes: mns,
  funded: users.map((key) => ({ key, amount: 20n * COIN, count: 3 })),
});

function assertStatsConsistent(h: ChainHarness, where: string): void {
  assert.deepEqual(h.chain.storage.getStats(), h.chain.storage.computeStats(), `stats drifted ${where}`);
}

/** One random transfer: which coins it spends, how it splits them, and the fee. */
const txPlan = fc.record({
  /** Spend the newest coin first (often one created earlier in the same block). */
  newest: fc.boolean(),
  picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
  outputs: fc.array(
    fc.record({ to: fc.nat({ max: users.length - 1 }), weight: fc.integer({ min: 1, max: 100 }) }),
    {
      minLength: 1,
      maxLength: 3,
    },
  ),
  fee: fc.bigInt({ min: 0n, max: 100_000n }),
});
type TxPlan = typeof txPlan extends fc.Arbitrary<infer T> ? T : never;
const chainPlan = fc.array(fc.array(txPlan, { maxLength: 4 }), { minLength: 1, maxLength: 8 });

/** Turns a plan into valid transfers spending from (and adding to) `pool`. */
function buildTxs(plan: TxPlan[], pool: Coin[]): { txs: Tx[]; fees: bigint } {
  const txs: Tx[] = [];
  let fees = 0n;
  for (const p of plan) {
    if (pool.length === 0) break;
    const first = p.newest ? pool[pool.length - 1]! : pool[p.picks[0]! % pool.length]!;
    const owned = pool.filter((c) => c.key === first.key && c !== first);
    const chosen = [first];
    for (const n of p.picks.slice(1)) {
      const c = owned[n % Math.max(1, owned.length)];
      if (c && !chosen.includes(c)) chosen.push(c);
    }
    for (const c of chosen) pool.splice(pool.indexOf(c), 1);
    const inSum = chosen.reduce((a, c) => a + c.amount, 0n);
    const fee = p.fee < inSum - BigInt(p.outputs.length) ? p.fee : 0n;
    const rest = inSum - fee;
    const totalW = BigInt(p.outputs.reduce((a, o) => a + o.weight, 0));
    let amounts = p.outputs.map((o) => (rest * BigInt(o.weight)) / totalW);
    amounts[amounts.length - 1]! += rest - amounts.reduce((a, x) => a + x, 0n);
    let recipients = p.outputs.map((o) => users[o.to]!);
    if (amounts.some((a) => a <= 0n)) {
      amounts = [rest];
      recipients = [recipients[0]!];
    }
    const tx = makeTransfer(
      first.key,
      chosen.map((c) => c.outpoint),
      amounts.map((amount, i) => ({ to: pubkeyHash(recipients[i]!.publicKey), amount })),
    );
    const id = txid(tx);
    amounts.forEach((amount, index) =>
      pool.push({ outpoint: { txid: id, index }, amount, key: recipients[index]! }),
    );
    txs.push(tx);
    fees += fee;
  }
  return { txs, fees };
}

test("connecting random blocks and disconnecting them restores the UTXO set exactly (property)", async () => {
  let runs = 0;
  let spendsInsideABlock = 0;
  await fc.assert(
    fc.asyncProperty(chainPlan, async (plan) => {
      runs++;
      const h = new ChainHarness(genesis, mns);
      try {
        const pool: Coin[] = users.flatMap((u) => h.genesisCoins(u));
        const states: ChainSnapshot[] = [h.snapshot()];
        assertStatsConsistent(h, "at genesis");
        for (const blockPlan of plan) {
          const { txs, fees } = buildTxs(blockPlan, pool);
          const ids = new Set(txs.map((t) => txid(t).toString("hex")));
          for (const t of txs)
            if (t.inputs.some((i) => ids.has(i.prevout.txid.toString("hex")))) spendsInsideABlock++;
          h.mine({ txs, fees });
          assertStatsConsistent(h, `after connecting height ${h.chain.height}`);
          states.push(h.snapshot());
        }
        const finalTip = h.chain.tip;
        const disconnected: number[] = [];
        const off = h.chain.events.on("blockDisconnected", ({ entry }) => disconnected.push(entry.height));
        for (let i = plan.length; i > 0; i--) {
          const { entry } = h.chain.disconnectTip();
          assert.equal(entry.height, i);
          assertStatsConsistent(h, `after disconnecting height ${i}`);
          assert.deepEqual(h.snapshot(), states[i - 1], `state after disconnecting height ${i}`);
        }
        off();
        assert.deepEqual(
          disconnected,
          plan.map((_, i) => plan.length - i),
        );
        // Byte-identical to the state before any block was connected.
        assert.ok(h.chain.storage.getStats().hash.equals(states[0]!.stats.hash));
        // The disconnected blocks are still stored; switching back rebuilds the same state.
        const r = h.chain.reorgTo(finalTip);
        assert.equal(r.status, "reorged");
        assertStatsConsistent(h, "after reconnecting");
        assert.deepEqual(h.snapshot(), states[states.length - 1]);
      } finally {
        await h.close();
      }
    }),
    { numRuns: 30 },
  );
  assert.equal(runs, 30);
  assert.ok(spendsInsideABlock > 0, "the generator must produce chains of spends inside a block");
});

test("a block is stored in the bytes it arrived in; its header reads without the body", async () => {
  const h = new ChainHarness(genesis, mns);
  try {
    const coin = h.genesisCoins(users[0]!)[0]!;
    const block = h.makeBlock({
      txs: [
        makeTransfer(users[0]!, [coin.outpoint], [{ to: pubkeyHash(users[1]!.publicKey), amount: COIN }]),
      ],
      fees: coin.amount - COIN,
    });
    const raw = encodeBlock(block);
    assert.equal(h.chain.processBlock(block, raw).status, "connected");
    const hash = blockHash(block.header);
    assert.deepEqual(h.chain.storage.getBlockBytes(hash), raw);
    assert.deepEqual(h.chain.getHeader(hash), block.header);
    assert.equal(h.chain.getHeader(sha256(Buffer.from("unknown"))), undefined);
  } finally {
    await h.close();
  }
});

test("the genesis block cannot be disconnected", async () => {
  const h = new ChainHarness(genesis, mns);
  try {
    assert.throws(() => h.chain.disconnectTip(), StoreError);
    assert.equal(h.chain.height, 0);
  } finally {
    await h.close();
  }
});

test("a data directory of another network or another genesis refuses to open; the same genesis resumes", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const h = new ChainHarness(genesis, mns, dir);
    const coin = h.genesisCoins(users[0]!)[0]!;
    h.mine();
    h.mine({
      txs: [
        makeTransfer(
          users[0]!,
          [coin.outpoint],
          [{ to: pubkeyHash(users[1]!.publicKey), amount: 19n * COIN }],
        ),
      ],
      fees: COIN,
    });
    h.mine();
    const before = h.snapshot();
    await h.close();

    const clock = new ManualClock(genesis.timestamp);
    const testnet = makeGenesisSpec({
      network: "testnet",
      timestamp: genesis.timestamp,
      blockTimeMs: genesis.blockTimeMs,
      masternodes: mns.map((k, i) => ({ operatorPubkey: k.publicKey, address: `127.0.1.${i + 1}:24100` })),
    });
    assert.throws(
      () => Chain.open(dir, testnet, { clock }),
      (e) =>
        e instanceof StoreError &&
        !e.message.includes("\n") &&
        e.message.includes("devnet") &&
        e.message.includes("testnet"),
    );
    const otherGenesis = { ...genesis, timestamp: genesis.timestamp + 1 };
    assert.throws(
      () => Chain.open(dir, otherGenesis, { clock }),
      (e) => e instanceof StoreError && !e.message.includes("\n") && /genesis/.test(e.message),
    );

    const again = new ChainHarness(genesis, mns, dir);
    try {
      assert.deepEqual(again.snapshot(), before);
      assert.equal(again.chain.height, 3);
      again.clock.set(again.chain.tip.timestamp);
      again.mine();
      assert.equal(again.chain.height, 4);
      assertStatsConsistent(again, "after resuming");
    } finally {
      await again.close();
    }
  } finally {
    cleanup();
  }
});

/** Everything a failed block could have left behind. */
function traces(h: ChainHarness, block: Block) {
  const hash = blockHash(block.header);
  const s = h.chain.storage;
  return {
    stored: s.hasBlock(hash),
    body: s.getBlockBytes(hash) !== undefined,
    undo: s.getUndo(hash) !== undefined,
    atHeight: s.getHashAtHeight(block.header.height)?.toString("hex") ?? null,
  };
}

test("a block that fails in connectTransactions leaves no trace", async () => {
  const h = new ChainHarness(genesis, mns);
  try {
    h.mine();
    const before = h.snapshot();
    const coin = h.genesisCoins(users[0]!)[0]!;
    const spendsNothing = makeTransfer(
      users[0]!,
      [{ txid: sha256(Buffer.from("none")), index: 0 }],
      [{ to: pubkeyHash(users[1]!.publicKey), amount: 1n }],
    );
    const good = makeTransfer(
      users[0]!,
      [coin.outpoint],
      [{ to: pubkeyHash(users[1]!.publicKey), amount: coin.amount }],
    );
    // The header is valid; the second transaction spends an output that does not exist.
    const bad = h.makeBlock({ txs: [good, spendsNothing] });
    assert.throws(
      () => h.chain.processBlock(bad),
      (e) => e instanceof BlockError && e.code === "MISSING_INPUT",
    );
    assert.deepEqual(h.snapshot(), before);
    assert.deepEqual(traces(h, bad), { stored: false, body: false, undo: false, atHeight: null });
    assert.equal(
      h.chain.storage.getUtxo(coin.outpoint)?.amount,
      coin.amount,
      "the first tx's spend was dropped",
    );
    assertStatsConsistent(h, "after the failed block");
  } finally {
    await h.close();
  }
});

test("a failure after every write of a connect is rolled back (one write transaction)", async () => {
  const h = new ChainHarness(genesis, mns);
  try {
    h.mine();
    const before = h.snapshot();
    const coin = h.genesisCoins(users[0]!)[0]!;
    const tx = makeTransfer(
      users[0]!,
      [coin.outpoint],
      [{ to: pubkeyHash(users[1]!.publicKey), amount: coin.amount }],
    );
    const block = h.makeBlock({ txs: [tx] });
    const store = h.chain.storage;
    const applyConnect = store.applyConnect.bind(store);
    let wrote = false;
    store.applyConnect = (entry, changes, txids) => {
      applyConnect(entry, changes, txids);
      wrote = store.getTipHash().equals(entry.hash); // inside the transaction the write is visible
      throw new Error("injected failure after the writes");
    };
    const events: string[] = [];
    h.chain.events.on("blockConnected", () => events.push("connected"));
    assert.throws(() => h.chain.processBlock(block), /injected failure/);
    assert.ok(wrote, "the failure came after the store had written the new tip");
    assert.deepEqual(h.snapshot(), before);
    assert.deepEqual(traces(h, block), { stored: false, body: false, undo: false, atHeight: null });
    assert.deepEqual(events, [], "no event for a block that was not connected");
    assertStatsConsistent(h, "after the rolled-back connect");
    // A storage failure is not a verdict on the block: it connects once the store works again.
    store.applyConnect = applyConnect;
    assert.equal(h.chain.isKnownInvalid(blockHash(block.header)), false);
    assert.equal(h.chain.processBlock(block).status, "connected");
    assert.equal(h.chain.storage.getUtxo(coin.outpoint), undefined);
  } finally {
    await h.close();
  }
});

test("a failure in the middle of a disconnect is rolled back", async () => {
  const h = new ChainHarness(genesis, mns);
  try {
    const coin = h.genesisCoins(users[0]!)[0]!;
    h.mine({
      txs: [
        makeTransfer(
          users[0]!,
          [coin.outpoint],
          [{ to: pubkeyHash(users[2]!.publicKey), amount: coin.amount }],
        ),
      ],
    });
    const before = h.snapshot();
    const store = h.chain.storage;
    const applyDisconnect = store.applyDisconnect.bind(store);
    store.applyDisconnect = (entry, parent) => {
      applyDisconnect(entry, parent);
      throw new Error("injected failure after the disconnect writes");
    };
    assert.throws(() => h.chain.disconnectTip(), /injected failure/);
    assert.deepEqual(h.snapshot(), before);
    assert.ok(store.getUndo(h.chain.tip.hash), "undo data of the tip is still there");
    store.applyDisconnect = applyDisconnect;
    h.chain.disconnectTip();
    assert.equal(h.chain.height, 0);
    assert.equal(store.getUtxo(coin.outpoint)?.amount, coin.amount);
    assertStatsConsistent(h, "after the real disconnect");
  } finally {
    await h.close();
  }
});
