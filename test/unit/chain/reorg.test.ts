/**
 * Fork choice and reorganisation: a node that switches branches ends in exactly the state of a
 * node that only ever saw the winning branch; ties and fallback rounds resolve the same way on
 * every node; the depth limit holds; and an invalid block inside a better branch never leaves a
 * mixed state.
 *
 * The schedule does not depend on the parent, so two branches name the same producer for the same
 * (height, round): competing branches here use different rounds, as a partition's two sides do
 * (each producer is on one side). Two blocks for one slot would be equivocation.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import type { ProcessResult } from "../../../src/chain/chain.js";
import { StoreError } from "../../../src/chain/chainStore.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { txid } from "../../../src/primitives/tx.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import { sha256 } from "../../../src/crypto/hash.js";
import {
  ChainHarness,
  COIN,
  cloneBlock,
  makeTransfer,
  reseal,
  testGenesis,
  testKey,
  testKeys,
} from "../../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const alice = testKey("alice", 0);
const bob = testKey("bob", 0);
const carol = testKey("carol", 0);
const ALICE = pubkeyHash(alice.publicKey);
const BOB = pubkeyHash(bob.publicKey);
const CAROL = pubkeyHash(carol.publicKey);
const genesis = testGenesis({ masternodes: mns, funded: [{ key: alice, amount: 50n * COIN, count: 4 }] });

const hex = (b: Block): string => blockHash(b.header).toString("hex");

/** Runs `fn` with `n` fresh nodes on the same genesis, closing them afterwards. */
async function withNodes(
  n: number,
  fn: (...nodes: ChainHarness[]) => void | Promise<void>,
  opts: { maxReorgDepth?: number } = {},
): Promise<void> {
  const nodes = Array.from({ length: n }, () => new ChainHarness(genesis, mns, undefined, opts));
  try {
    await fn(...nodes);
  } finally {
    for (const h of nodes) await h.close();
  }
}

function feedAll(h: ChainHarness, blocks: Block[]): ProcessResult[] {
  return blocks.map((b) => h.feed(b));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an exception");
}

