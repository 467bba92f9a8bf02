/**
 * Finality votes and the tracker (docs/CONSENSUS.md, "Finality"): the vote rules, the lock that
 * keeps an honest voter inside them, supermajority links, justification and finality on a block
 * tree, evidence for a double or surround vote, and the safety property: with less than 1/3 of
 * the weight Byzantine, under any delivery order, no two nodes ever see conflicting blocks final.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import {
  certificateError,
  decodeVote,
  encodeVote,
  firstEpoch,
  isSupermajority,
  lockAfter,
  lockAllows,
  NO_LOCK,
  signVote,
  slashingOffence,
  voteError,
  type Checkpoint,
  type FinalityVote,
  type VoteLock,
} from "../../../src/consensus/finality.js";
import type { Registry } from "../../../src/consensus/registry.js";
import { ERA_BLOCKS, ERA_RULES, registryVoters, type EraRules } from "../../../src/consensus/committee.js";
import { registryOfKeys } from "../../helpers/chainFixture.js";
import { FinalityTracker, type FinalityView } from "../../../src/chain/finalityTracker.js";

const GENESIS = sha256(Buffer.from("finality-test-genesis"));
const keys = (n: number, tag = "v"): KeyPair[] =>
  Array.from({ length: n }, (_, i) => KeyPair.fromSeed(sha256(Buffer.from(`${tag}-${i}`))));

/**
 * A block tree in memory: genesis at height 0, every other block with one parent. Each block has
 * a registry after it: its parent's, unless `setRegistry` gives it another.
 */
class Tree implements FinalityView {
  readonly parent = new Map<string, string | null>();
  readonly height = new Map<string, number>();
  readonly registries = new Map<string, Registry>();
  readonly blocks: Buffer[] = [GENESIS];
  constructor(registry: Registry) {
    this.parent.set(GENESIS.toString("hex"), null);
    this.height.set(GENESIS.toString("hex"), 0);
    this.registries.set(GENESIS.toString("hex"), registry);
  }
  add(parent: Buffer, tag: string): Buffer {
    const h = sha256(Buffer.concat([parent, Buffer.from(tag)]));
    this.parent.set(h.toString("hex"), parent.toString("hex"));
    this.height.set(h.toString("hex"), this.height.get(parent.toString("hex"))! + 1);
    this.registries.set(h.toString("hex"), this.registries.get(parent.toString("hex"))!);
    this.blocks.push(h);
    return h;
  }
  setRegistry(hash: Buffer, registry: Registry): void {
    this.registries.set(hash.toString("hex"), registry);
  }
  heightOf(hash: Buffer): number | undefined {
    return this.height.get(hash.toString("hex"));
  }
  isAncestor(ancestor: Buffer, descendant: Buffer): boolean {
    const a = ancestor.toString("hex");
    let cur: string | null | undefined = descendant.toString("hex");
    while (cur) {
      if (cur === a) return true;
      cur = this.parent.get(cur);
    }
    return false;
  }
  registryAfter(hash: Buffer): Registry | undefined {
    return this.registries.get(hash.toString("hex"));
  }
  /** An era's seed: the anchor's hash stands in for its VRF output here. */
  eraSeedAt(anchor: Buffer): Buffer | undefined {
    return this.height.has(anchor.toString("hex")) ? anchor : undefined;
  }
  ancestorAt(hash: Buffer, height: number): Buffer | undefined {
    let cur: string | null | undefined = hash.toString("hex");
    while (cur && this.height.get(cur)! > height) cur = this.parent.get(cur);
    return cur && this.height.get(cur) === height ? Buffer.from(cur, "hex") : undefined;
  }
  conflict(a: Buffer, b: Buffer): boolean {
    return !this.isAncestor(a, b) && !this.isAncestor(b, a);
  }
}

const cp = (tree: Tree, hash: Buffer, second = false): Checkpoint => ({
  epoch: firstEpoch(tree.heightOf(hash)!) + (second ? 1 : 0),
  hash,
});
const G1: Checkpoint = { epoch: 1, hash: GENESIS };

