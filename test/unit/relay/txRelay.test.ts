/** The transaction relay over a fake network made of plain functions, with a real mempool and chain. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockHash } from "../../../src/primitives/block.js";
import { txid, type Tx } from "../../../src/primitives/tx.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import { nullLogger } from "../../../src/logging/index.js";
import { ManualClock } from "../../../src/util/clock.js";
import { TxRelay } from "../../../src/relay/txRelay.js";
import { makeTransfer } from "../../helpers/chainFixture.js";
import {
  alice,
  BOB,
  CAROL,
  type Ctx,
  hexId,
  withMempool,
  pay,
  rejection,
  mineTxs,
  fakeNetwork,
} from "../mempool/fixture.js";
describe("TxRelay", () => {
  function withRelay(
    fn: (
      c: Ctx & { relay: TxRelay; calls: ReturnType<typeof fakeNetwork>["calls"]; offer: Map<string, Tx> },
    ) => Promise<void>,
  ): Promise<void> {
    return withMempool(async (c) => {
      const offer = new Map<string, Tx>();
      const { network, calls } = fakeNetwork((_peer, ids) =>
        ids.map((id) => offer.get(id.toString("hex"))).filter((t): t is Tx => t !== undefined),
      );
      const relay = new TxRelay(
        {},
        { mempool: c.mp, network, clock: c.h.clock, logger: nullLogger, chain: c.h.chain },
      );
      relay.start();
      try {
        await fn({ ...c, relay, calls, offer });
      } finally {
        relay.stop();
      }
    });
  }
  const peerA = { name: "A" };
  const peerB = { name: "B" };

  it("announces the transactions a reorg brings back in one TxInv, not one per transaction", () =>
    withRelay(async ({ h, mp, coins, calls }) => {
      const g = h.chain.tip.hash;
      // 60 chained spends in one block (a block may hold chains the relay policy would not).
      const chain: Tx[] = [];
      let prev = { outpoint: coins[0]!.outpoint, amount: coins[0]!.amount };
      for (let i = 0; i < 60; i++) {
        const amount = prev.amount - 1_000n;
        const tx = makeTransfer(alice, [prev.outpoint], [{ to: pubkeyHash(alice.publicKey), amount }]);
        chain.push(tx);
        prev = { outpoint: { txid: txid(tx), index: 0 }, amount };
      }
      mineTxs(h, chain, 60_000n);
      assert.equal(mp.size, 0);
      calls.broadcasts.length = 0;
      // A heavier branch from genesis without them: they all come back to the mempool. Its first
      // block is at round 1, so another producer than the losing block's.
      const b1 = h.makeBlock({ parentHash: g, round: 1 });
      assert.equal(h.feed(b1).status, "side");
      assert.equal(h.feed(h.makeBlock({ parentHash: blockHash(b1.header) })).status, "reorged");
      assert.equal(mp.size, 60, "every transaction of the losing block is back");
      assert.equal(calls.broadcasts.length, 1, "one announcement for the whole reorg");
      assert.deepEqual(new Set(calls.broadcasts[0]!.txids), new Set(chain.map(hexId)));
      await Promise.resolve();
    }));

  it("fetches announced transactions, accepts them, and announces them to everyone but the sender", () =>
    withRelay(async ({ mp, coins, relay, calls, offer }) => {
      const t1 = pay(coins[0]!, BOB, 1_000n);
      const t2 = pay(coins[1]!, BOB, 1_000n);
      for (const t of [t1, t2]) offer.set(hexId(t), t);
      await relay.onTxInv(peerA, [txid(t1), txid(t2), txid(t1)]);
      assert.deepEqual(calls.requests, [{ peer: peerA, txids: [hexId(t1), hexId(t2)] }]);
      assert.ok(mp.has(txid(t1)) && mp.has(txid(t2)), "mp.has(txid(t1)) && mp.has(txid(t2))");
      assert.deepEqual(calls.broadcasts, [{ txids: [hexId(t1), hexId(t2)], except: peerA }]);
      assert.ok(relay.knows(peerA, txid(t1)), "relay.knows(peerA, txid(t1))");
      // Announced again, by anyone: nothing is fetched twice.
      await relay.onTxInv(peerB, [txid(t1)]);
      assert.equal(calls.requests.length, 1);
      // The network filters per peer through the relay: A already knows both.
      assert.deepEqual(relay.filterUnknown(peerA, [txid(t1), txid(t2)]), []);
      assert.deepEqual(
        relay.filterUnknown(peerB, [txid(t1), txid(t2)]).map((t) => t.toString("hex")),
        [hexId(t2)],
      );
      assert.deepEqual(relay.filterUnknown(peerB, [txid(t2)]), []);
      // GetTxs is served from the mempool.
      assert.deepEqual(relay.onGetTxs([txid(t2), Buffer.alloc(32)], peerB), [t2]);
    }));

  it("an invalid transaction costs its sender the rule's ban score; a policy rejection costs nothing", () =>
    withRelay(async ({ coins, relay, calls, offer }) => {
      const bad = pay(coins[0]!, BOB, 1_000n);
      bad.inputs[0]!.signature = Buffer.alloc(64, 7);
      const cheap = pay(coins[1]!, BOB, 10n);
      for (const t of [bad, cheap]) offer.set(hexId(t), t);
      await relay.onTxInv(peerA, [txid(bad), txid(cheap)]);
      assert.equal(calls.penalties.length, 1);
      assert.equal(calls.penalties[0]!.score, 100);
      assert.match(calls.penalties[0]!.reason, /bad signature/);
      assert.deepEqual(calls.broadcasts, []);
      // The low-fee one is remembered as rejected and not fetched again; the bad-signature one is
      // not (a tampered copy shares the genuine transaction's txid).
      assert.ok(relay.isRejected(txid(cheap)), "relay.isRejected(txid(cheap))");
      assert.ok(!relay.isRejected(txid(bad)), "!relay.isRejected(txid(bad))");
      await relay.onTxInv(peerB, [txid(cheap), txid(bad)]);
      assert.deepEqual(calls.requests.at(-1)!.txids, [hexId(bad)]);
    }));

  it("rate-limits each peer to 50 tx/s after a burst of 100, dropping the excess unscored (announcements are gossip)", () =>
    withRelay(async ({ h, relay, calls }) => {
      const ids = Array.from({ length: 130 }, (_, i) => Buffer.alloc(32, i + 1));
      await relay.onTxInv(peerA, ids);
      assert.equal(calls.requests[0]!.txids.length, 100);
      assert.equal(calls.penalties.length, 0);
      // Another peer has its own bucket.
      await relay.onTxInv(peerB, [Buffer.alloc(32, 200)]);
      assert.equal(calls.requests[1]!.txids.length, 1);
      // One second later, 50 more tokens.
      h.clock.advance(1_000);
      const more = Array.from({ length: 60 }, (_, i) => Buffer.alloc(32, 140 + i));
      await relay.onTxInv(peerA, more);
      assert.equal(calls.requests[2]!.txids.length, 50);
      assert.equal(calls.penalties.length, 0);
    }));

  it("submitLocal accepts and announces to every peer; a failed fetch is survived", () =>
    withRelay(async ({ mp, coins, relay, calls }) => {
      const tx = pay(coins[0]!, BOB, 1_000n);
      relay.submitLocal(tx);
      assert.ok(mp.has(txid(tx)), "mp.has(txid(tx))");
      assert.deepEqual(calls.broadcasts, [{ txids: [hexId(tx)], except: undefined }]);
      const e = rejection(() => relay.submitLocal(pay(coins[0]!, CAROL, 2_000n)));
      assert.equal(e.code, "CONFLICT");

      const failing = new TxRelay(
        {},
        {
          mempool: mp,
          network: {
            broadcastTxInv: () => undefined,
            requestTxs: () => Promise.reject(new Error("peer went away")),
            misbehaving: () => assert.fail("no penalty for a failed fetch"),
          },
          clock: new ManualClock(),
          logger: nullLogger,
        },
      );
      await failing.onTxInv(peerA, [Buffer.alloc(32, 9)]);
      assert.equal(failing.stats().inFlight, 0);
    }));
});