test("a node that reorganises to a heavier branch ends exactly where a node that only saw that branch is", () =>
  withNodes(2, (n1, n2) => {
    const coins = n1.genesisCoins(alice);
    // Common blocks 1 and 2, seen by both.
    const c1 = n1.mine();
    const c2 = n1.mine({
      txs: [makeTransfer(alice, [coins[3]!.outpoint], [{ to: BOB, amount: 50n * COIN }])],
    });
    feedAll(n2, [c1, c2]);

    // Branch A (heights 3..6) on node 1 only, from fallback rounds (the round-0 producers are on
    // the other side).
    const txA = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 49n * COIN }]);
    const A3 = n1.mine({ txs: [txA], fees: COIN, round: 1 });
    const A4 = n1.mine({
      txs: [makeTransfer(bob, [{ txid: txid(txA), index: 0 }], [{ to: ALICE, amount: 48n * COIN }])],
      fees: COIN,
      round: 1,
    });
    const A5 = n1.mine({
      txs: [makeTransfer(alice, [coins[1]!.outpoint], [{ to: BOB, amount: 50n * COIN }])],
      round: 1,
    });
    const A6 = n1.mine({ round: 1 });

    // Branch B (heights 3..8) on node 2: double-spends A's coin, chains spends across and inside
    // blocks, and spends a now-mature coinbase from the common part.
    const txB = makeTransfer(alice, [coins[0]!.outpoint], [{ to: CAROL, amount: 49n * COIN }]);
    const B3 = n2.mine({ txs: [txB], fees: COIN });
    const txB2 = makeTransfer(carol, [{ txid: txid(txB), index: 0 }], [{ to: ALICE, amount: 48n * COIN }]);
    const txB3 = makeTransfer(alice, [{ txid: txid(txB2), index: 0 }], [{ to: CAROL, amount: 47n * COIN }]);
    const B4 = n2.mine({ txs: [txB2, txB3], fees: 2n * COIN });
    const B5 = n2.mine();
    const B6 = n2.mine({
      txs: [makeTransfer(alice, [coins[2]!.outpoint], [{ to: CAROL, amount: 50n * COIN }])],
    });
    const cb1 = c1.txs[0]!;
    const mnOwner = mns.find((k) => pubkeyHash(k.publicKey).equals(cb1.outputs[0]!.address))!;
    const B7 = n2.mine({
      txs: [
        makeTransfer(
          mnOwner,
          [{ txid: txid(cb1), index: 0 }],
          [{ to: CAROL, amount: cb1.outputs[0]!.amount }],
        ),
      ],
    });
    const B8 = n2.mine();
    const branchB = [B3, B4, B5, B6, B7, B8];

    const log: string[] = [];
    const reorgs: Array<{ depth: number; fork: string; oldTip: string; newTip: string }> = [];
    n1.chain.events.on("blockConnected", ({ block }) => log.push(`+${hex(block)}`));
    n1.chain.events.on("blockDisconnected", ({ block }) => log.push(`-${hex(block)}`));
    n1.chain.events.on("reorg", (r) =>
      reorgs.push({
        depth: r.depth,
        fork: r.fork.hash.toString("hex"),
        oldTip: r.oldTip.hash.toString("hex"),
        newTip: r.newTip.hash.toString("hex"),
      }),
    );

    const results = feedAll(n1, branchB);
    assert.equal(results[0]!.status, "side");
    const reorged = results.filter((r) => r.status === "reorged");
    assert.equal(reorged.length, 1, `statuses: ${results.map((r) => r.status).join(",")}`);
    const at = results.findIndex((r) => r.status === "reorged");
    // A's four round-1 blocks weigh as much as two round-0 blocks.
    assert.ok(
      at === 1 || at === 2,
      "the switch happens when B first beats A (at equal work on a smaller hash)",
    );
    assert.ok(results.slice(at + 1).every((r) => r.status === "connected"));

    assert.deepEqual(reorgs, [{ depth: 4, fork: hex(c2), oldTip: hex(A6), newTip: hex(branchB[at]!) }]);
    assert.deepEqual(log, [
      ...[A6, A5, A4, A3].map((b) => `-${hex(b)}`),
      ...branchB.map((b) => `+${hex(b)}`),
    ]);

    // Identical state: tip, UTXO stats (hash, count, total), registry root, every UTXO.
    assert.deepEqual(n1.snapshot(), n2.snapshot());
    assert.deepEqual(n1.chain.storage.getStats(), n1.chain.storage.computeStats());
    for (const [i, b] of branchB.entries())
      assert.equal(n1.chain.getHashAtHeight(3 + i)?.toString("hex"), hex(b));
    for (const a of [A3, A4, A5, A6]) {
      const e = n1.chain.getIndex(blockHash(a.header))!;
      assert.ok(e, "the old branch stays stored");
      assert.equal(n1.chain.isMain(e), false);
    }
    assert.equal(n1.chain.storage.getUtxo({ txid: txid(txA), index: 0 }), undefined);
    assert.equal(n1.chain.storage.getUtxo(coins[1]!.outpoint)?.amount, 50n * COIN, "A5's spend was undone");
  }));

test("equal-work branches resolve to the smaller tip hash whatever the arrival order", () =>
  withNodes(3, (builder, p, q) => {
    const g = builder.chain.tip;
    const X1 = builder.mine();
    const X2 = builder.mine({ round: 1 });
    // Same heights, the rounds swapped (so other producers): equal work, different hashes.
    const Y1 = builder.makeBlock({ parentHash: g.hash, round: 1 });
    builder.feed(Y1);
    const Y2 = builder.makeBlock({ parentHash: blockHash(Y1.header) });
    builder.feed(Y2);
    assert.equal(
      builder.chain.getIndex(blockHash(X2.header))!.work,
      builder.chain.getIndex(blockHash(Y2.header))!.work,
    );
    const expected = Buffer.compare(blockHash(X2.header), blockHash(Y2.header)) < 0 ? hex(X2) : hex(Y2);

    feedAll(p, [X1, X2, Y1, Y2]);
    feedAll(q, [Y1, Y2, X1, X2]);
    assert.equal(p.chain.tip.hash.toString("hex"), expected);
    assert.equal(q.chain.tip.hash.toString("hex"), expected);
    assert.equal(builder.chain.tip.hash.toString("hex"), expected);
    assert.deepEqual(p.snapshot(), q.snapshot());
  }));