describe("finality: votes and the rules", () => {
  const [k] = keys(1);
  it("a vote round-trips, verifies, and is bound to the chain and the link", () => {
    const t = { epoch: 4, hash: Buffer.alloc(32, 2) };
    const v = signVote(k!, GENESIS, G1, t);
    assert.deepEqual(decodeVote(encodeVote(v)), v);
    assert.equal(voteError(GENESIS, v), null);
    assert.match(voteError(Buffer.alloc(32, 9), v) ?? "", /signature/, "another chain's genesis");
    assert.match(voteError(GENESIS, { ...v, target: { epoch: 6, hash: t.hash } }) ?? "", /signature/);
  });

  it("shapes: target after source; a second epoch links from its own block's first", () => {
    const b = Buffer.alloc(32, 3);
    const ok = (s: Checkpoint, t: Checkpoint): boolean =>
      voteError(GENESIS, signVote(k!, GENESIS, s, t)) === null;
    assert.ok(ok({ epoch: 4, hash: b }, { epoch: 5, hash: b }));
    assert.ok(
      !ok({ epoch: 4, hash: b }, { epoch: 5, hash: Buffer.alloc(32, 4) }),
      "second epoch of another block",
    );
    assert.ok(!ok({ epoch: 3, hash: b }, { epoch: 5, hash: b }), "second epoch not from its first");
    assert.ok(!ok({ epoch: 5, hash: b }, { epoch: 4, hash: b }), "backwards");
    assert.ok(!ok({ epoch: 4, hash: b }, { epoch: 4, hash: b }), "a loop");
    assert.ok(!ok({ epoch: 5, hash: b }, { epoch: 4 + 0, hash: Buffer.alloc(32, 1) }), "target below source");
    assert.ok(
      !ok({ epoch: 4, hash: b }, { epoch: 4, hash: Buffer.alloc(32, 1) }),
      "first epoch at the same height",
    );
  });

  it("double and surround votes are offences; ordinary successive votes are not", () => {
    const h = (n: number): Buffer => Buffer.alloc(32, n);
    const v = (s: number, t: number, tb = t): FinalityVote =>
      signVote(k!, GENESIS, { epoch: s, hash: h(s) }, { epoch: t, hash: t % 2 ? h(t - 1) : h(tb) });
    assert.equal(slashingOffence(v(1, 4), v(1, 4, 99)), "double");
    assert.equal(slashingOffence(v(1, 4), v(2, 4)), "double", "same target epoch, other source");
    assert.equal(slashingOffence(v(1, 4), v(1, 4)), null, "the same vote twice");
    assert.equal(slashingOffence(v(1, 10), v(4, 8)), "surround");
    assert.equal(slashingOffence(v(4, 8), v(1, 10)), "surround");
    assert.equal(slashingOffence(v(1, 4), v(4, 5)), null);
    assert.equal(slashingOffence(v(4, 5), v(5, 8)), null);
    const other = signVote(
      keys(1, "other")[0]!,
      GENESIS,
      { epoch: 1, hash: h(1) },
      { epoch: 4, hash: h(99) },
    );
    assert.equal(slashingOffence(v(1, 4), other), null, "two voters");
  });

  it("the lock: any sequence of votes it allows contains no offence", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(40), fc.nat(40)), { maxLength: 40 }), (pairs) => {
        let lock: VoteLock = NO_LOCK;
        const signed: FinalityVote[] = [];
        for (const [a, b] of pairs) {
          const s = { epoch: Math.min(a, b), hash: Buffer.alloc(32, Math.min(a, b)) };
          const t = { epoch: Math.max(a, b) + 1, hash: Buffer.alloc(32, 200) };
          if (!lockAllows(lock, 0, s, t)) continue;
          lock = lockAfter(lock, 0, s, t);
          signed.push(signVote(k!, GENESIS, s, t));
        }
        for (let i = 0; i < signed.length; i++)
          for (let j = i + 1; j < signed.length; j++)
            assert.equal(slashingOffence(signed[i]!, signed[j]!), null);
      }),
      { numRuns: 200 },
    );
  });

  it("more than two thirds, in integers", () => {
    assert.ok(!isSupermajority(4n, 6n), "4 of 6 is exactly 2/3");
    assert.ok(isSupermajority(5n, 6n));
    assert.ok(isSupermajority(201n, 300n));
    assert.ok(!isSupermajority(200n, 300n));
    assert.ok(!isSupermajority(0n, 0n));
  });
});

