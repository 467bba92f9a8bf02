/**
 * The wallet over a real Chain and Mempool: key file (created at first use, mode 0600, reloaded,
 * never silently replaced), balances from the UTXO set, sending with exact fees and change,
 * insufficient funds, immature rewards, coins already spent in the mempool, and reorgs.
 */
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { txSize, type Tx } from "../../../src/primitives/tx.js";
import { AddressError, addressFromPubkey, decodeAddress, pubkeyHash } from "../../../src/crypto/address.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { MempoolError } from "../../../src/mempool/errors.js";
import { Mempool } from "../../../src/mempool/mempool.js";
import { SeededRandom } from "../../../src/util/random.js";
import { selectCoins } from "../../../src/wallet/coinSelection.js";
import { Wallet, WalletError, type WalletModules, type WalletOptions } from "../../../src/wallet/wallet.js";
import { makeRegisterTx } from "../../../src/consensus/registryTx.js";
import { findByOperator } from "../../../src/consensus/registry.js";
import { Tier } from "../../../src/consensus/tier.js";
import { blockHash } from "../../../src/primitives/block.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  tempDir,
  testGenesis,
  testKey,
  testKeys,
} from "../../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const alice = testKey("alice", 0);
const bob = testKey("bob", 0);
const BOB_ADDR = addressFromPubkey(bob.publicKey, "devnet");
const genesis = testGenesis({
  masternodes: mns,
  funded: [
    { key: alice, amount: 10n * COIN, count: 3 },
    { key: alice, amount: 2n * COIN },
  ],
});

interface Ctx {
  h: ChainHarness;
  mp: Mempool;
  dir: string;
  file: string;
  open: (opts?: Partial<WalletOptions>, relay?: WalletModules["relay"]) => Wallet;
}

async function withWallet(fn: (c: Ctx) => void | Promise<void>): Promise<void> {
  const h = new ChainHarness(genesis, mns);
  const { dir, cleanup } = tempDir("timewallet-");
  const mp = new Mempool({}, { chain: h.chain, clock: h.clock, logger: nullLogger });
  mp.start();
  const file = join(dir, "wallet.json");
  const wallets: Wallet[] = [];
  let seed = 1;
  const open = (opts: Partial<WalletOptions> = {}, relay?: WalletModules["relay"]): Wallet => {
    const w = new Wallet(
      { file, network: "devnet", ...opts },
      {
        chain: h.chain,
        mempool: mp,
        clock: h.clock,
        random: new SeededRandom(seed++),
        logger: nullLogger,
        ...(relay ? { relay } : {}),
      },
    );
    w.start();
    wallets.push(w);
    return w;
  };
  try {
    await fn({ h, mp, dir, file, open });
  } finally {
    for (const w of wallets) w.stop();
    mp.stop();
    await h.close();
    cleanup();
  }
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an exception");
}

function sum(xs: bigint[]): bigint {
  return xs.reduce((a, b) => a + b, 0n);
}

/** Input total of a mempool transaction, from the chain's UTXO set. */
function inputTotal(h: ChainHarness, tx: Tx): bigint {
  return sum(tx.inputs.map((i) => h.chain.storage.getUtxo(i.prevout)!.amount));
}

describe("Wallet keys", () => {
  it("creates the key file at first use with mode 0600, and reloads it", () =>
    withWallet(({ file, open }) => {
      const w = open();
      assert.equal(existsSync(file), false, "no file before a key is needed");
      assert.deepEqual(w.addresses(), []);
      const a1 = w.getNewAddress();
      const a2 = w.getNewAddress();
      assert.notEqual(a1, a2);
      assert.equal(decodeAddress(a1, "devnet").length, 20);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const json = JSON.parse(readFileSync(file, "utf8"));
      assert.equal(json.version, 1);
      assert.equal(json.network, "devnet");
      assert.equal(json.keys.length, 2);
      assert.match(json.keys[0].seed, /^[0-9a-f]{64}$/);
      assert.equal(typeof json.keys[0].created, "number");

      const again = open();
      assert.deepEqual(again.addresses(), [a1, a2]);
      assert.equal(statSync(file).mode & 0o777, 0o600);
    }));

  it("a corrupt or foreign key file is an error naming the file, and is left untouched", () =>
    withWallet(({ file, open }) => {
      writeFileSync(file, "{ not json", { mode: 0o600 });
      const e = thrown(() => open());
      assert.ok(e instanceof WalletError, "e instanceof WalletError");
      assert.equal(e.code, "CORRUPT_FILE");
      assert.ok(e.message.includes(file), e.message);
      assert.equal(readFileSync(file, "utf8"), "{ not json");

      writeFileSync(
        file,
        JSON.stringify({ version: 1, network: "devnet", keys: [{ seed: "xyz", created: 1 }] }),
      );
      const e2 = thrown(() => open());
      assert.ok(e2 instanceof WalletError, "e2 instanceof WalletError");
      assert.match(e2.message, /keys\[0\]\.seed must be 64 hex characters/);

      writeFileSync(file, JSON.stringify({ version: 1, network: "mainnet", keys: [] }));
      const e3 = thrown(() => open());
      assert.ok(e3 instanceof WalletError, "e3 instanceof WalletError");
      assert.equal(e3.code, "WRONG_NETWORK");
      assert.ok(e3.message.includes(file), "e3.message.includes(file)");
    }));
});

