/**
 * Consensus safety (docs/CONSENSUS.md, "Threat model"), each attack performed against a real
 * Chain on LMDB:
 * - the schedule is weighted and cannot be ground: the producer of a block cannot steer who
 *   produces after it, and each member's round-0 share tracks its weight within a stated bound;
 * - one key of six cannot replace an honest chain of round-0 blocks with a private branch;
 * - side blocks are stored only while their branch could win: a flood is bounded in bytes;
 * - equivocation is evidence: detected, mined, the offender out of the schedule, its collateral
 *   burned and its key barred, and a reorg reverts it all;
 * - fork choice runs again when the chain opens, and a better block sent again triggers the switch.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { blockHash, encodeBlock, type Block } from "../../../src/primitives/block.js";
import { Chain, SIDE_BRANCH_WORK_MARGIN } from "../../../src/chain/chain.js";
import { ManualClock } from "../../../src/util/clock.js";
import { ChainStore, blockWork, type BlockIndex } from "../../../src/chain/chainStore.js";
import { verifyChain } from "../../../src/node/verify.js";
import { ROUND_WEIGHT_BASE } from "../../../src/primitives/constants.js";
import { TxKind } from "../../../src/primitives/tx.js";
import { evidenceTx } from "../../../src/consensus/evidence.js";
import { sortRegistry, type MasternodeEntry, type Registry } from "../../../src/consensus/registry.js";
import { makeRegisterTx } from "../../../src/consensus/registryTx.js";
import {
  EPOCH_BLOCKS,
  anchorHeightOf,
  genesisSchedule,
  nextSchedule,
  scheduledProducer,
  slotStart,
  type EpochSchedule,
} from "../../../src/consensus/schedule.js";
import { TIER_COLLATERAL, TIER_WEIGHT, Tier } from "../../../src/consensus/tier.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { BlockError } from "../../../src/primitives/errors.js";
import { SeededRandom } from "../../../src/util/random.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  registryOfKeys,
  testGenesis,
  testKey,
  testKeys,
  tempDir,
} from "../../helpers/chainFixture.js";

const mns = testKeys("safety-mn", 6);
const attacker = mns[0]!;
const owner = testKey("safety-owner", 0);
const BRONZE = TIER_COLLATERAL[Tier.Bronze];
const genesis = testGenesis({
  masternodes: mns,
  funded: [
    { key: owner, amount: BRONZE, count: 2 },
    { key: owner, amount: 50n * COIN, count: 4 },
  ],
});

async function withHarness(fn: (h: ChainHarness) => void | Promise<void>): Promise<void> {
  const h = new ChainHarness(genesis, mns);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

const hexOf = (k: { publicKey: Buffer } | Buffer): string =>
  (Buffer.isBuffer(k) ? k : k.publicKey).toString("hex");

/** The round-0 producer of the tip's next height, on `h`'s chain. */
function nextProducer(h: ChainHarness): Buffer {
  const tip = h.chain.tip;
  return scheduledProducer(h.chain.scheduleForChild(tip), tip.height + 1, 0, h.chain.getRegistry())!
    .operatorPubkey;
}

/** The round at which `key` may produce the tip's next height (its place in the round order). */
function roundOf(h: ChainHarness, key: Buffer): number {
  const tip = h.chain.tip;
  const s = h.chain.scheduleForChild(tip);
  const reg = h.chain.getRegistry();
  for (let r = 0; r < reg.length; r++) {
    if (scheduledProducer(s, tip.height + 1, r, reg)!.operatorPubkey.equals(key)) return r;
  }
  throw new Error("not scheduled at any round");
}

// ---------------------------------------------------------------------------------------------