test("a branch of fallback-round blocks loses to an equal-length branch of round-0 blocks", () =>
  withNodes(3, (builder, p, q) => {
    const g = builder.chain.tip;
    const R1 = builder.mine({ round: 1 });
    const R2 = builder.mine({ round: 1 });
    const Z1 = builder.makeBlock({ parentHash: g.hash });
    builder.feed(Z1);
    const Z2 = builder.makeBlock({ parentHash: blockHash(Z1.header) });
    builder.feed(Z2);
    const rWork = builder.chain.getIndex(blockHash(R2.header))!.work;
    const zWork = builder.chain.getIndex(blockHash(Z2.header))!.work;
    assert.ok(zWork > rWork);

    const pr = feedAll(p, [R1, R2, Z1, Z2]);
    assert.deepEqual(
      pr.slice(0, 2).map((r) => r.status),
      ["connected", "connected"],
    );
    assert.ok(pr.some((r) => r.status === "reorged"));
    const qr = feedAll(q, [Z1, Z2, R1, R2]);
    assert.deepEqual(
      qr.map((r) => r.status),
      ["connected", "connected", "side", "side"],
    );
    for (const h of [p, q, builder]) assert.equal(h.chain.tip.hash.toString("hex"), hex(Z2));
    assert.deepEqual(p.snapshot(), q.snapshot());
  }));

test("a side branch forking below tip − maxReorgDepth is not stored; one at the limit reorganises", () =>
  withNodes(
    2,
    (builder, node) => {
      assert.equal(node.chain.params.reorg.maxDepth, 2);
      const M = [builder.mine(), builder.mine(), builder.mine(), builder.mine()];
      feedAll(node, M);
      // S forks after M1 (round 1, so other producers than M's): switching to it would
      // disconnect M4, M3, M2 (depth 3). Its fork is below tip − 2, so it can never win: refused.
      // (Built off-chain: the builder refuses to store them too.)
      const S: Block[] = [];
      let prev = M[0]!;
      for (let i = 0; i < 7; i++) {
        prev = builder.makeBlockOn(prev, { round: 1 });
        S.push(prev);
      }
      const before = node.snapshot();
      const results = feedAll(node, S);
      assert.equal(results[0]!.status, "side-refused");
      assert.equal(results[0]!.status === "side-refused" && results[0]!.reason, "too-deep");
      assert.ok(
        results.slice(1).every((r) => r.status === "orphan"),
        results.map((r) => r.status).join(","),
      );
      assert.deepEqual(node.snapshot(), before, "the tip and state are unchanged");
      assert.ok(!node.chain.storage.hasBlock(blockHash(S[0]!.header)), "the branch is not stored");

      // T forks after M2 (round 2): depth 2, exactly the limit. 7 blocks of a third of the work
      // each outweigh M3 and M4.
      const T: Block[] = [];
      let parent = blockHash(M[1]!.header);
      for (let i = 0; i < 7; i++) {
        const b = builder.makeBlock({ parentHash: parent, round: 2 });
        builder.feed(b);
        T.push(b);
        parent = blockHash(b.header);
      }
      const tr = feedAll(node, T);
      const r = tr.find((x) => x.status === "reorged");
      assert.ok(r && r.status === "reorged" && r.depth === 2, tr.map((x) => x.status).join(","));
      assert.equal(node.chain.tip.hash.toString("hex"), hex(T[6]!));
      assert.deepEqual(node.chain.storage.getStats(), node.chain.storage.computeStats());
    },
    { maxReorgDepth: 2 },
  ));