describe("finality: the tracker", () => {
  const ks = keys(6);
  const reg = registryOfKeys(ks);

  /** Everyone votes J -> (B, 2h), then (B, 2h) -> (B, 2h + 1); returns each outcome. */
  function round(tr: FinalityTracker, tree: Tree, b: Buffer, voters: KeyPair[]) {
    const source = tr.justifiedAncestor(b);
    const first = cp(tree, b);
    const era = tr.era;
    const out1 = voters.map((k) => tr.addVote(signVote(k, GENESIS, source, first, era)));
    const out2 = voters.map((k) => tr.addVote(signVote(k, GENESIS, first, cp(tree, b, true), era)));
    return [...out1, ...out2];
  }

  it("6 equal voters: 5 finalise each block, 4 (exactly 2/3) justify nothing", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const b1 = tree.add(GENESIS, "1");
    const outs = round(tr, tree, b1, ks.slice(0, 5));
    assert.deepEqual(tr.finalized, cp(tree, b1));
    assert.equal(outs.filter((o) => o.finalized).length, 1, "final once, at the fifth second-round vote");
    const b2 = tree.add(b1, "2");
    round(tr, tree, b2, ks.slice(0, 4));
    assert.deepEqual(tr.finalized, cp(tree, b1), "4 of 6 is not more than 2/3");
    assert.ok(!tr.isJustified(cp(tree, b2)));
    // The fifth voter comes back: b2's links reach 5/6, and b2 is final.
    round(tr, tree, b2, ks.slice(4, 5));
    assert.deepEqual(tr.finalized, cp(tree, b2));
    assert.equal(tr.finalizedHeight, 2);
  });

  it("a node that missed the first round takes the second round's supermajority: final; 4 of 6 is not enough", () => {
    const tree = new Tree(reg);
    const b1 = tree.add(GENESIS, "1");
    const second = (tr: FinalityTracker, voters: KeyPair[]) =>
      voters.map((k) => tr.addVote(signVote(k, GENESIS, cp(tree, b1), cp(tree, b1, true))));
    const short = new FinalityTracker(GENESIS, tree);
    second(short, ks.slice(0, 4));
    assert.equal(short.finalizedHeight, 0);
    assert.ok(!short.isJustified(cp(tree, b1)));
    const full = new FinalityTracker(GENESIS, tree);
    second(full, ks.slice(0, 5));
    assert.deepEqual(full.finalized, cp(tree, b1));
  });

  it("a certificate of the final link verifies against the registry, and not with a vote missing", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const b1 = tree.add(GENESIS, "1");
    round(tr, tree, b1, ks.slice(0, 5));
    const cert = tr.finalCertificate!;
    assert.equal(certificateError(GENESIS, cert, registryVoters(reg)), null);
    assert.match(
      certificateError(GENESIS, { ...cert, votes: cert.votes.slice(1) }, registryVoters(reg)) ?? "",
      /not more than 2\/3/,
    );
    assert.match(
      certificateError(GENESIS, { ...cert, votes: [...cert.votes, cert.votes[0]!] }, registryVoters(reg)) ??
        "",
      /appears twice/,
    );
    assert.match(
      certificateError(GENESIS, cert, registryVoters(registryOfKeys(keys(6, "strangers")))) ?? "",
      /not in the link.s voter set/,
    );
  });

  it("a block's finality is announced once: the next block's first link from its second checkpoint finalises nothing new", () => {
    // The first link of b2 runs from (b1, 3) to (b2, 4): consecutive epochs, so it finalises
    // (b1, 3) in the FFG sense. Before, that moved the final checkpoint from (b1, 2) to (b1, 3)
    // and announced b1 final a second time (a second finalizednotify, a second certificate sent
    // to every full node), and made a link a block cannot carry the final certificate.
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const b1 = tree.add(GENESIS, "1");
    const b2 = tree.add(b1, "2");
    const finals = [...round(tr, tree, b1, ks), ...round(tr, tree, b2, ks)]
      .map((o) => o.finalized)
      .filter((c): c is Checkpoint => c !== null);
    assert.deepEqual(finals, [cp(tree, b1), cp(tree, b2)]);
    const cert = tr.finalCertificate!;
    assert.deepEqual([cert.source, cert.target], [cp(tree, b2), cp(tree, b2, true)]);
  });

  it("an attack: Sybils registered on a private branch finalise it by its second link alone (refused)", () => {
    // The attacker forks after the final block and registers 13 free-tier masternodes in its own
    // private blocks (valid registrations: no collateral, at most 8 per block). On that branch
    // the Sybils hold 13 of 19 entries, more than 2/3, and they sign one link: a block's second
    // link. With the voter set taken from the registry after the source block (the rule before),
    // the tracker took the first checkpoint as justified and the block as final, and a node that
    // received the branch switched to it. The voter set is now its era's, drawn at a final
    // anchor, which every branch above it shares: the Sybils are not voters.
    const sybils = keys(13, "sybil");
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const h1 = tree.add(GENESIS, "h1");
    round(tr, tree, h1, ks);
    assert.equal(tr.finalizedHeight, 1);
    const p2 = tree.add(h1, "p2");
    tree.setRegistry(p2, registryOfKeys([...ks, ...sybils]));
    const p3 = tree.add(p2, "p3");
    const outs = sybils.map((k) => tr.addVote(signVote(k, GENESIS, cp(tree, p3), cp(tree, p3, true))));
    assert.equal(tr.finalizedHeight, 1, "the private branch is not final");
    assert.ok(!tr.isJustified(cp(tree, p3)));
    assert.ok(
      outs.every((o) => o.status === "not-voter"),
      outs.map((o) => o.status).join(","),
    );
    // Even once a block after the registrations is final (the honest voters finalise p2 here, as
    // if it were on the chain everyone follows), they do not vote in era 0, whose voter set was
    // drawn at the genesis.
    round(tr, tree, p2, ks.slice(0, 5));
    assert.equal(tr.finalizedHeight, 2);
    const early = sybils.map((k) => tr.addVote(signVote(k, GENESIS, cp(tree, p2), cp(tree, p3))));
    assert.ok(early.every((o) => o.status === "not-voter"));
    // They vote from the era whose anchor (height ERA_BLOCKS, above their registration) is final.
    let tip = p3;
    while (tree.heightOf(tip)! < ERA_BLOCKS) tip = tree.add(tip, `e${tree.heightOf(tip)}`);
    round(tr, tree, tip, ks.slice(0, 5));
    assert.equal(tr.finalizedHeight, ERA_BLOCKS);
    assert.equal(tr.era, 1);
    const next = tree.add(tip, "after-anchor");
    const later = sybils.map((k) => tr.addVote(signVote(k, GENESIS, cp(tree, tip), cp(tree, next), 1)));
    assert.ok(later.every((o) => o.status === "counted" || o.status === "duplicate"));
  });

  it("votes whose blocks are unknown wait, then count when the blocks arrive", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const hidden = new Tree(reg);
    const b1 = hidden.add(GENESIS, "1");
    for (const k of ks.slice(0, 5))
      assert.equal(tr.addVote(signVote(k, GENESIS, G1, cp(hidden, b1))).status, "pending");
    assert.equal(tr.pendingCount, 5);
    tree.add(GENESIS, "1");
    const out = tr.retryPending();
    assert.deepEqual(out.justified, [cp(hidden, b1)]);
  });

  it("a vote whose target is justified already changes nothing: unchecked and unkept, unless it is evidence", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const b1 = tree.add(GENESIS, "1");
    round(tr, tree, b1, ks.slice(0, 5));
    assert.deepEqual(tr.finalized, cp(tree, b1));
    // The sixth voter's votes come after both of b1's checkpoints were justified. With its
    // signature broken, it is not even checked (the old tracker refused it as invalid).
    const late = signVote(ks[5]!, GENESIS, G1, cp(tree, b1));
    const broken = { ...late, signature: Buffer.alloc(64, 7) };
    assert.equal(tr.addVote(broken).status, "stale");
    assert.equal(tr.addVote(late).status, "stale");
    assert.equal(tr.addVote(signVote(ks[5]!, GENESIS, cp(tree, b1), cp(tree, b1, true))).status, "stale");
    // A voter that signs a second vote for a justified target's epoch is still caught: a double
    // vote against the one it cast before, checked because it is evidence.
    const dbl = tr.addVote(signVote(ks[0]!, GENESIS, { epoch: 0, hash: GENESIS }, cp(tree, b1)));
    assert.equal(dbl.status, "stale");
    assert.equal(dbl.evidence?.offence, "double");
    // ...and not with a forged signature: then it is nobody's evidence.
    const forged = {
      ...signVote(ks[1]!, GENESIS, { epoch: 0, hash: GENESIS }, cp(tree, b1)),
      signature: Buffer.alloc(64, 9),
    };
    assert.equal(tr.addVote(forged).evidence, undefined);
  });

  it("a double vote and a surround vote are reported as evidence, with both signed votes", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const a = tree.add(GENESIS, "a");
    const b = tree.add(GENESIS, "b");
    const k = ks[0]!;
    tr.addVote(signVote(k, GENESIS, G1, cp(tree, a)));
    const dbl = tr.addVote(signVote(k, GENESIS, G1, cp(tree, b)));
    assert.equal(dbl.evidence?.offence, "double");
    assert.ok(dbl.evidence.a.target.hash.equals(a) && dbl.evidence.b.target.hash.equals(b));
    const a2 = tree.add(a, "a2");
    const a3 = tree.add(a2, "a3");
    const k2 = ks[1]!;
    tr.addVote(signVote(k2, GENESIS, cp(tree, a, true), cp(tree, a2)));
    const sur = tr.addVote(signVote(k2, GENESIS, G1, cp(tree, a3)));
    assert.equal(sur.evidence?.offence, "surround");
  });

  it("bad votes are refused with a reason: another chain, a source not below its target, a stranger", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const a = tree.add(GENESIS, "a");
    const b = tree.add(GENESIS, "b");
    const b2 = tree.add(b, "b2");
    assert.equal(
      tr.addVote(signVote(ks[0]!, Buffer.alloc(32), G1, cp(tree, a))).status,
      "invalid",
      "another chain",
    );
    const off = tr.addVote(signVote(ks[0]!, GENESIS, cp(tree, a, true), cp(tree, b2)));
    assert.equal(off.status, "unusable");
    assert.match(off.reason ?? "", /not an ancestor/);
    assert.equal(tr.addVote(signVote(keys(1, "x")[0]!, GENESIS, G1, cp(tree, a))).status, "not-voter");
    assert.equal(
      tr.addVote(signVote(ks[0]!, GENESIS, G1, { epoch: 8, hash: a })).status,
      "unusable",
      "epoch off its height",
    );
  });

  it("stays bounded: pending votes and links have caps", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree, {
      maxPending: 10,
      votesPerVoter: 4,
      maxLinks: 3,
      maxEpochsAhead: 100,
    });
    for (let i = 0; i < 30; i++)
      tr.addVote(signVote(ks[i % 6]!, GENESIS, G1, { epoch: 2 + 2 * (i % 40), hash: sha256(Buffer.of(i)) }));
    assert.ok(tr.pendingCount <= 10);
    const far = tr.addVote(signVote(ks[0]!, GENESIS, G1, { epoch: 1_000, hash: GENESIS }));
    assert.equal(far.status, "stale");
  });

  it("stays bounded: a key the final block's registry lacks is dropped unkept and unchecked", () => {
    const tree = new Tree(reg);
    const tr = new FinalityTracker(GENESIS, tree);
    const a = tree.add(GENESIS, "a");
    // Fresh keys cost an attacker nothing: none may be kept as a voter (each was, before).
    for (const k of keys(40, "stranger")) {
      const out = tr.addVote(signVote(k, GENESIS, G1, cp(tree, a)));
      assert.equal(out.status, "not-voter");
    }
    assert.equal(tr.votersTracked, 0);
    // And its signature is not checked: a forged one is noise, not proof against the relay.
    const forged = {
      ...signVote(keys(1, "forger")[0]!, GENESIS, G1, cp(tree, a)),
      signature: Buffer.alloc(64, 7),
    };
    assert.equal(tr.addVote(forged).status, "not-voter");
    // A registered voter is still kept, and its copy recognised.
    const good = signVote(ks[0]!, GENESIS, G1, cp(tree, a));
    assert.equal(tr.addVote(good).status, "counted");
    assert.equal(tr.addVote({ ...good }).status, "duplicate");
    assert.equal(tr.votersTracked, 1);
  });
});