describe("the schedule: weighted, bounded, not grindable", () => {
  test("each member's round-0 share over any window tracks its weight within 3 (seeded random registries, with epochs)", () => {
    const rnd = new SeededRandom(20261206);
    const tiers = [Tier.Free, Tier.Bronze, Tier.Silver, Tier.Gold];
    let worst = 0;
    for (let trial = 0; trial < 40; trial++) {
      const n = 2 + rnd.int(trial < 30 ? 12 : 60);
      const registry: Registry = sortRegistry(
        Array.from({ length: n }, (_, i): MasternodeEntry => ({
          operatorPubkey: sha256(Buffer.from(`sched/${trial}/${i}`)),
          address: "127.0.0.1:1",
          tier: tiers[rnd.int(4)]!,
          rewardAddress: Buffer.alloc(20),
          collateral: null,
          ownerPubkey: null,
          registeredHeight: 0,
        })),
      );
      // Ten epochs of one unchanged registry: the sequence of round-0 producers.
      const seq: number[] = [];
      let s: EpochSchedule = genesisSchedule(registry);
      for (let e = 0; e < 10; e++) {
        if (e > 0) s = nextSchedule(s, registry);
        for (let k = 0; k < EPOCH_BLOCKS; k++) {
          const p = scheduledProducer(s, anchorHeightOf(e) + 1 + k, 0, registry)!;
          seq.push(registry.indexOf(p));
        }
      }
      const W = registry.reduce((a, e) => a + Number(TIER_WEIGHT[e.tier]), 0);
      const prefix = registry.map(() => new Int32Array(seq.length + 1));
      seq.forEach((who, t) => {
        for (let i = 0; i < n; i++) prefix[i]![t + 1] = prefix[i]![t]! + (i === who ? 1 : 0);
      });
      for (let a = 0; a < seq.length; a += 3) {
        for (let b = a + 1; b <= seq.length; b += 2) {
          for (let i = 0; i < n; i++) {
            const dev = Math.abs(
              prefix[i]![b]! - prefix[i]![a]! - ((b - a) * Number(TIER_WEIGHT[registry[i]!.tier])) / W,
            );
            worst = Math.max(worst, dev);
          }
        }
      }
    }
    assert.ok(worst < 3, `worst deviation ${worst.toFixed(3)} round-0 slots`);
  });

  test("a newcomer joins at the next epoch boundary, behind every member already there", () => {
    const base = registryOfKeys(mns);
    const newcomer: MasternodeEntry = {
      ...base[0]!,
      operatorPubkey: sha256(Buffer.from("newcomer")),
      tier: Tier.Gold,
    };
    const withNew = sortRegistry([...base, newcomer]);
    const e0 = genesisSchedule(base);
    // A registration inside epoch 0 does not change epoch 0's producers: the schedule was fixed.
    for (let k = 0; k < EPOCH_BLOCKS; k++)
      assert.ok(!scheduledProducer(e0, k + 1, 0, withNew)!.operatorPubkey.equals(newcomer.operatorPubkey));
    const e1 = nextSchedule(e0, withNew);
    const first = anchorHeightOf(1) + 1;
    assert.ok(!scheduledProducer(e1, first, 0, withNew)!.operatorPubkey.equals(newcomer.operatorPubkey));
    // A Gold among Frees then holds most slots: weight, not count, decides.
    let gold = 0;
    let s = e1;
    for (let e = 1; e < 6; e++) {
      if (e > 1) s = nextSchedule(s, withNew);
      for (let k = 0; k < EPOCH_BLOCKS; k++) {
        if (
          scheduledProducer(s, anchorHeightOf(e) + 1 + k, 0, withNew)!.operatorPubkey.equals(
            newcomer.operatorPubkey,
          )
        )
          gold++;
      }
    }
    const share =
      Number(TIER_WEIGHT[Tier.Gold]) / (Number(TIER_WEIGHT[Tier.Gold]) + 6 * Number(TIER_WEIGHT[Tier.Free]));
    assert.ok(Math.abs(gold - 5 * EPOCH_BLOCKS * share) < 3 + EPOCH_BLOCKS * 0.2, `gold held ${gold} of 160`);
  });

  test("the 300-block grind: trying 35 timestamps (so 35 block hashes) per block, one key of six keeps its share, not the slots", () =>
    withHarness((h) => {
      let attackerSlots = 0;
      let grindsThatChangedTheNext = 0;
      for (let height = 1; height <= 300; height++) {
        if (!nextProducer(h).equals(attacker.publicKey)) {
          h.mine();
          continue;
        }
        // The attacker holds round 0 here: it tries 35 timestamps inside its slot (35 different
        // block hashes), keeping the block that makes it the producer of the next height if any
        // does: what made the parent-hash schedule grindable. (A grinder signs many blocks for
        // one slot; the chain keeps them as evidence, but only the schedule matters here.)
        attackerSlots++;
        const tip = h.chain.tip;
        const slot = slotStart(h.chain.params, tip.timestamp, 0);
        const nexts = new Set<string>();
        let kept = false;
        for (let t = 0; t < 35 && !kept; t++) {
          const b = h.makeBlock({ timestamp: slot + t });
          h.clock.set(Math.max(h.clock.now(), b.header.timestamp));
          if (h.chain.processBlock(b).status !== "connected") continue;
          nexts.add(hexOf(nextProducer(h)));
          if (nextProducer(h).equals(attacker.publicKey)) kept = true;
          else h.chain.disconnectTip();
        }
        if (!kept) h.mine({ timestamp: slot + 35 });
        if (nexts.size > 1) grindsThatChangedTheNext++;
      }
      assert.equal(
        grindsThatChangedTheNext,
        0,
        "no timestamp or transaction choice changes who produces next",
      );
      assert.ok(attackerSlots <= 300 / 6 + 3, `the attacker held round 0 at ${attackerSlots} of 300 heights`);
      assert.ok(attackerSlots >= 300 / 6 - 3, `… and keeps its own share (${attackerSlots})`);
    }));
});

