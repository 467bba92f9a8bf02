/**
 * The transaction and wallet RPC methods on a real RpcServer (127.0.0.1, any port) over a real
 * Chain (ChainHarness), Mempool, TxRelay (fake network of plain functions) and Wallet: every
 * method once, and every error with its code and message.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { encodeTx, txid, type Tx } from "../../../src/primitives/tx.js";
import { addressFromPubkey, pubkeyHash } from "../../../src/crypto/address.js";
import { nullLogger } from "../../../src/logging/index.js";
import { Mempool } from "../../../src/mempool/mempool.js";
import { TxRelay } from "../../../src/relay/txRelay.js";
import { RpcCallError, RpcClient } from "../../../src/rpc/client.js";
import {
  RPC_DESERIALIZATION_ERROR,
  RPC_INVALID_ADDRESS_OR_KEY,
  RPC_TYPE_ERROR,
  RPC_VERIFY_REJECTED,
  RPC_WALLET_INSUFFICIENT_FUNDS,
} from "../../../src/rpc/errors.js";
import { RpcServer } from "../../../src/rpc/server.js";
import { RPC_VERIFY_ALREADY_IN_CHAIN, registerTxMethods } from "../../../src/rpc/txMethods.js";
import { registerWalletMethods } from "../../../src/rpc/walletMethods.js";
import { SystemClock } from "../../../src/util/clock.js";
import { SeededRandom } from "../../../src/util/random.js";
import { Wallet } from "../../../src/wallet/wallet.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  tempDir,
  testGenesis,
  testKey,
  testKeys,
  type Coin,
} from "../../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const alice = testKey("alice", 0); // the wallet's funded key
const carol = testKey("carol", 0); // funds raw transactions built by the test
const bob = testKey("bob", 0);
const BOB = pubkeyHash(bob.publicKey);
const BOB_ADDR = addressFromPubkey(bob.publicKey, "devnet");
const genesis = testGenesis({
  masternodes: mns,
  funded: [
    { key: alice, amount: 10n * COIN, count: 3 },
    { key: carol, amount: 5n * COIN, count: 6 },
  ],
});

const USER = "u";
const PASSWORD = "p";

describe("transaction and wallet RPC", () => {
  let h: ChainHarness;
  let mp: Mempool;
  let relay: TxRelay;
  let wallet: Wallet;
  let server: RpcServer;
  let client: RpcClient;
  let carolCoins: Coin[];
  let cleanup: () => void;
  const broadcasts: string[][] = [];

  before(async () => {
    h = new ChainHarness(genesis, mns);
    const t = tempDir("timerpc-");
    cleanup = t.cleanup;
    mp = new Mempool({}, { chain: h.chain, clock: h.clock, logger: nullLogger });
    mp.start();
    relay = new TxRelay(
      {},
      {
        mempool: mp,
        network: {
          broadcastTxInv: (ids) => broadcasts.push(ids.map((i) => i.toString("hex"))),
          requestTxs: () => Promise.resolve([]),
          misbehaving: () => undefined,
        },
        clock: h.clock,
        logger: nullLogger,
        chain: h.chain,
      },
    );
    relay.start();
    wallet = new Wallet(
      { file: join(t.dir, "wallet.json"), network: "devnet", extraKeys: [alice] },
      { chain: h.chain, mempool: mp, relay, clock: h.clock, random: new SeededRandom(7), logger: nullLogger },
    );
    wallet.start();
    server = new RpcServer(
      { host: "127.0.0.1", port: 0, auth: { kind: "userpass", user: USER, password: PASSWORD } },
      { logger: nullLogger, clock: new SystemClock(), random: new SeededRandom(1) },
    );
    registerTxMethods(server, { chain: h.chain, mempool: mp, relay });
    registerWalletMethods(server, { wallet, network: "devnet" });
    const { port } = await server.start();
    client = new RpcClient({
      url: `http://127.0.0.1:${port}/`,
      user: USER,
      password: PASSWORD,
      timeoutMs: 10_000,
    });
    carolCoins = h.genesisCoins(carol);
  });

  after(async () => {
    await server.stop();
    wallet.stop();
    relay.stop();
    mp.stop();
    await h.close();
    cleanup();
  });

  async function rpcError(method: string, params: unknown[]): Promise<RpcCallError> {
    try {
      await client.call(method, params);
    } catch (e) {
      assert.ok(e instanceof RpcCallError, `expected an RPC error, got ${String(e)}`);
      return e;
    }
    assert.fail(`${method} should have failed`);
  }

  const hex = (tx: Tx): string => encodeTx(tx).toString("hex");
  const spend = (coin: Coin, fee = 1_000n): Tx =>
    makeTransfer(coin.key, [coin.outpoint], [{ to: BOB, amount: coin.amount - fee }]);

  it("validateaddress: valid, wrong network, bad checksum, garbage", async () => {
    const ok = await client.call<Record<string, unknown>>("validateaddress", [BOB_ADDR]);
    assert.deepEqual(ok, {
      isvalid: true,
      address: BOB_ADDR,
      network: "devnet",
      pubkeyhash: BOB.toString("hex"),
    });
    const main = addressFromPubkey(bob.publicKey, "mainnet");
    const wrong = await client.call<Record<string, unknown>>("validateaddress", [main]);
    assert.equal(wrong.isvalid, false);
    assert.equal(wrong.error_code, "WRONG_NETWORK");
    assert.equal(wrong.network, "mainnet");
    assert.match(String(wrong.error), /not a devnet address/);
    const last = BOB_ADDR.at(-1) === "2" ? "3" : "2";
    const badSum = await client.call<Record<string, unknown>>("validateaddress", [
      BOB_ADDR.slice(0, -1) + last,
    ]);
    assert.equal(badSum.isvalid, false);
    assert.match(String(badSum.error_code), /BAD_CHECKSUM|BAD_LENGTH/);
    const junk = await client.call<Record<string, unknown>>("validateaddress", ["hello"]);
    assert.deepEqual(
      { isvalid: junk.isvalid, error_code: junk.error_code },
      { isvalid: false, error_code: "BAD_PREFIX" },
    );
  });

  it("getnewaddress, getbalance, listunspent", async () => {
    const addr = await client.call<string>("getnewaddress");
    const v = await client.call<Record<string, unknown>>("validateaddress", [addr]);
    assert.equal(v.isvalid, true);
    assert.equal(await client.call("getbalance"), "30.00000000");
    const coins = await client.call<Array<Record<string, unknown>>>("listunspent");
    assert.equal(coins.length, 3);
    assert.deepEqual(
      coins.map((c) => [c.amount, c.confirmations, c.spendable]),
      [
        ["10.00000000", 1, true],
        ["10.00000000", 1, true],
        ["10.00000000", 1, true],
      ],
    );
    assert.deepEqual(await client.call("listunspent", [2]), []);
    assert.equal((await rpcError("listunspent", [-1])).code, -32602);
  });

  it("gettxoutsetinfo reports the set and its multiset hash", async () => {
    const info = await client.call<Record<string, unknown>>("gettxoutsetinfo");
    const stats = h.chain.storage.getStats();
    assert.deepEqual(info, {
      height: 0,
      bestblock: h.chain.tip.hash.toString("hex"),
      txouts: 9,
      total_amount: "60.00000000",
      hash_serialized: stats.hash.toString("hex"),
      hash_type: "multiset-sha256",
    });
  });

  it("sendrawtransaction accepts, announces, and is idempotent", async () => {
    const tx = spend(carolCoins[0]!);
    const id = txid(tx).toString("hex");
    broadcasts.length = 0;
    assert.equal(await client.call("sendrawtransaction", [hex(tx)]), id);
    assert.deepEqual(broadcasts, [[id]]);
    assert.equal(await client.call("sendrawtransaction", [hex(tx).toUpperCase()]), id);
    assert.ok(mp.has(id), "in the mempool");
  });

  it("sendrawtransaction: malformed hex is -22 TX decode failed", async () => {
    for (const bad of ["zz", "abc", "", "00"]) {
      const e = await rpcError("sendrawtransaction", [bad]);
      assert.equal(e.code, RPC_DESERIALIZATION_ERROR, bad);
      assert.match(e.message, /^TX decode failed: /);
    }
    const truncated = hex(spend(carolCoins[1]!)).slice(0, -10);
    const e = await rpcError("sendrawtransaction", [truncated]);
    assert.equal(e.code, RPC_DESERIALIZATION_ERROR);
    const trailing = hex(spend(carolCoins[1]!)) + "00";
    assert.equal((await rpcError("sendrawtransaction", [trailing])).code, RPC_DESERIALIZATION_ERROR);
  });

  it("sendrawtransaction: invalid transactions are -26 with the reason, and not announced", async () => {
    broadcasts.length = 0;
    const badSig = spend(carolCoins[1]!);
    badSig.inputs[0]!.signature = Buffer.alloc(64, 1);
    const e1 = await rpcError("sendrawtransaction", [hex(badSig)]);
    assert.equal(e1.code, RPC_VERIFY_REJECTED);
    assert.match(e1.message, /^transaction rejected: bad signature on input [0-9a-f]{64}:\d+$/);
    assert.deepEqual(e1.data, { code: "INVALID", rule: "BAD_TX_SIGNATURE" });

    const ghost = { ...carolCoins[1]!, outpoint: { txid: Buffer.alloc(32, 0xee), index: 3 } };
    const e2 = await rpcError("sendrawtransaction", [hex(spend(ghost))]);
    assert.equal(e2.code, RPC_VERIFY_REJECTED);
    assert.equal(e2.message, `transaction rejected: input ${"ee".repeat(32)}:3 is not an unspent output`);

    const over = makeTransfer(carol, [carolCoins[1]!.outpoint], [{ to: BOB, amount: 6n * COIN }]);
    const e3 = await rpcError("sendrawtransaction", [hex(over)]);
    assert.equal(e3.message, "transaction rejected: outputs 6.00000000 exceed inputs 5.00000000");

    const double = spend(carolCoins[0]!, 9_000n); // carolCoins[0] is spent by the earlier test
    const e4 = await rpcError("sendrawtransaction", [hex(double)]);
    assert.equal(e4.code, RPC_VERIFY_REJECTED);
    assert.match(e4.message, /is already spent by mempool transaction [0-9a-f]{64}$/);

    const e5 = await rpcError("sendrawtransaction", [hex(spend(carolCoins[1]!, 10n))]);
    assert.match(e5.message, /below the minimum relay fee/);
    assert.deepEqual(broadcasts, []);
    assert.equal(mp.size, 1);
  });

  it("decoderawtransaction", async () => {
    const tx = spend(carolCoins[2]!, 2_000n);
    const d = await client.call<Record<string, unknown>>("decoderawtransaction", [hex(tx)]);
    assert.equal(d.txid, txid(tx).toString("hex"));
    assert.equal(d.kind, "transfer");
    assert.equal(d.size, 177);
    assert.deepEqual(d.vout, [{ n: 0, value: "4.99998000", address: BOB_ADDR }]);
    assert.equal((d.vin as unknown[]).length, 1);
    assert.equal((await rpcError("decoderawtransaction", ["xyz"])).code, RPC_DESERIALIZATION_ERROR);
  });

  it("sendtoaddress pays, and its amount and address errors have their codes", async () => {
    const id = await client.call<string>("sendtoaddress", [BOB_ADDR, "1.5"]);
    assert.ok(mp.has(id), "in the mempool");
    const tx = mp.get(id)!;
    assert.equal(tx.outputs[0]!.amount, 150_000_000n);
    assert.equal(await client.call("getbalance"), "20.00000000");
    const id2 = await client.call<string>("sendtoaddress", [BOB_ADDR, 0.1]);
    assert.equal(mp.get(id2)!.outputs[0]!.amount, 10_000_000n);

    const cases: Array<[unknown, number, RegExp]> = [
      ["-1", RPC_TYPE_ERROR, /must not be negative/],
      [-1, RPC_TYPE_ERROR, /must not be negative/],
      ["1.123456789", RPC_TYPE_ERROR, /more than 8 decimal places/],
      [0.1 + 0.2, RPC_TYPE_ERROR, /more than 8 decimal places/],
      ["1e3", RPC_TYPE_ERROR, /invalid amount/],
      ["", RPC_TYPE_ERROR, /invalid amount/],
      [true, RPC_TYPE_ERROR, /expected a decimal string/],
      ["0", RPC_TYPE_ERROR, /must be greater than 0/],
      ["0.00000001", RPC_TYPE_ERROR, /below the dust threshold/],
      [
        "1000",
        RPC_WALLET_INSUFFICIENT_FUNDS,
        /^insufficient funds: have 10\.00000000, need 1000\.0000\d{4}$/,
      ],
    ];
    for (const [amount, code, message] of cases) {
      const e = await rpcError("sendtoaddress", [BOB_ADDR, amount]);
      assert.equal(e.code, code, `amount ${String(amount)}: ${e.message}`);
      assert.match(e.message, message);
    }
    const wrongNet = await rpcError("sendtoaddress", [addressFromPubkey(bob.publicKey, "mainnet"), "1"]);
    assert.equal(wrongNet.code, RPC_INVALID_ADDRESS_OR_KEY);
    assert.match(wrongNet.message, /is a mainnet address, and this node is on devnet/);
    const junk = await rpcError("sendtoaddress", ["TIME0notanaddress!", "1"]);
    assert.equal(junk.code, RPC_INVALID_ADDRESS_OR_KEY);
    assert.match(junk.message, /^invalid address: /);
  });

  it("getmempoolinfo and getrawmempool", async () => {
    const info = await client.call<Record<string, unknown>>("getmempoolinfo");
    assert.equal(info.size, 3);
    assert.equal(info.bytes, mp.bytes);
    assert.equal(info.minrelaytxfee, "0.00001000");
    assert.equal(info.mempoolminfee, "0.00001000");
    assert.equal(info.maxmempool, 64 * 1024 * 1024);
    const ids = await client.call<string[]>("getrawmempool");
    assert.deepEqual(new Set(ids), new Set(mp.txids().map((t) => t.toString("hex"))));
    const verbose = await client.call<Record<string, Record<string, unknown>>>("getrawmempool", [true]);
    assert.deepEqual(Object.keys(verbose).sort(), [...ids].sort());
    const first = verbose[ids[0]!]!;
    assert.equal(first.fee, "0.00001000");
    assert.equal(first.size, 177);
    assert.deepEqual(first.depends, []);
    assert.equal(typeof first.time, "number");
    assert.equal((await rpcError("getrawmempool", ["yes"])).code, RPC_TYPE_ERROR);
  });

  it("getrawtransaction from the mempool, then from a block", async () => {
    const [id] = await client.call<string[]>("getrawmempool");
    const raw = await client.call<string>("getrawtransaction", [id]);
    assert.equal(raw, encodeTx(mp.get(id!)!).toString("hex"));
    const v = await client.call<Record<string, unknown>>("getrawtransaction", [id, true]);
    assert.equal(v.in_mempool, true);
    assert.equal(v.txid, id);
    assert.equal(v.hex, raw);
    assert.equal(typeof v.fee, "string");

    const sel = mp.selectForBlock(1_000_000);
    const block = h.mine({ txs: sel.txs, fees: sel.fees });
    assert.equal(mp.size, 0);
    const mined = await client.call<Record<string, unknown>>("getrawtransaction", [id, 1]);
    assert.equal(mined.in_mempool, false);
    assert.equal(mined.blockhash, h.chain.tip.hash.toString("hex"));
    assert.equal(mined.blockheight, 1);
    assert.equal(mined.confirmations, 1);
    assert.equal(mined.hex, raw);
    assert.equal(mined.blocktime, Math.floor(block.header.timestamp / 1000));
    // The genesis allocation transaction is indexed too.
    const g = txid(h.chain.getBlock(h.chain.getHashAtHeight(0)!)!.txs[0]!).toString("hex");
    const gj = await client.call<Record<string, unknown>>("getrawtransaction", [g, true]);
    assert.equal(gj.confirmations, 2);
    assert.equal(gj.kind, "coinbase");

    const e = await rpcError("getrawtransaction", ["ab".repeat(32)]);
    assert.equal(e.code, RPC_INVALID_ADDRESS_OR_KEY);
    assert.match(e.message, /no such mempool or main-chain transaction/);
    assert.equal((await rpcError("getrawtransaction", ["nothex"])).code, -32602);

    // Sending a mined transaction again: -27, already in the chain.
    const again = await rpcError("sendrawtransaction", [raw]);
    assert.equal(again.code, RPC_VERIFY_ALREADY_IN_CHAIN);
    assert.match(again.message, /already in block [0-9a-f]{64}/);

    // The block's outputs show in the UTXO statistics and the balance.
    const info = await client.call<Record<string, unknown>>("gettxoutsetinfo");
    assert.equal(info.height, 1);
    assert.equal(info.hash_serialized, h.chain.storage.getStats().hash.toString("hex"));
    assert.notEqual(await client.call("getbalance"), "20.00000000");
  });
});
