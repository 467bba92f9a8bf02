/**
 * Certificates on chain (docs/CONSENSUS.md, "Certificates on chain"): a producer puts the last
 * final block's certificate into its next block; a node that only replays blocks (a fresh node,
 * `timed verify`) learns the same final block from the chain alone, with no vote or peer; and
 * every way to forge or misplace a certificate is refused with BAD_CERTIFICATE (rules C1–C6).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockError } from "../../../src/primitives/errors.js";
import { signVote, type Certificate } from "../../../src/consensus/finality.js";
import { decodeFinalityTx, encodeCertificate, finalityTx } from "../../../src/consensus/finalityTx.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { TxKind, type Tx } from "../../../src/primitives/tx.js";
import { verifyChain } from "../../../src/node/verify.js";
import { ChainHarness, harnessesClosedAfter, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";
import { finaliseBlock } from "../../helpers/finality.js";
import { ERA_BLOCKS, registryVoters } from "../../../src/consensus/committee.js";

const mns = testKeys("cert-chain-mn", 4);
const genesis = testGenesis({ masternodes: mns });

const harness = harnessesClosedAfter(genesis, mns);

const finalise = (h: ChainHarness, b: Block, voters = mns): void => finaliseBlock(h, b, voters);

/** A certificate of block `b`'s second link signed by `voters` (not counted anywhere). */
function certOf(h: ChainHarness, b: Block, voters = mns): Certificate {
  const hash = blockHash(b.header);
  const source = { epoch: 2 * b.header.height, hash };
  const target = { epoch: source.epoch + 1, hash };
  const votes = voters.map((k) => signVote(k, h.chain.genesisHash, source, target));
  votes.sort((x, y) => Buffer.compare(x.voter, y.voter));
  return { era: 0, source, target, votes: votes.map((v) => ({ voter: v.voter, signature: v.signature })) };
}

function rawFinalityTx(cert: Certificate): Tx {
  return { version: 1, kind: TxKind.Finality, inputs: [], outputs: [], payload: encodeCertificate(cert) };
}

/** The main chain of `h` from height 1, as processBlocks takes it. */
function mainBlocks(h: ChainHarness): Array<{ block: Block }> {
  return Array.from({ length: h.chain.height }, (_, i) => ({
    block: h.chain.getBlock(h.chain.getHashAtHeight(i + 1)!)!,
  }));
}

/** Counts the durable writes of the final checkpoint and the finalized events (their heights). */
function watchFinality(h: ChainHarness): { writes: number; finalized: number[] } {
  const seen = { writes: 0, finalized: [] as number[] };
  const store = h.chain.storage as unknown as { putFinality(x: Buffer): void };
  const put = store.putFinality.bind(store);
  store.putFinality = (x) => {
    seen.writes++;
    put(x);
  };
  h.chain.events.on("finalized", (e) => seen.finalized.push(e.checkpoint.epoch / 2));
  return seen;
}

/** The block on the tip carrying `txs`, processed; returns the error code, or null if connected. */
function offer(h: ChainHarness, txs: Tx[]): string | null {
  const tip = h.chain.getBlock(h.chain.tip.hash)!;
  const b = h.makeBlockOn(tip, { txs });
  try {
    const r = h.chain.processBlock(b);
    assert.equal(r.status, "connected");
    return null;
  } catch (e) {
    if (e instanceof BlockError) return e.code;
    throw e;
  }
}

