import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { encodeTx, txid, type Tx } from "../../src/primitives/tx.js";
import { pubkeyHash } from "../../src/crypto/address.js";
import { makeTransfer } from "../helpers/chainFixture.js";
import { Devnet, cleanupAll, sleep, waitFor, type NodeHandle } from "./helpers/nodes.js";

interface Unspent {
  txid: string;
  vout: number;
  address: string;
  amount: string;
  confirmations: number;
  spendable: boolean;
}

interface RawTx {
  in_mempool: boolean;
  confirmations?: number;
  blockhash?: string;
}

/** getrawtransaction on one node, or null when that node does not know the txid. */
async function lookup(n: NodeHandle, id: string): Promise<RawTx | null> {
  try {
    return await n.rpc.call<RawTx>("getrawtransaction", [id, true]);
  } catch {
    return null;
  }
}

async function rpcError(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: number; message: string };
  }
  throw new Error("expected an RPC error");
}

void describe("transactions across real nodes", () => {
  let net: Devnet | undefined;
  before(async () => {
    // Node 0 produces; nodes 1 and 2 are full nodes. Devnet coinbase outputs mature after 5 blocks.
    net = await Devnet.create({
      name: "txs",
      blockTime: 0.5,
      nodes: [
        { host: "127.0.110.1", masternode: true, produce: true },
        { host: "127.0.110.2", bootstrap: [0] },
        { host: "127.0.110.3", bootstrap: [0, 1] },
      ],
    });
    await waitFor(
      "mature rewards on the producer",
      async () =>
        (await net!.node(0).rpc.call<Unspent[]>("listunspent")).filter((u) => u.spendable).length >= 3,
      { timeoutMs: 30_000 },
    );
  });
  after(() => cleanupAll(net));

  const nodes = (): NodeHandle[] => [0, 1, 2].map((i) => net!.node(i));

  /** Waits until every node reports the same UTXO-set hash at the same tip. */
  async function sameStateEverywhere(): Promise<string> {
    let hash = "";
    await waitFor(
      "the same tip and UTXO set on every node",
      async () => {
        const infos = await Promise.all(
          nodes().map((n) => n.rpc.call<{ bestblock: string; hash_serialized: string }>("gettxoutsetinfo")),
        );
        hash = infos[0]!.hash_serialized;
        return infos.every((i) => i.bestblock === infos[0]!.bestblock && i.hash_serialized === hash);
      },
      { timeoutMs: 20_000 },
    );
    return hash;
  }

  void it("a coin sent from the masternode's reward address is relayed, mined, and seen the same on every node", async () => {
    const [producer, , receiver] = nodes() as [NodeHandle, NodeHandle, NodeHandle];
    const address = await receiver.rpc.call<string>("getnewaddress");
    const id = await producer.rpc.call<string>("sendtoaddress", [address, "12.5"]);
    // Relayed: the other nodes hold it in their mempools (or already in a block).
    await waitFor(
      "the transaction reaches every node",
      async () => (await Promise.all(nodes().map((n) => lookup(n, id)))).every((r) => r !== null),
      { timeoutMs: 10_000 },
    );
    await waitFor(
      "the transaction is mined on every node",
      async () =>
        (await Promise.all(nodes().map((n) => lookup(n, id)))).every((r) => (r?.confirmations ?? 0) >= 1),
      { timeoutMs: 15_000 },
    );
    await sameStateEverywhere();
    const blocks = new Set((await Promise.all(nodes().map((n) => lookup(n, id)))).map((r) => r!.blockhash));
    assert.equal(blocks.size, 1, "every node has it in the same block");
    assert.equal(await receiver.rpc.call<string>("getbalance"), "12.50000000");
  });

  void it("a double spend sent to two nodes at once: exactly one spend is confirmed, the same one everywhere", async () => {
    const [producer, a, b] = nodes() as [NodeHandle, NodeHandle, NodeHandle];
    const key = producer.operatorKey!;
    const coin = (await producer.rpc.call<Unspent[]>("listunspent")).find((u) => u.spendable)!;
    const outpoint = { txid: Buffer.from(coin.txid, "hex"), index: coin.vout };
    const units = BigInt(coin.amount.replace(".", ""));
    const toA = pubkeyHash(Buffer.alloc(32, 1));
    const toB = pubkeyHash(Buffer.alloc(32, 2));
    const spendA: Tx = makeTransfer(key, [outpoint], [{ to: toA, amount: units - 10_000n }]);
    const spendB: Tx = makeTransfer(key, [outpoint], [{ to: toB, amount: units - 20_000n }]);
    const idA = txid(spendA).toString("hex");
    const idB = txid(spendB).toString("hex");
    const sent = await Promise.allSettled([
      a.rpc.call<string>("sendrawtransaction", [encodeTx(spendA).toString("hex")]),
      b.rpc.call<string>("sendrawtransaction", [encodeTx(spendB).toString("hex")]),
    ]);
    assert.ok(
      sent.some((s) => s.status === "fulfilled"),
      "at least one node accepted its spend",
    );
    await waitFor(
      "one of the two spends is mined on every node",
      async () => {
        const seen = await Promise.all(
          nodes().map(async (n) => [await lookup(n, idA), await lookup(n, idB)]),
        );
        return seen.every(([ra, rb]) => (ra?.confirmations ?? 0) >= 1 || (rb?.confirmations ?? 0) >= 1);
      },
      { timeoutMs: 20_000 },
    );
    await sameStateEverywhere();
    const results = await Promise.all(
      nodes().map(async (n) => [await lookup(n, idA), await lookup(n, idB)] as const),
    );
    const winners = new Set<string>();
    for (const [ra, rb] of results) {
      const aMined = (ra?.confirmations ?? 0) >= 1;
      const bMined = (rb?.confirmations ?? 0) >= 1;
      assert.ok(aMined !== bMined, "exactly one of the two spends is confirmed on each node");
      winners.add(aMined ? idA : idB);
      // The loser is gone from every mempool: it conflicts with the chain.
      assert.equal(aMined ? rb : ra, null, "the losing spend is nowhere");
    }
    assert.equal(winners.size, 1, "every node confirmed the same spend");
  });

  void it("an invalid transaction is refused at the RPC with its reason and never relayed", async () => {
    const [producer, a, b] = nodes() as [NodeHandle, NodeHandle, NodeHandle];
    const key = producer.operatorKey!;
    const coin = (await producer.rpc.call<Unspent[]>("listunspent")).find((u) => u.spendable)!;
    const outpoint = { txid: Buffer.from(coin.txid, "hex"), index: coin.vout };
    const units = BigInt(coin.amount.replace(".", ""));
    const bad = makeTransfer(
      key,
      [outpoint],
      [{ to: pubkeyHash(Buffer.alloc(32, 3)), amount: units - 10_000n }],
    );
    bad.inputs[0]!.signature = Buffer.alloc(64, 9);
    const e1 = await rpcError(a.rpc.call("sendrawtransaction", [encodeTx(bad).toString("hex")]));
    assert.equal(e1.code, -26);
    assert.match(e1.message, /signature/i);
    const over = makeTransfer(key, [outpoint], [{ to: pubkeyHash(Buffer.alloc(32, 4)), amount: units + 1n }]);
    const e2 = await rpcError(a.rpc.call("sendrawtransaction", [encodeTx(over).toString("hex")]));
    assert.equal(e2.code, -26);
    assert.match(e2.message, /exceed/);
    const e3 = await rpcError(a.rpc.call("sendrawtransaction", ["zz-not-hex"]));
    assert.equal(e3.code, -22);
    // Give relay time to happen if it wrongly would, then check no node has either.
    await sleep(1_500);
    for (const n of [a, b, producer]) {
      assert.equal(await lookup(n, txid(bad).toString("hex")), null, "the bad-signature spend is nowhere");
      assert.equal(await lookup(n, txid(over).toString("hex")), null, "the overspend is nowhere");
    }
  });
});