/**
 * Common blocks 1..2 on both nodes; n1 extends them with `aLen` blocks of branch A, all round 1;
 * n2 builds branch B at round 0 (so no slot is shared with A): blocks are valid unless listed in
 * `invalidAt` (they then claim 1 unit too much in the coinbase, which only connectTransactions
 * can see), and are round 2 where listed in `round2`.
 */
function buildBranches(
  n1: ChainHarness,
  n2: ChainHarness,
  aLen: number,
  bLen: number,
  opts: { invalidAt?: number[]; round2?: number[] } = {},
): { common: Block[]; A: Block[]; B: Block[] } {
  const common = [n1.mine(), n1.mine()];
  feedAll(n2, common);
  const A = Array.from({ length: aLen }, () => n1.mine({ round: 1 }));
  const B: Block[] = [];
  let invalidSeen = false;
  for (let i = 0; i < bLen; i++) {
    const round = opts.round2?.includes(i) ? 2 : 0;
    const bad = opts.invalidAt?.includes(i) ?? false;
    let b: Block;
    if (!invalidSeen) b = n2.makeBlock({ round, fees: bad ? 1n : 0n });
    else b = n2.makeBlockOn(B[i - 1]!, { round });
    if (!bad && !invalidSeen) n2.feed(b);
    invalidSeen ||= bad;
    B.push(b);
  }
  return { common, A, B };
}

test("a better branch with an invalid block in the middle is rolled back atomically; the block is then known-invalid", () =>
  withNodes(2, (n1, n2) => {
    // Fork-relative work: A = 5 round-1 blocks (2.5); B3 is round 2 (0.33), so B only becomes
    // better at its 4th block (3.33), with no tie before. B4 is invalid.
    const { A, B } = buildBranches(n1, n2, 5, 4, { invalidAt: [1], round2: [0] });
    const [B3, B4, B5, B6] = B as [Block, Block, Block, Block];
    const before = n1.snapshot();
    const events: string[] = [];
    for (const ev of ["blockConnected", "blockDisconnected", "reorg", "tip"] as const) {
      n1.chain.events.on(ev, () => events.push(ev));
    }
    assert.deepEqual(
      feedAll(n1, [B3, B4, B5]).map((r) => r.status),
      ["side", "side", "side"],
    );
    const err = thrown(() => n1.feed(B6));
    assert.ok(err instanceof BlockError, String(err));
    assert.equal(err.code, "BAD_COINBASE_AMOUNT");

    assert.deepEqual(n1.snapshot(), before, "no mixed state: tip, stats, registry and UTXOs as before");
    assert.equal(n1.chain.tip.hash.toString("hex"), hex(A[4]!));
    for (const [i, a] of A.entries()) assert.equal(n1.chain.getHashAtHeight(3 + i)?.toString("hex"), hex(a));
    assert.deepEqual(n1.chain.storage.getStats(), n1.chain.storage.computeStats());
    assert.deepEqual(events, [], "a rolled-back reorg fires no events");

    assert.equal(n1.chain.isKnownInvalid(blockHash(B3.header)), false, "the valid part is not blamed");
    for (const b of [B4, B5, B6]) assert.ok(n1.chain.isKnownInvalid(blockHash(b.header)));
    // Rejected fast: the remembered verdict is thrown again without validation.
    assert.equal(
      thrown(() => n1.chain.processBlock(B4)),
      err,
    );
    const B7 = n2.makeBlockOn(B6);
    const childErr = thrown(() => n1.feed(B7));
    assert.ok(childErr instanceof BlockError && childErr.code === "BAD_PREV_HASH");

    // The node goes on with its branch.
    n1.mine();
    assert.equal(n1.chain.height, 8);
    assert.deepEqual(n1.chain.storage.getStats(), n1.chain.storage.computeStats());
  }));