describe("Wallet coins and sending", () => {
  it("sees its genesis allocations", () =>
    withWallet(({ open }) => {
      const w = open({ extraKeys: [alice] });
      assert.equal(w.getBalance(), 32n * COIN);
      const coins = w.listUnspent();
      assert.equal(coins.length, 4);
      assert.ok(
        coins.every((c) => c.confirmations === 1 && c.spendable && c.coinbase && c.height === 0),
        "coins.every((c) => c.confirmations === 1 && c.spendable && c.coinbase && c.height === 0)",
      );
      assert.equal(open().getBalance(), 0n, "a wallet without alice's key has nothing");
    }));

  it("sends with change, paying exactly feeRate × size, inputs = outputs + fee", () =>
    withWallet(({ h, mp, open }) => {
      const w = open({ extraKeys: [alice] });
      const r = w.createAndSend(BOB_ADDR, 15n * COIN);
      const tx = mp.get(r.txid)!;
      assert.ok(tx, "in the mempool");
      // Largest first: two 10-TIME coins; the 2-TIME coin is not needed.
      assert.equal(tx.inputs.length, 2);
      assert.equal(tx.outputs.length, 2);
      const size = txSize(tx);
      assert.equal(size, 17 + 2 * 132 + 2 * 28);
      assert.equal(r.fee, 10n * BigInt(size));
      const outs = sum(tx.outputs.map((o) => o.amount));
      assert.equal(inputTotal(h, tx), outs + r.fee);
      assert.equal(mp.getEntry(r.txid)!.fee, r.fee);
      assert.deepEqual(tx.outputs[0], { amount: 15n * COIN, address: pubkeyHash(bob.publicKey) });
      // Change goes to the wallet's own (new) key, not to bob.
      assert.equal(tx.outputs[1]!.amount, 5n * COIN - r.fee);
      const change = w.addresses()[0]!;
      assert.deepEqual(tx.outputs[1]!.address, decodeAddress(change, "devnet"));
      // Unconfirmed change is not in the balance; the spent coins are gone from it.
      assert.equal(w.getBalance(), 12n * COIN);
      // Confirmed: balance = what was there - amount - fee.
      const sel = mp.selectForBlock(1_000_000);
      h.mine({ txs: sel.txs, fees: sel.fees });
      assert.equal(w.getBalance(), 32n * COIN - 15n * COIN - r.fee);
      assert.ok(
        w.listUnspent().some((c) => c.amount === 5n * COIN - r.fee && c.address === change),
        "w.listUnspent().some((c) => c.amount === 5n * COIN - r.fee && c.address === change)",
      );
    }));

  it("a remainder under the dust threshold goes to the fee instead of a change output", () =>
    withWallet(({ h, mp, open }) => {
      const w = open({ extraKeys: [alice] });
      // Trimmed to the 2-TIME coin alone. With change the fee would be 10 × 205 = 2,050 units,
      // leaving 220 units of change: under dust, so no change, and the fee is the whole 2,270.
      const amount = 2n * COIN - 1_770n - 500n;
      const r = w.createAndSend(BOB_ADDR, amount);
      const tx = mp.get(r.txid)!;
      assert.equal(tx.inputs.length, 1);
      assert.equal(tx.outputs.length, 1);
      assert.equal(r.change, 0n);
      assert.equal(r.fee, 2_270n);
      assert.equal(inputTotal(h, tx), amount + r.fee);
    }));

  it("insufficient funds says what is there and what is needed", () =>
    withWallet(({ open }) => {
      const w = open({ extraKeys: [alice] });
      const e = thrown(() => w.send(BOB_ADDR, 100n * COIN));
      assert.ok(e instanceof WalletError, "e instanceof WalletError");
      assert.equal(e.code, "INSUFFICIENT_FUNDS");
      // need = 100 TIME + 10 units/byte × (17 + 4 × 132 + 28) bytes = 100 TIME + 5,730 units.
      assert.equal(e.message, "insufficient funds: have 32.00000000, need 100.00005730");
      // Exactly everything minus the fee for spending everything works; one unit more does not.
      assert.match(
        String((thrown(() => w.send(BOB_ADDR, 32n * COIN - 5_729n)) as Error).message),
        /insufficient/,
      );
      w.send(BOB_ADDR, 32n * COIN - 5_730n);
      assert.equal(w.getBalance(), 0n);
    }));

  it("rejects zero, dust, and foreign-network addresses", () =>
    withWallet(({ open }) => {
      const w = open({ extraKeys: [alice] });
      const zero = thrown(() => w.send(BOB_ADDR, 0n));
      assert.ok(
        zero instanceof WalletError && zero.code === "BAD_AMOUNT",
        'zero instanceof WalletError && zero.code === "BAD_AMOUNT"',
      );
      const dust = thrown(() => w.send(BOB_ADDR, 1_319n));
      assert.ok(
        dust instanceof WalletError && dust.code === "DUST",
        'dust instanceof WalletError && dust.code === "DUST"',
      );
      assert.equal(dust.message, "amount 0.00001319 is below the dust threshold 0.00001320");
      const foreign = thrown(() => w.send(addressFromPubkey(bob.publicKey, "mainnet"), COIN));
      assert.ok(
        foreign instanceof AddressError && foreign.code === "WRONG_NETWORK",
        'foreign instanceof AddressError && foreign.code === "WRONG_NETWORK"',
      );
      assert.equal(w.getBalance(), 32n * COIN, "nothing was spent");
    }));

  it("never reuses a coin already spent by a mempool transaction", () =>
    withWallet(({ mp, open }) => {
      const w = open({ extraKeys: [alice] });
      const t1 = mp.get(w.send(BOB_ADDR, 5n * COIN))!;
      const t2 = mp.get(w.send(BOB_ADDR, 5n * COIN))!;
      const t3 = mp.get(w.send(BOB_ADDR, 5n * COIN))!;
      const spent = [t1, t2, t3].flatMap((t) =>
        t.inputs.map((i) => `${i.prevout.txid.toString("hex")}:${i.prevout.index}`),
      );
      assert.equal(new Set(spent).size, 3, "three different coins");
      assert.equal(w.getBalance(), 2n * COIN);
      assert.equal(w.listUnspent().length, 1);
      const e = thrown(() => w.send(BOB_ADDR, 5n * COIN));
      assert.ok(e instanceof WalletError, "e instanceof WalletError");
      assert.match(e.message, /^insufficient funds: have 2\.00000000, need 5\.0000/);
      // Sending goes through the relay when there is one; its refusal surfaces unchanged.
      const relayed: Tx[] = [];
      const viaRelay = open(
        { extraKeys: [alice] },
        {
          submitLocal: (tx) => {
            relayed.push(tx);
            throw new MempoolError("LOW_FEE", "fee too low");
          },
        },
      );
      const e2 = thrown(() => viaRelay.send(BOB_ADDR, COIN));
      assert.ok(e2 instanceof MempoolError, "e2 instanceof MempoolError");
      assert.equal(relayed.length, 1);
    }));

  it("an immature coinbase reward is listed but not spendable until mature", () =>
    withWallet(({ h, open }) => {
      const operator: KeyPair = mns[0]!;
      const w = open({ extraKeys: [operator] });
      h.mine();
      const [reward] = w.listUnspent();
      assert.ok(reward, "the block's reward is seen");
      assert.equal(reward.coinbase, true);
      assert.equal(reward.height, 1);
      assert.equal(reward.spendable, false);
      assert.equal(w.getBalance(), 0n);
      const e = thrown(() => w.send(BOB_ADDR, COIN));
      assert.ok(e instanceof WalletError, "e instanceof WalletError");
      assert.match(e.message, /^insufficient funds: have 0\.00000000/);
      // Devnet maturity 5: the reward of block 1 can go into block 6, i.e. once the tip is 5.
      for (let i = 0; i < 3; i++) h.mine();
      assert.equal(w.listUnspent().filter((c) => c.spendable).length, 0);
      h.mine();
      assert.equal(h.chain.height, 5);
      const mature = w.listUnspent().filter((c) => c.spendable);
      assert.equal(mature.length, 1);
      assert.equal(w.getBalance(), reward.amount);
      w.send(BOB_ADDR, COIN);
      assert.equal(w.getBalance(), 0n);
    }));

  it("follows a disconnect: the coins a block spent come back", () =>
    withWallet(({ h, mp, open }) => {
      const w = open({ extraKeys: [alice] });
      const r = w.createAndSend(BOB_ADDR, 15n * COIN);
      const sel = mp.selectForBlock(1_000_000);
      h.mine({ txs: sel.txs, fees: sel.fees });
      const confirmed = w.getBalance();
      assert.equal(confirmed, 17n * COIN - r.fee);
      h.chain.disconnectTip();
      // The transaction is back in the mempool, so its coins are spent there: the balance is the
      // pre-block one, and the change output of the disconnected block is gone.
      assert.ok(mp.has(r.txid), "mp.has(r.txid)");
      assert.equal(w.getBalance(), 12n * COIN);
      assert.equal(w.listUnspent().length, 2);
    }));

  it("follows a reorg from the blocks alone: spent coins come back unless the winner spends them", () =>
    withWallet(({ h, mp, open }) => {
      const w = open({ extraKeys: [alice] });
      let scans = 0;
      const store = h.chain.storage;
      const iterate = store.iterateUtxos.bind(store);
      store.iterateUtxos = function* () {
        scans++;
        yield* iterate();
      };
      const key = (o: { txid: Buffer; index: number }): string => `${o.txid.toString("hex")}:${o.index}`;
      const before = new Set(w.listUnspent().map((c) => key(c.outpoint)));
      const g = h.chain.tip.hash;
      const r = w.createAndSend(BOB_ADDR, 15n * COIN);
      assert.equal(r.tx.inputs.length, 2);
      const sel = mp.selectForBlock(1_000_000);
      const a1 = h.mine({ txs: sel.txs, fees: sel.fees });
      assert.ok(
        w.listUnspent().some((c) => c.outpoint.txid.equals(r.txid)),
        "the change is ours",
      );

      // The winner spends the first of r's two inputs in its own way, all to Bob.
      const [first, second] = r.tx.inputs.map((i) => i.prevout);
      const rival = makeTransfer(
        alice,
        [first!],
        [{ to: pubkeyHash(bob.publicKey), amount: 10n * COIN - 1_000n }],
      );
      const b1 = h.makeBlock({ txs: [rival], fees: 1_000n, parentHash: g, round: 1 });
      h.feed(b1);
      h.feed(h.makeBlock({ parentHash: blockHash(b1.header) }));
      assert.ok(!h.chain.isMain(h.chain.getIndex(blockHash(a1.header))!), "the two-block branch won");

      // r conflicts with the winner, so it is gone from the mempool; its second input is ours
      // again, its change is not, and the rival's input stays spent.
      assert.ok(!mp.has(r.txid), "!mp.has(r.txid)");
      const now = new Set(w.listUnspent().map((c) => key(c.outpoint)));
      const expected = new Set([...before].filter((k) => k !== key(first!)));
      assert.ok(expected.has(key(second!)), "the second input was ours before");
      assert.deepEqual(now, expected);
      assert.equal(w.getBalance(), 32n * COIN - 10n * COIN);
      assert.equal(scans, 0, "no scan of the UTXO set");
    }));
});