/**
 * Eras of `eraBlocks` heights whose voter sets rotate: each era's set is the `byz` Byzantine keys
 * and the 7 - byz honest keys that rank first by a hash of the era's anchor (and of a salt, so
 * that each run has its own first era's set), out of a pool of
 * honest keys larger than that. So consecutive eras have different voters, as sampled
 * committees do, and the Byzantine share of every era's set is byz / 7.
 */
function rotatingEras(eraBlocks: number, pool: KeyPair[], byz: number, salt: number): EraRules {
  return {
    eraBlocks,
    voters: (_registry, anchor) => {
      const honest = pool
        .slice(byz)
        .map((k) => ({ k, rank: sha256(Buffer.concat([anchor, k.publicKey, Buffer.from(`${salt}`)])) }))
        .sort((a, b) => Buffer.compare(a.rank, b.rank))
        .slice(0, 7 - byz)
        .map((x) => x.k);
      return registryVoters(registryOfKeys([...pool.slice(0, byz), ...honest]));
    },
  };
}

/**
 * The safety property. A block tree of two competing branches (and random side blocks); voter
 * sets of 7 of equal weight, of which `byz` sign anything at all: every link an honest voter
 * signs (on every branch, in its era), and random links in random eras too. Honest voters keep
 * their locks and vote on heads that a hostile scheduler picks for them from either branch, each
 * from its own tracker's view and in its own tracker's era; every node's tracker gets the votes in
 * its own order (at once inside a side of the partition, across it late and shuffled). With at
 * most 2 Byzantine (less than 1/3), no two final checkpoints, at any node, at any time, may
 * conflict. The same run with 3 Byzantine (more than 1/3) must find conflicting finality: that
 * shows the test can see a violation. With `eraBlocks`, eras are that short and their voter sets
 * rotate over a pool of 10 keys (rotatingEras); without, the consensus rules' eras apply, which
 * these short trees never leave.
 */
