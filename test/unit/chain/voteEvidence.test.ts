/**
 * Vote evidence (docs/CONSENSUS.md, "Vote evidence"): a masternode that signs two finality votes
 * breaking a rule (a double or a surround vote) is caught by the tracker, the proof is kept, the
 * next block carries it, and the offender leaves the registry, so the schedule and every later
 * voter set, with its key slashed and its collateral burned; disconnecting the block reverts it.
 * Every way to fake the proof is an invalid block (V1–V3).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findByOperator } from "../../../src/consensus/registry.js";
import { signVote, type Checkpoint, type FinalityVote } from "../../../src/consensus/finality.js";
import {
  encodeVoteOffence,
  makeVoteOffence,
  voteEvidenceTx,
  type VoteOffence,
} from "../../../src/consensus/voteEvidence.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { TxKind, type Tx } from "../../../src/primitives/tx.js";
import { ChainHarness, harnessesClosedAfter, testGenesis, testKeys } from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";

const mns = testKeys("vote-ev-mn", 4);
const genesis = testGenesis({ masternodes: mns });
const offender = mns[3]!;

const harness = harnessesClosedAfter(genesis, mns);

const first = (b: Block): Checkpoint => ({ epoch: 2 * b.header.height, hash: blockHash(b.header) });

/** The offender's two votes for one target epoch, on two blocks of one height: a double vote. */
function doubleVote(h: ChainHarness, x: Block, y: Block): [FinalityVote, FinalityVote] {
  const g = h.chain.genesisHash;
  const src = h.chain.finality.tracker.justifiedAncestor(blockHash(x.header));
  return [signVote(offender, g, src, first(x)), signVote(offender, g, src, first(y))];
}

/** Connects a block on the tip carrying `txs`; returns the error code, or null if connected. */
function offer(h: ChainHarness, txs: Tx[]): string | null {
  const tip = h.chain.getBlock(h.chain.tip.hash)!;
  try {
    const r = h.chain.processBlock(h.makeBlockOn(tip, { txs }));
    assert.equal(r.status, "connected");
    return null;
  } catch (e) {
    if (e instanceof BlockError) return e.code;
    throw e;
  }
}

const raw = (payload: Buffer, extra: Partial<Tx> = {}): Tx => ({
  version: 1,
  kind: TxKind.VoteEvidence,
  inputs: [],
  outputs: [],
  payload,
  ...extra,
});

