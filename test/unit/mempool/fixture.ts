/**
 * Shared by the mempool and transaction-relay tests: a real Chain (ChainHarness, LMDB in a temp
 * dir) with a Mempool on it, funded keys, and a fake relay network made of plain functions.
 */
import assert from "node:assert/strict";
import type { Block } from "../../../src/primitives/block.js";
import { txid, type OutPoint, type Tx } from "../../../src/primitives/tx.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { nullLogger } from "../../../src/logging/index.js";
import { MempoolError } from "../../../src/mempool/errors.js";
import { Mempool, type MempoolEvents } from "../../../src/mempool/mempool.js";
import type { MempoolOptions } from "../../../src/mempool/options.js";
import type { TxRelayNetwork } from "../../../src/relay/txRelay.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
  type Coin,
} from "../../helpers/chainFixture.js";

export const mns = testKeys("mn", 3);
export const alice = testKey("alice", 0);
export const bob = testKey("bob", 0);
export const carol = testKey("carol", 0);
export const BOB = pubkeyHash(bob.publicKey);
export const CAROL = pubkeyHash(carol.publicKey);
export const genesis = testGenesis({
  masternodes: mns,
  funded: [{ key: alice, amount: 10n * COIN, count: 8 }],
});

/** 1 input, 1 output: 177 bytes. */
export const SIMPLE_SIZE = 177;

export interface Ctx {
  h: ChainHarness;
  mp: Mempool;
  coins: Coin[];
  added: Array<MempoolEvents["txAdded"]>;
  removed: Array<{ txid: string; reason: string }>;
}

export function hexId(tx: Tx): string {
  return txid(tx).toString("hex");
}

export async function withMempool(
  fn: (c: Ctx) => void | Promise<void>,
  opts: Partial<MempoolOptions> = {},
  g = genesis,
): Promise<void> {
  const h = new ChainHarness(g, mns);
  const mp = new Mempool(opts, { chain: h.chain, clock: h.clock, logger: nullLogger });
  const added: Ctx["added"] = [];
  const removed: Ctx["removed"] = [];
  mp.events.on("txAdded", (e) => added.push(e));
  mp.events.on("txRemoved", (e) => removed.push({ txid: e.txid.toString("hex"), reason: e.reason }));
  mp.start();
  try {
    await fn({ h, mp, coins: h.genesisCoins(alice), added, removed });
  } finally {
    mp.stop();
    await h.close();
  }
}

/** Pays `amount` to `to` from one coin, leaving `fee`; the rest (if any) back to the owner. */
export function pay(
  coin: Coin | { outpoint: OutPoint; amount: bigint; key: KeyPair },
  to: Buffer,
  fee: bigint,
): Tx {
  return makeTransfer(coin.key, [coin.outpoint], [{ to, amount: coin.amount - fee }]);
}

export function rejection(fn: () => unknown): MempoolError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof MempoolError, `expected a MempoolError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a rejection");
}

/** Mines the given transactions into the next block (fees from the mempool, or given). */
export function mineTxs(h: ChainHarness, txs: Tx[], fees: bigint, parentHash?: Buffer): Block {
  return h.mine({ txs, fees, ...(parentHash ? { parentHash } : {}) });
}

/** A fake network: plain functions that record what the relay asks of it. */
export function fakeNetwork(serve: (peer: unknown, ids: Buffer[]) => Tx[]) {
  const calls = {
    broadcasts: [] as Array<{ txids: string[]; except: unknown }>,
    requests: [] as Array<{ peer: unknown; txids: string[] }>,
    penalties: [] as Array<{ peer: unknown; score: number; reason: string }>,
  };
  const network: TxRelayNetwork<unknown> = {
    broadcastTxInv: (txids, except) =>
      calls.broadcasts.push({ txids: txids.map((t) => t.toString("hex")), except }),
    requestTxs: (peer, txids) => {
      calls.requests.push({ peer, txids: txids.map((t) => t.toString("hex")) });
      return Promise.resolve(serve(peer, txids));
    },
    misbehaving: (peer, score, reason) => calls.penalties.push({ peer, score, reason }),
  };
  return { network, calls };
}