describe("private branches and side storage", () => {
  test("a private branch by 1 key of 6 does not replace an honest chain of round-0 blocks", () =>
    withHarness(async (honest) => {
      const priv = new ChainHarness(genesis, [attacker]);
      try {
        for (let i = 0; i < 60; i++) honest.mine();
        const honestTip = honest.chain.tip;
        // The attacker alone builds 60 blocks from the genesis, at the round the schedule gives it
        // at each height, and grinds: of 12 timestamps for each block it keeps the one that gives
        // it the lowest round at the next height (with a parent-hash schedule that bought round 0
        // at every height, equal work, and a ground low tip hash to win the tie).
        const branch: Block[] = [];
        for (let i = 0; i < 60; i++) {
          const round = roundOf(priv, attacker.publicKey);
          const slot = slotStart(priv.chain.params, priv.chain.tip.timestamp, round);
          let best: { b: Block; next: number } | null = null;
          for (let t = 0; t < 12; t++) {
            const b = priv.makeBlock({ round, timestamp: slot + t });
            priv.clock.set(Math.max(priv.clock.now(), b.header.timestamp));
            if (priv.chain.processBlock(b).status !== "connected") continue;
            const next = roundOf(priv, attacker.publicKey);
            if (!best || next < best.next) best = { b, next };
            priv.chain.disconnectTip();
          }
          priv.chain.processBlock(best!.b);
          branch.push(best!.b);
        }
        const privTip = priv.chain.tip;
        assert.ok(privTip.work < honestTip.work, "the private branch has less work");
        honest.clock.set(Math.max(honest.clock.now(), privTip.timestamp));
        const statuses = branch.map((b) => honest.chain.processBlock(b).status);
        assert.ok(!statuses.includes("reorged"), statuses.join(","));
        assert.ok(honest.chain.tip.hash.equals(honestTip.hash), "honest nodes keep their chain");
        const rounds = branch.map((b) => b.header.round);
        assert.ok(
          rounds.filter((r) => r === 0).length <= 60 / 6 + 3,
          "the attacker's round-0 blocks are only its share",
        );
      } finally {
        await priv.close();
      }
    }));

  test("a flood of side blocks is bounded: junk on an old parent is not stored; one block per slot at the tip", () =>
    withHarness((h) => {
      for (let i = 0; i < 40; i++) h.mine();
      const sizeOfSide = (): number => {
        let bytes = 0;
        for (const { hash } of h.chain.storage.iterateSide())
          bytes += h.chain.storage.getBlockBytes(hash)?.length ?? 0;
        return bytes;
      };
      const before = sizeOfSide();
      // 40 valid, signed, heavy-ish side blocks on a parent 30 blocks back, each by whichever key a
      // round names (every key is ours here): their branch is 29 blocks of work behind the tip.
      const old = h.chain.getIndex(h.chain.getHashAtHeight(10)!)!;
      const payload = (i: number) =>
        makeTransfer(
          owner,
          [{ txid: sha256(Buffer.from(`junk${i}`)), index: 0 }],
          [{ to: pubkeyHash(owner.publicKey), amount: COIN }],
        );
      const statuses: string[] = [];
      for (let i = 0; i < 40; i++) {
        const b = h.makeBlock({
          parentHash: old.hash,
          round: i % 5,
          txs: Array.from({ length: 20 }, (_, j) => payload(i * 100 + j)),
        });
        const judged = h.chain.sideRefusalOf(b.header);
        const st = h.chain.processBlock(b).status;
        statuses.push(st);
        // The relay judges from the header alone, before any download; it agrees with the chain
        // (a second block for a stored slot is fetched: it is evidence).
        assert.equal(judged, st === "side-refused" ? "too-light" : null, `header verdict for a ${st} block`);
      }
      assert.equal(
        h.chain.sideRefusalOf(h.makeBlock({ round: 1 }).header),
        null,
        "a child of the tip is fetched",
      );
      // Too light to win; the round-0 ones are also the main chain's slot (evidence, not storage).
      assert.ok(
        statuses.every((st) => st === "side-refused" || st === "equivocation"),
        statuses.join(","),
      );
      assert.ok(statuses.filter((st) => st === "side-refused").length >= 32);
      assert.equal(sizeOfSide(), before, "not one byte of it stored");
      // At the tip, a producer's second block for its slot is evidence, not storage.
      const tip = h.chain.tip;
      const parent = h.chain.getIndex(tip.prevHash)!;
      const rivals = Array.from({ length: 10 }, (_, i) =>
        h.makeBlock({
          parentHash: parent.hash,
          round: 1,
          timestamp: slotStart(h.chain.params, parent.timestamp, 1) + i,
        }),
      );
      const st = rivals.map((b) => h.chain.processBlock(b).status);
      assert.equal(st.filter((x) => x === "side").length, 1, st.join(","));
      assert.equal(st.filter((x) => x === "equivocation").length, 9);
      assert.ok(sizeOfSide() - before <= 2_000, `${sizeOfSide() - before} bytes stored for ten rival blocks`);
      assert.equal(h.chain.listEvidence().length, 1, "one piece of evidence per offender");
    }));

  test("side branches that can no longer win are pruned as the tip moves on", () =>
    withHarness((h) => {
      for (let i = 0; i < 5; i++) h.mine();
      const fork = h.chain.tip;
      const side = h.makeBlock({ parentHash: fork.hash, round: 1 });
      h.mine();
      assert.equal(h.chain.processBlock(side).status, "side");
      assert.ok(h.chain.storage.hasBlock(blockHash(side.header)));
      const margin = Number(SIDE_BRANCH_WORK_MARGIN / ROUND_WEIGHT_BASE);
      for (let i = 0; i < margin + 2; i++) h.mine();
      assert.ok(
        !h.chain.storage.hasBlock(blockHash(side.header)),
        "pruned once it is more than the margin behind",
      );
      assert.equal([...h.chain.storage.iterateSide()].length, 0);
    }));
});