describe("vote evidence", () => {
  it("a double vote is caught, mined, and removes the voter from the registry and the voter set; a disconnect reverts it", () => {
    const h = harness();
    const main = extend(h, 3);
    const side = extend(h, 1, { parent: main[1]!, round: 1 }); // another block at height 3
    const [v1, v2] = doubleVote(h, main[2]!, side[0]!);
    h.chain.finality.addVote(v1);
    const out = h.chain.finality.addVote(v2);
    assert.equal(out.evidence?.offence, "double");
    const [held] = h.chain.listVoteEvidence();
    assert.ok(held, "the proof is kept");
    assert.ok(held.evidence.a.voter.equals(offender.publicKey));
    assert.equal(held.slashedAt, null);

    const txs = h.chain.pendingEvidenceTxs(8);
    assert.equal(txs.length, 1);
    assert.equal(txs[0]!.kind, TxKind.VoteEvidence);
    assert.equal(offer(h, txs), null);
    const minedAt = h.chain.height;
    assert.equal(findByOperator(h.chain.getRegistry(), offender.publicKey), undefined, "out of the registry");
    assert.equal(h.chain.storage.slashedAt(offender.publicKey), minedAt);
    assert.equal(h.chain.listVoteEvidence()[0]!.slashedAt, minedAt);
    assert.equal(h.chain.pendingEvidenceTxs(8).length, 0, "nothing left to mine");
    // Out of the schedule: no later slot names it.
    const later = extend(h, 6);
    assert.ok(later.every((b) => !b.header.producer.equals(offender.publicKey)));
    // Out of the voter set: its vote on a link from a block after the removal does not count.
    const tipBlock = later[later.length - 1]!;
    const signed = signVote(offender, h.chain.genesisHash, first(later[0]!), first(tipBlock));
    assert.equal(h.chain.finality.addVote(signed).status, "not-voter");
    const honest = signVote(mns[0]!, h.chain.genesisHash, first(later[0]!), first(tipBlock));
    assert.notEqual(h.chain.finality.addVote(honest).status, "not-voter", "a registered voter's does");

    // Disconnecting the blocks back to before the evidence restores the entry.
    while (h.chain.height >= minedAt) h.chain.disconnectTip();
    assert.ok(findByOperator(h.chain.getRegistry(), offender.publicKey), "the registry is restored");
    assert.equal(h.chain.storage.slashedAt(offender.publicKey), undefined);
  });

  it("votes claiming a block of another branch final are weighed with the registry at the final block too, not only this branch's (sim seed 62)", () => {
    // Found by the simulator (finality-attack, seed 62): one side of a split mined vote evidence
    // and dropped the Byzantine voters from its registry, while the other side finalised a block
    // with their votes. Weighed only with the tip's registry the claim fell short, the heavier
    // side never fetched the final block's branch, and the network stayed split for good.
    const h = harness();
    extend(h, 3);
    const removed = mns.slice(2); // two voters removed here by evidence
    for (const k of removed) {
      const tip = h.chain.getBlock(h.chain.tip.hash)!;
      const x = extend(h, 1, { parent: tip })[0]!;
      const y = extend(h, 1, { parent: tip, round: 1 })[0]!;
      const src = h.chain.finality.tracker.justifiedAncestor(blockHash(x.header));
      const o = makeVoteOffence(
        signVote(k, h.chain.genesisHash, src, first(x)),
        signVote(k, h.chain.genesisHash, src, first(y)),
      );
      assert.equal(offer(h, [voteEvidenceTx(o)]), null);
    }
    assert.equal(h.chain.getRegistry().length, 2);
    // An unknown block at height 5 of another branch: second-link votes of 3 of the 4 voters of the
    // registry at our final block (the genesis here). Under this tip's registry that is 1 of 2.
    const unknown = { epoch: 10, hash: Buffer.alloc(32, 0xab) };
    for (const k of [mns[0]!, ...removed]) {
      const out = h.chain.finality.addVote(
        signVote(k, h.chain.genesisHash, unknown, { ...unknown, epoch: 11 }),
      );
      assert.equal(out.status, "pending");
    }
    assert.ok(h.chain.finality.claimedFinal().has(unknown.hash.toString("hex")));
  });

  it("a surround vote is evidence too, and a mined one connects on a second node that never saw the votes", () => {
    const a = harness();
    const main = extend(a, 5);
    const g = a.chain.genesisHash;
    // (1, 2) -> (5, 10) surrounds (2, 4) -> (3, 6): 2 < 4 and 6 < 10.
    const outer = signVote(offender, g, first(main[0]!), first(main[4]!));
    const inner = signVote(offender, g, first(main[1]!), first(main[2]!));
    const o: VoteOffence = makeVoteOffence(outer, inner);
    const b = harness();
    for (const blk of main) b.feed(blk);
    assert.equal(offer(a, [voteEvidenceTx(o)]), null);
    b.feed(a.chain.getBlock(a.chain.tip.hash)!);
    assert.equal(b.chain.height, 6);
    assert.equal(findByOperator(b.chain.getRegistry(), offender.publicKey), undefined);
  });

  it("fake proofs are invalid blocks (V1–V3), and evidence against an unregistered voter is refused (E4)", () => {
    const h = harness();
    const main = extend(h, 3);
    const side = extend(h, 1, { parent: main[1]!, round: 1 });
    const [v1, v2] = doubleVote(h, main[2]!, side[0]!);
    const good = makeVoteOffence(v1, v2);
    const enc = encodeVoteOffence(good);
    // V1: inputs or outputs; a payload that is not two votes.
    assert.equal(
      offer(h, [raw(enc, { outputs: [{ amount: 1n, address: Buffer.alloc(20) }] })]),
      "BAD_EVIDENCE",
    );
    assert.equal(offer(h, [raw(enc.subarray(0, 300))]), "BAD_EVIDENCE");
    // V2: out of canonical order; one vote twice; two voters; two votes that break no rule.
    assert.equal(offer(h, [raw(Buffer.concat([enc.subarray(168), enc.subarray(0, 168)]))]), "BAD_EVIDENCE");
    assert.equal(
      offer(h, [raw(Buffer.concat([enc.subarray(0, 168), enc.subarray(0, 168)]))]),
      "BAD_EVIDENCE",
    );
    const g = h.chain.genesisHash;
    const src = h.chain.finality.tracker.justifiedAncestor(blockHash(main[2]!.header));
    const other = signVote(mns[0]!, g, src, first(side[0]!));
    assert.equal(offer(h, [voteEvidenceTx(makeVoteOffence(v1, other))]), "BAD_EVIDENCE");
    const consecutive = signVote(offender, g, first(main[2]!), { ...first(main[2]!), epoch: 7 });
    assert.equal(offer(h, [voteEvidenceTx(makeVoteOffence(v1, consecutive))]), "BAD_EVIDENCE");
    // V3: a signature that does not verify (here: signed for another chain's genesis).
    const foreign = signVote(offender, Buffer.alloc(32, 9), src, first(side[0]!));
    assert.equal(offer(h, [voteEvidenceTx(makeVoteOffence(v1, foreign))]), "BAD_EVIDENCE");
    // E4: a voter that is not registered.
    const stranger = testKeys("vote-ev-stranger", 1)[0]!;
    const s1 = signVote(stranger, g, src, first(main[2]!));
    const s2 = signVote(stranger, g, src, first(side[0]!));
    assert.equal(offer(h, [voteEvidenceTx(makeVoteOffence(s1, s2))]), "EVIDENCE_UNKNOWN_OFFENDER");
    // The genuine one connects.
    assert.equal(offer(h, [voteEvidenceTx(good)]), null);
    assert.equal(findByOperator(h.chain.getRegistry(), offender.publicKey), undefined);
  });
});
