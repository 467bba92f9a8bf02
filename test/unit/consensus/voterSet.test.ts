/**
 * The voter set of a finality link (docs/CONSENSUS.md, "The voter set"): the registry after a
 * final (or, on chain, certified) block, less entries no longer registered after the source; and
 * rule C6 weighing a certificate on chain with it, not with the registry its own branch built.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { linkVoters, registryVoters } from "../../../src/consensus/voterSet.js";
import { signVote, type Certificate } from "../../../src/consensus/finality.js";
import { checkCertificateOnBranch, type FinalityContext } from "../../../src/consensus/finalityTx.js";
import { Tier } from "../../../src/consensus/tier.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { registryOfKeys, testKeys } from "../../helpers/chainFixture.js";

describe("voter sets", () => {
  it("the whole registry weighs each entry by its tier", () => {
    const reg = registryOfKeys(testKeys("vs-bronze", 3), Tier.Bronze);
    const v = registryVoters(reg);
    assert.equal(v.total, 3_000n);
    assert.equal(v.weightOf(reg[1]!.operatorPubkey), 1_000n);
    assert.equal(v.weightOf(Buffer.alloc(32, 7)), 0n);
  });

  it("a link's voters: base entries still registered after the source; new entries do not vote; the total stays", () => {
    const ks = testKeys("vs-link", 4);
    const base = registryOfKeys(ks);
    const newcomer = testKeys("vs-new", 1)[0]!;
    const afterSource = registryOfKeys([...ks.slice(1), newcomer]);
    const v = linkVoters(base, afterSource);
    const removed = base.find((e) => e.operatorPubkey.equals(ks[0]!.publicKey))!;
    assert.equal(v.weightOf(removed.operatorPubkey), 0n, "removed on the source's branch");
    assert.equal(v.weightOf(ks[1]!.publicKey), 100n);
    assert.equal(v.weightOf(newcomer.publicKey), 0n, "registered after the base block");
    assert.equal(v.total, 400n);
  });
});

describe("rule C6: a certificate on chain is weighed from the branch's certified block", () => {
  const genesisHash = sha256(Buffer.from("c6-genesis"));
  const honest = testKeys("c6-honest", 6);
  const sybils = testKeys("c6-sybil", 13);
  const block = sha256(Buffer.from("private-block-3"));
  const certifiedBlock = sha256(Buffer.from("certified-block-1"));
  const source = { epoch: 6, hash: block };
  const target = { epoch: 7, hash: block };
  const certOf = (keys: typeof honest): Certificate => ({
    source,
    target,
    votes: keys
      .map((k) => signVote(k, genesisHash, source, target))
      .map((v) => ({ voter: v.voter, signature: v.signature }))
      .sort((a, b) => Buffer.compare(a.voter, b.voter)),
  });
  /** A branch certified up to block 1, whose registry after block 3 holds 13 Sybils it registered itself. */
  const ctx: FinalityContext = {
    genesisHash,
    parentCertified: 1,
    branchBlock: (h) =>
      h === 3
        ? { hash: block, registry: registryOfKeys([...honest, ...sybils]) }
        : h === 1
          ? { hash: certifiedBlock, registry: registryOfKeys(honest) }
          : undefined,
  };

  it("an attack: 13 Sybils registered on the branch certify its block (refused)", () => {
    // Before, C6 weighed a certificate with the registry after the certified block on its own
    // branch, where the Sybils are 13 of 19: a node syncing from genesis took the branch as final.
    assert.throws(
      () => checkCertificateOnBranch(certOf(sybils), ctx),
      (e: unknown) => e instanceof BlockError && e.code === "BAD_CERTIFICATE" && /voter set/.test(e.message),
    );
    assert.doesNotThrow(() => checkCertificateOnBranch(certOf(honest.slice(0, 5)), ctx));
    assert.throws(() => checkCertificateOnBranch(certOf(honest.slice(0, 4)), ctx), /not more than 2\/3/);
  });
});