describe("equivocation is evidence", () => {
  test("detected, recorded, mined by the next producer; the offender leaves the schedule and the rewards; a reorg reverts it", () =>
    withHarness((h) => {
      for (let i = 0; i < 3; i++) h.mine();
      const tip = h.chain.tip;
      const offender = nextProducer(h);
      const slot = slotStart(h.chain.params, tip.timestamp, 0);
      const first = h.makeBlock({ timestamp: slot });
      const second = h.makeBlock({ timestamp: slot + 1 });
      assert.equal(h.feed(first).status, "connected");
      const r = h.feed(second);
      assert.equal(r.status, "equivocation");
      const held = h.chain.listEvidence();
      assert.equal(held.length, 1);
      assert.ok(held[0]!.evidence.a.producer.equals(offender));
      assert.equal(held[0]!.slashedAt, null);
      // The next producers put it on chain (the next block whose producer is not the offender).
      const txs = h.chain.pendingEvidenceTxs(8);
      assert.equal(txs.length, 1);
      assert.equal(txs[0]!.kind, TxKind.Evidence);
      while (nextProducer(h).equals(offender)) h.mine({ round: 1 });
      const mined = h.mine({ txs });
      const minedHeight = h.chain.height;
      assert.ok(mined.txs.some((t) => t.kind === TxKind.Evidence));
      assert.equal(h.chain.getRegistry().length, 5, "removed from the registry");
      assert.equal(h.chain.storage.slashedAt(offender), minedHeight);
      assert.equal(h.chain.listEvidence()[0]!.slashedAt, minedHeight);
      assert.equal(h.chain.pendingEvidenceTxs(8).length, 0, "nothing left to mine");
      // Out of the schedule at once, at every round, and out of the reward split.
      for (let i = 0; i < EPOCH_BLOCKS + 5; i++) {
        const s = h.chain.scheduleForChild(h.chain.tip);
        for (let round = 0; round < 6; round++) {
          assert.ok(
            !scheduledProducer(s, h.chain.height + 1, round, h.chain.getRegistry())!.operatorPubkey.equals(
              offender,
            ),
          );
        }
        const b = h.mine();
        assert.ok(!b.txs[0]!.outputs.some((o) => o.address.equals(pubkeyHash(offender))));
      }
      // The same evidence again is refused: the offender is no longer registered.
      const again = h.makeBlock({ txs: [evidenceTx(held[0]!.evidence)] });
      assert.throws(
        () => h.chain.processBlock(again),
        (e) => e instanceof BlockError && e.code === "EVIDENCE_UNKNOWN_OFFENDER",
      );
      // A reorg that takes the evidence block off the main chain reverts the removal.
      while (h.chain.height >= minedHeight) h.chain.disconnectTip();
      assert.equal(h.chain.getRegistry().length, 6, "back in the registry");
      assert.equal(h.chain.storage.slashedAt(offender), undefined);
    }));

  test("timed verify replays the slashing and catches a stored slashed-key set that differs", async () => {
    const t = tempDir();
    const h = new ChainHarness(genesis, mns, t.dir);
    try {
      for (let i = 0; i < 3; i++) h.mine();
      const offender = nextProducer(h);
      const slot = slotStart(h.chain.params, h.chain.tip.timestamp, 0);
      const [a, b] = [h.makeBlock({ timestamp: slot }), h.makeBlock({ timestamp: slot + 1 })];
      h.feed(a);
      h.feed(b);
      while (nextProducer(h).equals(offender)) h.mine({ round: 1 });
      h.mine({ txs: h.chain.pendingEvidenceTxs(8) });
      const at = h.chain.storage.slashedAt(offender);
      assert.ok(at !== undefined);
      for (let i = 0; i < 3; i++) h.mine();
      await h.chain.close();
      const ok = await verifyChain(t.dir, genesis);
      assert.equal(ok.ok, true, ok.problem);
      // Forget the slashing in the stored state: the replay disagrees, and says how.
      const store = ChainStore.open(t.dir, genesis.network, h.chain.genesisHash);
      const db = (store as unknown as { db: { removeSync(k: Buffer): void } }).db;
      db.removeSync(Buffer.concat([Buffer.from("z"), offender]));
      await store.close();
      const bad = await verifyChain(t.dir, genesis);
      assert.equal(bad.ok, false);
      assert.match(bad.problem ?? "", /stored slashed keys \(none\) differ from replay \([0-9a-f]{16}@\d+\)/);
    } finally {
      t.cleanup();
    }
  });

  test("a slashed Bronze masternode's collateral is burned, and its key can never register again", () =>
    withHarness((h) => {
      const op = testKey("safety-bronze-op", 0);
      const [collateral, coll2] = h.genesisCoins(owner).filter((c) => c.amount === BRONZE);
      const fee = h.genesisCoins(owner).filter((c) => c.amount === 50n * COIN);
      const register = (coin: typeof collateral, feeCoin: (typeof fee)[number]) =>
        makeRegisterTx({
          ownerKey: owner,
          operatorKey: op,
          address: "127.0.9.9:24200",
          tier: Tier.Bronze,
          rewardAddress: pubkeyHash(op.publicKey),
          collateral: coin!.outpoint,
          inputs: [feeCoin.outpoint],
          outputs: [{ amount: feeCoin.amount - COIN, address: pubkeyHash(owner.publicKey) }],
        });
      h.mine({ txs: [register(collateral, fee[0]!)], fees: COIN });
      h.addProducer(op);
      // Its weight (Bronze) gives it most slots from the next epoch on.
      while (!nextProducer(h).equals(op.publicKey)) h.mine();
      assert.ok(h.chain.height >= EPOCH_BLOCKS, "scheduled only from the next epoch");
      const tip = h.chain.tip;
      const slot = slotStart(h.chain.params, tip.timestamp, 0);
      const a = h.makeBlock({ timestamp: slot });
      const b = h.makeBlock({ timestamp: slot + 1 });
      h.feed(a);
      h.feed(b);
      assert.ok(h.chain.storage.getUtxo(collateral!.outpoint), "the collateral is unspent before");
      while (nextProducer(h).equals(op.publicKey)) h.mine({ round: 1 });
      h.mine({ txs: h.chain.pendingEvidenceTxs(8) });
      assert.equal(h.chain.storage.getUtxo(collateral!.outpoint), undefined, "burned with the slashing");
      // A new registration of the same operator key, with fresh collateral: refused for good.
      const again = register(coll2, fee[1]!);
      const blk = h.makeBlock({ txs: [again], fees: COIN });
      assert.throws(
        () => h.chain.processBlock(blk),
        (e) => e instanceof BlockError && e.code === "MN_SLASHED_OPERATOR",
      );
    }));
});