function safetyRun(
  byz: number,
  treeSeeds: number[],
  steps: Array<[number, number, number]>,
  eraBlocks?: number,
) {
  const voters = keys(eraBlocks ? 10 : 7, "safety");
  const rules = eraBlocks ? rotatingEras(eraBlocks, voters, byz, treeSeeds[0] ?? 0) : ERA_RULES;
  const tree = new Tree(registryOfKeys(voters));
  const branches: Buffer[][] = [[], []];
  const tips = [GENESIS, GENESIS];
  for (const [i, s] of treeSeeds.entries()) {
    const side = s % 3;
    if (side < 2) {
      tips[side] = tree.add(tips[side]!, `${side}-${i}`);
      branches[side]!.push(tips[side]!);
    } else tree.add(tree.blocks[s % tree.blocks.length]!, `x-${i}`);
  }
  const nodes = voters.map(() => new FinalityTracker(GENESIS, tree, undefined, undefined, rules));
  let lastEra = 0;
  const locks: VoteLock[] = voters.map(() => NO_LOCK);
  const sent: FinalityVote[] = [];
  const finals: Checkpoint[] = [];
  const deliver = (node: number, v: FinalityVote): void => {
    const out = nodes[node]!.addVote(v);
    if (out.finalized) finals.push(out.finalized);
    lastEra = Math.max(lastEra, nodes[node]!.era);
  };
  const pick = (n: number): Buffer => tree.blocks[n % tree.blocks.length]!;
  for (const [step, [who, x, y]] of steps.entries()) {
    if (who < byz) {
      const s = pick(x);
      const t = pick(y);
      const sh = tree.heightOf(s)!;
      const th = tree.heightOf(t)!;
      const era = (x >> 3) % (lastEra + 2);
      sent.push(
        th > sh
          ? signVote(
              voters[who]!,
              GENESIS,
              { epoch: 2 * sh + (x % 2), hash: s },
              { epoch: 2 * th, hash: t },
              era,
            )
          : signVote(voters[who]!, GENESIS, { epoch: 2 * sh, hash: s }, { epoch: 2 * sh + 1, hash: s }, era),
      );
    } else {
      const me = nodes[who]!;
      // A partition, mostly: each honest voter sees "its" branch, and now and then the other.
      // The branch grows with time; a voter sees its tip, or one block less when it lags.
      const headOn = (side: number): Buffer | undefined => {
        const branch = branches[side % 2]!;
        if (branch.length === 0) return undefined;
        const grown = Math.min(branch.length - 1, Math.floor(step / 6));
        return branch[Math.max(0, grown - (y % 4 === 0 ? 1 : 0))]!;
      };
      const side = who + (x % 5 === 0 ? 1 : 0);
      let head = headOn(side);
      // Fork choice never leaves the final block: a voter whose final block is on the other
      // branch follows that branch (when it has grown past it).
      if (head && !tree.isAncestor(me.finalized.hash, head)) head = headOn(side + 1);
      if (!head) continue;
      const first = { epoch: 2 * tree.heightOf(head)!, hash: head };
      const second = { epoch: first.epoch + 1, hash: head };
      const [s, t] = me.isJustified(first) ? [first, second] : [me.justifiedAncestor(head), first];
      const era = me.era;
      const inSet = (me.voters?.weightOf(voters[who]!.publicKey) ?? 0n) > 0n;
      if (inSet && t.epoch > s.epoch && lockAllows(locks[who]!, era, s, t)) {
        locks[who] = lockAfter(locks[who]!, era, s, t);
        // The Byzantine voters back every honest link, on every branch; inside one side of the
        // partition votes arrive at once, across it only through the random deliveries below.
        const fresh = [voters[who]!, ...voters.slice(0, byz)].map((k) => signVote(k, GENESIS, s, t, era));
        sent.push(...fresh);
        for (let n = byz; n < nodes.length; n++) if (n % 2 === who % 2) for (const v of fresh) deliver(n, v);
      }
    }
    for (let d = 0; d < 4 && sent.length > 0; d++)
      deliver((y + d) % nodes.length, sent[(x + 7 * d + y) % sent.length]!);
  }
  for (let n = 0; n < nodes.length; n++) for (const v of sent) deliver(n, v);
  let conflict: string | null = null;
  for (let i = 0; i < finals.length && !conflict; i++)
    for (let j = i + 1; j < finals.length && !conflict; j++)
      if (tree.conflict(finals[i]!.hash, finals[j]!.hash))
        conflict = `final blocks at heights ${tree.heightOf(finals[i]!.hash)} and ${tree.heightOf(finals[j]!.hash)} conflict`;
  return { finals: finals.length, conflict, eras: lastEra };
}

