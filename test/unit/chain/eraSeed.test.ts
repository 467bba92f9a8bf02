/**
 * Era seeds (docs/CONSENSUS.md, "Eras and the voter set"): every era anchor's coinbase carries
 * its producer's VRF proof over the previous era's seed, blocks without a valid one are invalid,
 * and the seed a committee is drawn from is the VRF output, so the anchor's producer cannot
 * grind it by trying versions of its block.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ERA_BLOCKS,
  anchorProof,
  eraSeedInput,
  eraSeedOf,
  sampleCommittee,
} from "../../../src/consensus/committee.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { vrfProve, vrfVerify } from "../../../src/crypto/vrf.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { BlockError } from "../../../src/primitives/errors.js";
import {
  cloneBlock,
  harnessesClosedAfter,
  reseal,
  testGenesis,
  testKeys,
} from "../../helpers/chainFixture.js";
import { extend } from "../../helpers/chainBuild.js";

const mns = testKeys("era-seed-mn", 4);
const genesis = testGenesis({ masternodes: mns });
const harness = harnessesClosedAfter(genesis, mns);

const seedOf = (b: Block): Buffer =>
  eraSeedOf({ hash: blockHash(b.header), height: b.header.height, coinbasePayload: b.txs[0]!.payload })!;

describe("era seeds", () => {
  it("each anchor proves its seed from the one before, by its producer's key", () => {
    const h = harness();
    const blocks = extend(h, 2 * ERA_BLOCKS + 1);
    const first = blocks[ERA_BLOCKS - 1]!;
    const second = blocks[2 * ERA_BLOCKS - 1]!;
    assert.equal(first.header.height, ERA_BLOCKS);
    const g = h.chain.genesisHash;
    const out1 = vrfVerify(first.header.producer, anchorProof(first.txs[0]!.payload), eraSeedInput(g, 1, g));
    assert.ok(out1, "era 1's proof is over the genesis seed");
    const out2 = vrfVerify(
      second.header.producer,
      anchorProof(second.txs[0]!.payload),
      eraSeedInput(g, 2, out1.subarray(0, 32)),
    );
    assert.ok(out2, "era 2's proof is over era 1's seed");
    assert.deepEqual(h.chain.finality.seedAt(blockHash(second.header)), out2.subarray(0, 32));
    // Blocks between anchors carry only their height.
    assert.equal(blocks[ERA_BLOCKS]!.txs[0]!.payload.length, 4);
  });

  it("an anchor without its proof, with a proof over another seed, or by another key, is invalid", () => {
    const h = harness();
    extend(h, ERA_BLOCKS - 1);
    const good = h.makeBlock();
    assert.equal(good.header.height, ERA_BLOCKS);
    const producer = h.keyFor(good.header.producer);
    const refuse = (b: Block, why: RegExp): void =>
      assert.throws(
        () => h.feed(b),
        (e: unknown) => e instanceof BlockError && e.code === "BAD_COINBASE_PAYLOAD" && why.test(e.message),
      );
    const withPayload = (payload: Buffer): Block => {
      const b = cloneBlock(good);
      b.txs[0]!.payload = payload;
      return reseal(b, producer);
    };
    const height = good.txs[0]!.payload.subarray(0, 4);
    refuse(withPayload(Buffer.from(height)), /VRF proof/);
    const g = h.chain.genesisHash;
    const otherSeed = vrfProve(producer.seed(), eraSeedInput(g, 1, Buffer.alloc(32, 9)));
    refuse(withPayload(Buffer.concat([height, otherSeed])), /does not verify/);
    const stranger = mns.find((k) => !k.publicKey.equals(producer.publicKey))!;
    const otherKey = vrfProve(stranger.seed(), eraSeedInput(g, 1, g));
    refuse(withPayload(Buffer.concat([height, otherKey])), /does not verify/);
    assert.equal(h.feed(good).status, "connected");
  });

  it("an attack: the anchor's producer grinds its block, and every version opens its era with the same seed", () => {
    // With the anchor's hash as the seed (the rule before), each timestamp the producer may use
    // gave another committee: grinding tries versions of the block until one draws a committee
    // it likes. The VRF gives its key one output for the era's input, whatever the block holds.
    const h = harness();
    extend(h, ERA_BLOCKS - 1);
    const a = h.makeBlock();
    const b = h.makeBlock({ timestamp: a.header.timestamp + 1 });
    assert.ok(!blockHash(a.header).equals(blockHash(b.header)), "two versions of the anchor");
    assert.ok(seedOf(a).equals(seedOf(b)));
    // So the committee a large registry would draw is the same too.
    const registry = Array.from({ length: 4_000 }, (_, i) => ({
      ...h.chain.getRegistry()[0]!,
      operatorPubkey: sha256(Buffer.from(`era-seed-entry-${i}`)),
    })).sort((x, y) => Buffer.compare(x.operatorPubkey, y.operatorPubkey));
    const ca = sampleCommittee(registry, seedOf(a));
    const cb = sampleCommittee(registry, seedOf(b));
    for (const e of registry) assert.equal(ca.weightOf(e.operatorPubkey), cb.weightOf(e.operatorPubkey));
    const byHash = sampleCommittee(registry, blockHash(a.header));
    const byOtherHash = sampleCommittee(registry, blockHash(b.header));
    assert.ok(
      registry.some((e) => byHash.weightOf(e.operatorPubkey) !== byOtherHash.weightOf(e.operatorPubkey)),
      "drawn from the block's hash, the two versions gave different committees",
    );
  });
});