describe("coin selection", () => {
  const feeFor = (n: number, change: boolean): bigint => 10n * BigInt(17 + 132 * n + (change ? 56 : 28));
  const coin = (key: string, amount: bigint) => ({ key, amount });

  it("takes the largest first, then trims the last coin to the smallest that still covers", () => {
    const coins = [coin("a", 100n), coin("b", 50_000n), coin("c", 30_000n), coin("d", 9_000n)];
    const r = selectCoins(coins, { target: 55_000n, feeFor, dust: 600n });
    assert.ok(r.ok, "r.ok");
    // 50,000 then 30,000 covers; 9,000 also covers the 5,000 + fee that is left, so it replaces 30,000.
    assert.deepEqual(
      r.coins.map((c) => c.key),
      ["b", "d"],
    );
    assert.equal(r.fee, feeFor(2, true));
    assert.equal(r.change, 59_000n - 55_000n - feeFor(2, true));
  });

  it("is deterministic on ties and reports what is missing", () => {
    const coins = [coin("z", 5_000n), coin("y", 5_000n)];
    const r1 = selectCoins(coins, { target: 1_000n, feeFor, dust: 0n });
    const r2 = selectCoins([...coins].reverse(), { target: 1_000n, feeFor, dust: 0n });
    assert.deepEqual(r1, r2);
    assert.ok(r1.ok && r1.coins[0]!.key === "y", 'r1.ok && r1.coins[0]!.key === "y"');
    const no = selectCoins(coins, { target: 20_000n, feeFor, dust: 0n });
    assert.deepEqual(no, { ok: false, available: 10_000n, needed: 20_000n + feeFor(2, false) });
    assert.deepEqual(selectCoins([], { target: 1n, feeFor, dust: 0n }), {
      ok: false,
      available: 0n,
      needed: 1n + feeFor(1, false),
    });
  });
});