test("reorgTo stops at the best valid prefix of a branch when that prefix beats the tip", () =>
  withNodes(3, (n1, n2, ref) => {
    // A: heights 3..11 on n1 (9 round-1 blocks: 4.5). B: 3..6 (4.0) with B5 invalid, all stored
    // on n1 as side blocks.
    const { common, A, B } = buildBranches(n1, n2, 9, 4, { invalidAt: [2] });
    const [B3, B4, B5, B6] = B as [Block, Block, Block, Block];
    assert.ok(feedAll(n1, B).every((r) => r.status === "side"));
    // Walk n1 back to A3 (height 3), so the valid prefix B3..B4 is better than the tip.
    for (let i = 0; i < 8; i++) n1.chain.disconnectTip();
    assert.equal(n1.chain.tip.hash.toString("hex"), hex(A[0]!));

    const r = n1.chain.reorgTo(n1.chain.getIndex(blockHash(B6.header))!);
    assert.equal(r.status, "reorged");
    assert.equal(r.hash.toString("hex"), hex(B4));
    assert.ok(n1.chain.isKnownInvalid(blockHash(B5.header)));
    assert.ok(n1.chain.isKnownInvalid(blockHash(B6.header)));

    // Exactly the state of a node that only saw the common blocks, B3 and B4.
    feedAll(ref, [...common, B3, B4]);
    assert.deepEqual(n1.snapshot(), ref.snapshot());
  }));

test("a side block with a tampered input signature is not stored, so the genuine block still wins", () =>
  withNodes(2, (n1, n2) => {
    const coins = n1.genesisCoins(alice);
    const common = [n1.mine(), n1.mine()];
    feedAll(n2, common);
    n1.mine({ round: 1 });
    const tx = makeTransfer(alice, [coins[0]!.outpoint], [{ to: BOB, amount: 50n * COIN }]);
    const B3 = n2.mine({ txs: [tx] });
    const B4 = n2.mine();
    const tampered = cloneBlock(B3);
    tampered.txs[1]!.inputs[0]!.signature = bob.sign(Buffer.from("not this tx"));
    assert.equal(hex(tampered), hex(B3), "signatures are not hashed: same block hash");

    const err = thrown(() => n1.feed(tampered));
    assert.ok(err instanceof BlockError && err.code === "BAD_TX_SIGNATURE", String(err));
    assert.equal(n1.chain.storage.hasBlock(blockHash(B3.header)), false);
    assert.equal(n1.chain.isKnownInvalid(blockHash(B3.header)), false);

    // B3 (round 0) outweighs A3 (round 1): the genuine block wins at once; B4 extends it.
    const r3 = n1.feed(B3).status;
    const r4 = n1.feed(B4).status;
    assert.deepEqual([r3, r4], ["reorged", "connected"]);
    assert.deepEqual(n1.snapshot(), n2.snapshot());
  }));

test("a side block with a wrong registry root is rejected before it is stored; its child gets a BlockError", () =>
  withNodes(2, (n1, n2) => {
    const common = [n1.mine(), n1.mine()];
    feedAll(n2, common);
    for (let i = 0; i < 3; i++) n1.mine({ round: 1 });
    const good = n2.makeBlock();
    const bad = cloneBlock(good);
    bad.header.mnRoot = sha256(Buffer.from("not the registry"));
    reseal(bad, n2.keyFor(bad.header.producer));
    const err = thrown(() => n1.feed(bad));
    assert.ok(err instanceof BlockError && err.code === "BAD_MN_ROOT", String(err));
    assert.equal(n1.chain.storage.hasBlock(blockHash(bad.header)), false);
    const child = n2.makeBlockOn(bad);
    const childErr = thrown(() => n1.feed(child));
    assert.ok(!(childErr instanceof StoreError), "input from a peer must never surface as a storage error");
    assert.ok(childErr instanceof BlockError && childErr.code === "BAD_PREV_HASH", String(childErr));
    assert.equal(n1.feed(good).status, "side");
  }));