const safetyArbs = [
  fc.array(fc.nat(1_000_000), { minLength: 12, maxLength: 30 }),
  fc.array(fc.tuple(fc.nat(6), fc.nat(1_000_000), fc.nat(1_000_000)), { minLength: 80, maxLength: 200 }),
] as const;
/** The same, with voters drawn from all 10 keys of the rotating eras' pool. */
const eraSafetyArbs = [
  safetyArbs[0],
  fc.array(fc.tuple(fc.nat(9), fc.nat(1_000_000), fc.nat(1_000_000)), { minLength: 80, maxLength: 200 }),
] as const;

describe("finality: safety with less than 1/3 Byzantine, under any delivery", () => {
  it("no two conflicting final blocks at any node, with 0, 1 or 2 of 7 Byzantine", (t) => {
    let withFinals = 0;
    let runs = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), ...safetyArbs, (byz, seeds, steps) => {
        const r = safetyRun(byz, seeds, steps);
        runs++;
        if (r.finals > 0) withFinals++;
        assert.equal(r.conflict, null, `${r.conflict} with ${byz} Byzantine`);
      }),
      // A fixed seed, as every simulation test here has: the liveness count below is a property of
      // the runs drawn, and unseeded draws put it anywhere from 15 to 31 of 100 (a flaky check).
      // FC_SEED=<seed> explores other draws; safety must hold for every one.
      { numRuns: 100, seed: process.env.FC_SEED ? Number(process.env.FC_SEED) : 1 },
    );
    // Across a partition finality needs the cross-side views, so it comes in some runs, not all.
    t.diagnostic(`blocks became final in ${withFinals} of ${runs} runs`);
    assert.ok(withFinals > runs / 5, `blocks became final in only ${withFinals} of ${runs} runs`);
  });

  it("with eras of 2 blocks and voter sets that rotate at each anchor: still no conflict with 0, 1 or 2 of 7", (t) => {
    let withEras = 0;
    let runs = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 2, max: 3 }),
        ...eraSafetyArbs,
        (byz, eraBlocks, seeds, steps) => {
          const r = safetyRun(byz, seeds, steps, eraBlocks);
          runs++;
          if (r.eras > 0) withEras++;
          assert.equal(r.conflict, null, `${r.conflict} with ${byz} Byzantine, eras of ${eraBlocks}`);
        },
      ),
      { numRuns: 100, seed: process.env.FC_SEED ? Number(process.env.FC_SEED) : 3 },
    );
    // The property says something about eras only if runs do open later eras.
    t.diagnostic(`a later era opened in ${withEras} of ${runs} runs`);
    assert.ok(withEras >= runs / 10, `a later era opened in only ${withEras} of ${runs} runs`);
  });

  it("with rotating eras and 3 of 7 Byzantine, conflicting finality is reached", () => {
    let conflicts = 0;
    fc.assert(
      fc.property(...eraSafetyArbs, (seeds, steps) => {
        if (safetyRun(3, seeds, steps, 2).conflict) conflicts++;
      }),
      { numRuns: 40, seed: 7 },
    );
    assert.ok(conflicts > 0, "the attack the rules stop at 2 Byzantine must succeed at 3");
  });

  it("the same runs with 3 of 7 Byzantine (over 1/3) do reach conflicting finality", () => {
    let conflicts = 0;
    fc.assert(
      fc.property(...safetyArbs, (seeds, steps) => {
        if (safetyRun(3, seeds, steps).conflict) conflicts++;
      }),
      { numRuns: 40, seed: 7 },
    );
    assert.ok(conflicts > 0, "the attack the rules stop at 2 Byzantine must succeed at 3");
  });
});