describe("recovery at open", () => {
  test("a crash between storing a better side block and switching to it: reopening switches; sending it again switches", async () => {
    const t = tempDir();
    try {
      const h = new ChainHarness(genesis, mns, t.dir);
      for (let i = 0; i < 4; i++) h.mine({ round: 1 });
      const fork = h.chain.getIndex(h.chain.getHashAtHeight(2)!)!;
      // A better branch from height 2: two round-0 blocks outweigh two round-1 blocks plus one.
      const b3 = h.makeBlock({ parentHash: fork.hash });
      const e3 = storeWithoutSwitching(h, b3, fork);
      const b4 = h.makeBlockOn(b3);
      const e4 = storeWithoutSwitching(h, b4, e3);
      const b5 = h.makeBlockOn(b4);
      storeWithoutSwitching(h, b5, e4);
      const oldTip = h.chain.tip;
      await h.close();
      // "Crash": the better blocks are on disk, the tip is not; the node opens again.
      const reopened = Chain.open(t.dir, genesis, { clock: new ManualClock(h.clock.now()) });
      try {
        assert.ok(reopened.tip.hash.equals(blockHash(b5.header)), "fork choice ran at open");
        assert.ok(!reopened.tip.hash.equals(oldTip.hash));
        assert.equal(reopened.height, 5);
      } finally {
        await reopened.close();
      }
    } finally {
      t.cleanup();
    }
  });

  test("a better block already stored, sent again, triggers the switch", () =>
    withHarness((h) => {
      for (let i = 0; i < 3; i++) h.mine({ round: 1 });
      const fork = h.chain.getIndex(h.chain.getHashAtHeight(1)!)!;
      const b2 = h.makeBlock({ parentHash: fork.hash });
      const e2 = storeWithoutSwitching(h, b2, fork);
      const b3 = h.makeBlockOn(b2);
      storeWithoutSwitching(h, b3, e2);
      const r = h.chain.processBlock(b3);
      assert.equal(r.status, "reorged");
      assert.ok(h.chain.tip.hash.equals(blockHash(b3.header)));
    }));
});

/** Writes a block as a stored side block, as processBlock does just before it would switch. */
function storeWithoutSwitching(h: ChainHarness, b: Block, parent: BlockIndex): BlockIndex {
  const entry: BlockIndex = {
    hash: blockHash(b.header),
    height: b.header.height,
    prevHash: b.header.prevHash,
    timestamp: b.header.timestamp,
    round: b.header.round,
    producer: b.header.producer,
    mnRoot: b.header.mnRoot,
    work: parent.work + blockWork(b.header.round),
    size: encodeBlock(b).length,
    txCount: b.txs.length,
  };
  h.clock.set(Math.max(h.clock.now(), b.header.timestamp));
  const s = h.chain.storage;
  s.atomically(() => s.putBlock(entry, encodeBlock(b), true));
  return entry;
}