describe("Wallet and masternode collateral", () => {
  const rich = testGenesis({
    masternodes: mns,
    funded: [
      { key: alice, amount: 1_000n * COIN },
      { key: alice, amount: 10n * COIN, count: 2 },
    ],
  });

  it("locks the collateral of a masternode it owns (pooled or registered) against coin selection; sweep spends it deliberately, and the masternode leaves", async () => {
    const h = new ChainHarness(rich, mns);
    const { dir, cleanup } = tempDir("timewallet-");
    const mp = new Mempool({}, { chain: h.chain, clock: h.clock, logger: nullLogger });
    mp.start();
    const w = new Wallet(
      { file: join(dir, "wallet.json"), network: "devnet", extraKeys: [alice] },
      { chain: h.chain, mempool: mp, clock: h.clock, random: new SeededRandom(7), logger: nullLogger },
    );
    w.start();
    try {
      const coins = h.genesisCoins(alice);
      const collateral = coins.find((c) => c.amount === 1_000n * COIN)!;
      const fund = coins.find((c) => c.amount === 10n * COIN)!;
      assert.equal(w.getBalance(), 1_020n * COIN);
      assert.equal(w.isLocked(collateral.outpoint), false);
      const op = testKey("wallet-op", 0);
      const reg = makeRegisterTx({
        ownerKey: alice,
        operatorKey: op,
        address: "127.0.9.9:24200",
        tier: Tier.Bronze,
        rewardAddress: pubkeyHash(op.publicKey),
        collateral: collateral.outpoint,
        inputs: [fund.outpoint],
        outputs: [{ amount: fund.amount - 10_000n, address: pubkeyHash(alice.publicKey) }],
      });
      mp.accept(reg);
      // Pooled: already locked, so a send cannot spend it from under the registration.
      assert.equal(w.isLocked(collateral.outpoint), true);
      assert.equal(w.getBalance(), 10n * COIN, "the other 10 TIME coin only");
      h.mine({ txs: [reg], fees: 10_000n });
      assert.ok(findByOperator(h.chain.getRegistry(), op.publicKey));
      // Registered: locked through the registry (owner key in the wallet).
      assert.deepEqual(
        w.lockedOutpoints().map((o) => `${o.txid.toString("hex")}:${o.index}`),
        [`${collateral.outpoint.txid.toString("hex")}:${collateral.outpoint.index}`],
      );
      const row = w.listUnspent().find((c) => c.amount === 1_000n * COIN)!;
      assert.equal(row.locked, true);
      assert.equal(row.spendable, false);
      const balance = w.getBalance();
      assert.equal(balance, 20n * COIN - 10_000n);
      const e = thrown(() => w.send(BOB_ADDR, balance + COIN));
      assert.ok(e instanceof WalletError && e.code === "INSUFFICIENT_FUNDS", String(e));

      // Deliberately: one input, one output, feeRate × 177 bytes.
      const swept = w.sweep([collateral.outpoint], BOB_ADDR);
      assert.equal(swept.fee, 10n * 177n);
      assert.equal(swept.tx.inputs.length, 1);
      assert.deepEqual(swept.tx.outputs, [
        { amount: 1_000n * COIN - 1_770n, address: pubkeyHash(bob.publicKey) },
      ]);
      assert.ok(mp.has(swept.txid));
      const twice = thrown(() => w.sweep([collateral.outpoint], BOB_ADDR));
      assert.ok(twice instanceof WalletError && twice.code === "NOT_SPENDABLE", String(twice));
      h.mine({ txs: [swept.tx], fees: swept.fee });
      assert.equal(
        findByOperator(h.chain.getRegistry(), op.publicKey),
        undefined,
        "spending the collateral deregistered it",
      );
      assert.deepEqual(w.lockedOutpoints(), []);
    } finally {
      w.stop();
      mp.stop();
      await h.close();
      cleanup();
    }
  });
});