describe("certificates on chain", () => {
  it("the next block carries the final block's certificate, and a node replaying the blocks finds the same final block", () => {
    const a = harness();
    const main = extend(a, 4);
    finalise(a, main[2]!);
    assert.equal(a.chain.finality.finalizedHeight, 3);
    const tx = a.chain.finality.pendingTx(a.chain.tip);
    assert.ok(tx, "a certificate is pending for the next block");
    assert.equal(offer(a, [tx]), null);
    assert.equal(a.chain.tip.certified, 3, "the branch has certified height 3");
    assert.equal(a.chain.finality.pendingTx(a.chain.tip), null, "nothing more to certify");
    // 3 of 4 equal weights is more than 2/3: the carried certificate is trimmed to the heaviest
    // voters that suffice.
    const carried = a.chain.getBlock(a.chain.tip.hash)!.txs.find((t) => t.kind === TxKind.Finality)!;
    assert.equal(carried.payload.length, 80 + 3 * 96);

    // A fresh node that never saw a vote: the blocks alone make block 3 final.
    const b = harness();
    for (let height = 1; height <= a.chain.height; height++)
      b.feed(a.chain.getBlock(a.chain.getHashAtHeight(height)!)!);
    assert.equal(b.chain.tip.height, 5);
    assert.equal(b.chain.finality.finalizedHeight, 3);
    assert.ok(b.chain.finality.finalized.hash.equals(blockHash(main[2]!.header)));
    // So a branch forking below block 3 is refused there too, whatever its work.
    const heavier = extend(b, 9, { parent: main[0]!, round: 1 });
    assert.equal(b.chain.tip.height, 5);
    assert.ok(!b.chain.tip.hash.equals(blockHash(heavier[heavier.length - 1]!.header)));
  });

  it("certificates carry finality across eras: each era's closing certificate goes on chain, and a replaying node follows", () => {
    const a = harness();
    // As a network does: each block is voted final, and the next block carries its certificate.
    for (let i = 0; i < 2 * ERA_BLOCKS + 8; i++) {
      const tx = a.chain.finality.pendingTx(a.chain.tip);
      assert.equal(offer(a, tx ? [tx] : []), null);
      finalise(a, a.chain.getBlock(a.chain.tip.hash)!);
    }
    const tracker = a.chain.finality.tracker;
    assert.equal(tracker.era, 2, `final at ${tracker.finalizedHeight}`);
    assert.equal(a.chain.finality.finalizedHeight, 2 * ERA_BLOCKS + 8);
    // Every era's certificates are of that era (C7), and the certified height climbs through
    // both anchors.
    const eras: number[] = [];
    for (let height = 1; height <= a.chain.height; height++) {
      const block = a.chain.getBlock(a.chain.getHashAtHeight(height)!)!;
      const tx = block.txs.find((t) => t.kind === TxKind.Finality);
      if (tx) eras.push(decodeFinalityTx(tx).era);
    }
    assert.deepEqual([...new Set(eras)], [0, 1, 2]);
    assert.equal(a.chain.tip.certified, 2 * ERA_BLOCKS + 7);
    const b = harness();
    for (let height = 1; height <= a.chain.height; height++)
      b.feed(a.chain.getBlock(a.chain.getHashAtHeight(height)!)!);
    assert.equal(b.chain.finality.finalizedHeight, 2 * ERA_BLOCKS + 7);
    assert.equal(b.chain.finality.tracker.era, 2);
    // The same blocks in one batch, as a sync or timed verify takes them. Taking only the batch's
    // last certificate (era 2's, while the node is in era 0) left the node at the genesis.
    const c = harness();
    c.clock.set(a.clock.now());
    // And once per batch, not once per era: each durable write of the final checkpoint cost the
    // 100,000-block sync of ibd_100k a commit, which halved its rate.
    const seen = watchFinality(c);
    assert.equal(c.chain.processBlocks(mainBlocks(a)).error, undefined);
    assert.equal(c.chain.finality.finalizedHeight, 2 * ERA_BLOCKS + 7);
    assert.equal(c.chain.finality.tracker.era, 2);
    assert.equal(seen.writes, 1);
    assert.deepEqual(seen.finalized, [2 * ERA_BLOCKS + 7]);
  });

  it("a branch still in the era before gets that era's closing certificate first, also after a restart", async () => {
    const a = harness();
    // Blocks up to ERA_BLOCKS + 2 become final by votes alone; no block carries a certificate.
    for (let i = 0; i < ERA_BLOCKS + 2; i++) {
      assert.equal(offer(a, []), null);
      finalise(a, a.chain.getBlock(a.chain.tip.hash)!);
    }
    assert.equal(a.chain.finality.tracker.era, 1);
    // The tip's branch is certified to 0 (era 0): era 1's certificate would break C7, so the
    // producer carries the certificate that closed era 0 (of block ERA_BLOCKS), then era 1's.
    await a.chain.close();
    const h = new ChainHarness(genesis, mns, a.dir);
    h.clock.set(a.clock.now());
    try {
      const first = h.chain.finality.pendingTx(h.chain.tip);
      assert.ok(first, "the closing certificate survives the restart");
      assert.equal(decodeFinalityTx(first).era, 0);
      assert.equal(offer(h, [first]), null);
      assert.equal(h.chain.tip.certified, ERA_BLOCKS);
      const second = h.chain.finality.pendingTx(h.chain.tip);
      assert.ok(second);
      assert.equal(decodeFinalityTx(second).era, 1);
      assert.equal(offer(h, [second]), null);
      assert.equal(h.chain.tip.certified, ERA_BLOCKS + 2);
    } finally {
      await h.chain.close();
    }
  });

  it("a batch carrying many certificates takes only its last: one final-checkpoint write and one finalized event per batch", () => {
    const a = harness();
    extend(a, 1);
    // Blocks 2..9 each carry the certificate of their parent.
    for (let i = 0; i < 8; i++) {
      const parent = a.chain.getBlock(a.chain.tip.hash)!;
      assert.equal(offer(a, [finalityTx(certOf(a, parent), registryVoters(a.chain.getRegistry()))!]), null);
    }
    assert.equal(a.chain.tip.certified, 8);
    const b = harness();
    b.clock.set(a.clock.now());
    const seen = watchFinality(b);
    const r = b.chain.processBlocks(mainBlocks(a));
    assert.equal(r.error, undefined);
    assert.equal(
      b.chain.finality.finalizedHeight,
      8,
      "the last certificate's block is final, and so its ancestors",
    );
    // Before, each certificate wrote the final checkpoint with its own durable commit after the
    // batch's: 8 commits here, a commit per block in a sync.
    assert.equal(seen.writes, 1);
    assert.deepEqual(seen.finalized, [8]);
  });

  it("timed verify replays the certificates and reports the certified height", async () => {
    const a = harness();
    const main = extend(a, 3);
    finalise(a, main[1]!);
    assert.equal(offer(a, [a.chain.finality.pendingTx(a.chain.tip)!]), null);
    extend(a, 2);
    await a.chain.close();
    const r = await verifyChain(a.dir, genesis);
    assert.equal(r.ok, true, r.problem);
    assert.equal(r.finalized, 2);
  });

  it("forged and misplaced certificates are invalid blocks (C1–C6)", () => {
    const a = harness();
    const main = extend(a, 4);
    const good = certOf(a, main[1]!);
    const registry = a.chain.getRegistry();

    // C6: a signature that does not verify.
    const forged = structuredClone(good);
    forged.votes[0]!.signature = Buffer.from(forged.votes[0]!.signature);
    forged.votes[0]!.signature[5]! ^= 1;
    assert.equal(offer(a, [rawFinalityTx(forged)]), "BAD_CERTIFICATE");
    // C6: 2 of 4 is not more than 2/3.
    assert.equal(offer(a, [rawFinalityTx(certOf(a, main[1]!, mns.slice(0, 2)))]), "BAD_CERTIFICATE");
    // C6: a voter that is not registered.
    const stranger = testKeys("cert-chain-stranger", 1);
    assert.equal(
      offer(a, [rawFinalityTx(certOf(a, main[1]!, [...mns.slice(0, 2), ...stranger]))]),
      "BAD_CERTIFICATE",
    );
    // C2: not a second link.
    const firstLink = { ...good, target: { ...good.target, epoch: good.source.epoch + 2 } };
    assert.equal(offer(a, [rawFinalityTx(firstLink)]), "BAD_CERTIFICATE");
    // C2: voters out of order.
    assert.equal(offer(a, [rawFinalityTx({ ...good, votes: [...good.votes].reverse() })]), "BAD_CERTIFICATE");
    // C4: a block of another branch at that height.
    const side = extend(a, 1, { parent: main[0]!, round: 1 });
    assert.equal(offer(a, [rawFinalityTx(certOf(a, side[0]!))]), "BAD_CERTIFICATE");
    // C3: two certificates in one block.
    assert.equal(
      offer(a, [
        finalityTx(good, registryVoters(registry))!,
        finalityTx(certOf(a, main[2]!), registryVoters(registry))!,
      ]),
      "TOO_MANY_CERTIFICATES",
    );
    // C1: inputs or outputs.
    const withOutput = {
      ...finalityTx(good, registryVoters(registry))!,
      outputs: [{ amount: 1n, address: Buffer.alloc(20) }],
    };
    assert.equal(offer(a, [withOutput]), "BAD_CERTIFICATE");

    // The genuine one connects; C5: the same height again does not.
    assert.equal(offer(a, [finalityTx(good, registryVoters(registry))!]), null);
    assert.equal(a.chain.finality.finalizedHeight, 2);
    assert.equal(offer(a, [finalityTx(good, registryVoters(registry))!]), "BAD_CERTIFICATE");
    // A higher one does.
    assert.equal(offer(a, [finalityTx(certOf(a, main[3]!), registryVoters(registry))!]), null);
    assert.equal(a.chain.finality.finalizedHeight, 4);
  });

  it("a producer carries no certificate that could not be a supermajority (it would make its own block invalid)", () => {
    const a = harness();
    const main = extend(a, 2);
    const short = certOf(a, main[1]!, mns.slice(0, 2)); // 2 of 4: not more than 2/3
    assert.equal(finalityTx(short, registryVoters(a.chain.getRegistry())), null);
    assert.ok(finalityTx(certOf(a, main[1]!), registryVoters(a.chain.getRegistry())));
  });

  it("a side block carrying a bad certificate is not stored", () => {
    const a = harness();
    const main = extend(a, 3);
    const bad = certOf(a, main[1]!, mns.slice(0, 2));
    const side = a.makeBlockOn(main[2]!, { txs: [rawFinalityTx(bad)] });
    extend(a, 1);
    assert.throws(
      () => a.chain.processBlock(side),
      (e: unknown) => e instanceof BlockError && e.code === "BAD_CERTIFICATE",
    );
    assert.equal(a.chain.getIndex(blockHash(side.header)), undefined);
  });
});
