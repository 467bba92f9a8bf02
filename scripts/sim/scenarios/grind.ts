/**
 * grind: a coalition of masternodes below a third of the weight (the bound the consensus-safety
 * rules are built for) tries to rewrite a confirmed payment with a private branch.
 *
 * Once the coalition's first rewards are mature, its lead pays an honest masternode (the
 * merchant) and waits for CONFIRMATIONS confirmations on every honest node. Then the coalition
 * goes private: its members stop producing on the public chain (withholding), each is cut off
 * from everyone else, and the lead's own node rewinds to the block before the payment and builds
 * a branch there. The branch spends the payment's coins back to the lead (a double spend); each
 * of its blocks is signed with whichever coalition key the schedule names at the lowest round
 * (never a slot a coalition key already signed, which would be equivocation), stamped as early as
 * its slot and every node's clock allow, and ground over GRIND_TRIES timestamps for the smallest
 * hash (the only thing block content can still buy: the tie-break of equal work). The lead's node
 * connects every block, so the branch is valid by the production rules. The coalition watches
 * the public chain and releases the branch while honest nodes would still store and weigh it
 * (before one more honest block puts it out of the side margin), or else AFTER_RELEASE_BLOCKS
 * block times before the end: the partition heals, so the lead's node announces and serves it,
 * and every branch block is also handed to every honest node (as if sent to each), in order.
 *
 * Expected: no honest node ever has a branch block as its tip, the honest tip at the release stays
 * on every honest node's main chain, the payment stays in its block and the double spend in none,
 * each coalition key held round 0 on the branch within 3 of its weight's share of the heights
 * (docs/CONSENSUS.md, the share bound), production goes on, and the honest nodes end on one tip.
 */
import { SIDE_BRANCH_WORK_MARGIN } from "../../../src/chain/chain.js";
import type { BlockIndex } from "../../../src/chain/storeLayout.js";
import { buildBlock } from "../../../src/consensus/blockBuilder.js";
import { findByOperator } from "../../../src/consensus/registry.js";
import { buildSignedTx } from "../../../src/consensus/registryTx.js";
import { consensusWeight, scheduledProducer, slotStart } from "../../../src/consensus/schedule.js";
import { addressFromPubkey, pubkeyHash } from "../../../src/crypto/address.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { COIN, ROUND_WEIGHT_BASE } from "../../../src/primitives/constants.js";
import { TxKind, txid } from "../../../src/primitives/tx.js";
import { handIn } from "../adversary.js";
import type { Scenario } from "../scenario.js";
import type { SimNode } from "../simulator.js";
import { expectProgress, finalAgreement, pick } from "./common.js";

/** Confirmations the payment has on every honest node when the coalition goes private. */
const CONFIRMATIONS = 2;
/** Timestamps tried per private block. */
const GRIND_TRIES = 32;
const PAYMENT = COIN;
const DOUBLE_SPEND_FEE = 1_000n;
/** Block times left after the release for the honest nodes to show they kept their chain. */
const AFTER_RELEASE_BLOCKS = 6;
/** A real branch: the double spend and at least one block on top of it. */
const MIN_BRANCH = 2;
/** A bound on the private branch (it gets far fewer: every block waits for its slot). */
const MAX_BRANCH = 1_000;

/** What the last grind run saw (the test prints it). */
export interface GrindOutcome {
  coalition: string[];
  forkHeight: number;
  paymentHeight: number;
  releaseHeight: number;
  branch: number;
  rounds: number[];
  tries: number;
  /** Whether it released while its branch could still be stored (else at the end). */
  early: boolean;
  /** How the honest nodes took the branch blocks handed to them, by result or rule. */
  handedIn: Record<string, number>;
  /** Reorgs the honest nodes made after the release (none of them onto the branch). */
  honestReorgs: number[];
}
export let lastGrind: GrindOutcome | null = null;

const hex = (b: Buffer): string => b.toString("hex");

export const grind: Scenario = {
  name: "grind",
  summary: "a coalition under a third of the weight grinds a private branch to undo a confirmed payment",
  async run(sim, ctx) {
    const bt = sim.opts.blockTimeMs;
    const end = sim.clock.now() + ctx.durationMs;
    const mns = sim.masternodes();
    // The most masternodes that stay under a third (all weigh the same in the sim's genesis).
    const count = Math.ceil(mns.length / 3) - 1;
    if (count < 1) throw new Error("grind wants at least 4 masternodes (--masternodes)");
    if (ctx.durationMs < 30 * bt) throw new Error("grind wants at least 30 block times (--blocks)");
    const coalition = pick(sim, mns, count);
    const lead = coalition[0]!;
    const leadKey = lead.operatorKey!;
    const others = sim.nodes.filter((n) => !coalition.includes(n));
    const params = lead.n.chain.params;

    // 1. Honest running until the lead's first rewards are mature, then a payment to a merchant.
    await sim.runUntil(
      "the coalition's first rewards mature",
      () => lead.n.chain.height >= params.coinbaseMaturity + 2,
      (params.coinbaseMaturity + 10) * bt,
    );
    const merchant = mns.find((n) => !coalition.includes(n))!;
    const pay = lead.n.wallet.createAndSend(
      addressFromPubkey(merchant.operatorKey!.publicKey, params.network),
      PAYMENT,
    );
    sim.record(`grind pay ${hex(pay.txid)}`);
    const confirmedOn = (n: SimNode): BlockIndex | null => {
      const loc = n.n.chain.storage.getTxLocation(pay.txid);
      const at = loc && n.n.chain.getIndex(loc.blockHash);
      return at && n.n.chain.isMain(at) && n.n.chain.height - at.height + 1 >= CONFIRMATIONS ? at : null;
    };
    await sim.runUntil(
      `the payment has ${CONFIRMATIONS} confirmations on every honest node`,
      () => others.every((n) => confirmedOn(n) !== null),
      (CONFIRMATIONS + 12) * bt,
    );
    const paid = confirmedOn(merchant)!;
    const fork = merchant.n.chain.getIndex(paid.prevHash)!;

    // 2. Private: withhold on the public chain, cut every member off, rewind the lead to the fork.
    for (const n of coalition) {
      n.honest = false;
      n.n.producer?.stop();
    }
    sim.record(`grind coalition ${coalition.map((n) => n.index).join(",")} fork ${fork.height}`);
    sim.partition([...coalition.map((n) => [n]), others]);
    const chain = lead.n.chain;
    for (let i = 0; i < MAX_BRANCH && chain.height > fork.height; i++) chain.disconnectTip();
    if (!chain.tip.hash.equals(fork.hash))
      throw new Error(`${lead.name} does not hold the honest block ${fork.height} it forks from`);
    // The payment's coins, spent again to the lead itself: they are all rewards of the lead's
    // key from blocks below the fork (the wallet spends confirmed coins only).
    if (!pay.tx.inputs.every((i) => i.pubkey.equals(leadKey.publicKey)))
      throw new Error("the payment spends coins of another key than the lead's operator key");
    const spent = pay.tx.outputs.reduce((a, o) => a + o.amount, 0n) + pay.fee;
    const double = buildSignedTx(
      TxKind.Transfer,
      Buffer.alloc(0),
      pay.tx.inputs.map((i) => i.prevout),
      [{ amount: spent - DOUBLE_SPEND_FEE, address: pubkeyHash(leadKey.publicKey) }],
      leadKey,
    );
    const keys: KeyPair[] = coalition.map((n) => n.operatorKey!);
    const signedBefore = (k: KeyPair, height: number, round: number): boolean =>
      coalition.some((n) => n.n.chain.storage.getSlot(k.publicKey, height, round) !== undefined);
    // A stamp every node's clock accepts now: drift ahead of the slowest clock, with a margin.
    const ahead = params.maxFutureDriftMs - 2 * sim.opts.maxSkewMs - 100;
    const releaseAt = end - AFTER_RELEASE_BLOCKS * bt;
    const branch: Block[] = [];
    const rounds: number[] = [];
    const roundZero = new Map<string, number>();
    let tries = 0;
    let weightShare = new Map<string, number>();
    // The coalition watches the public chain (listening needs no announcing) and releases while
    // honest nodes still store its branch: before one more honest round-0 block would put its
    // first block out of the side margin (too light to be weighed at all).
    const lastChance = (): boolean => {
      if (branch.length < MIN_BRANCH) return false;
      const first = chain.getIndex(blockHash(branch[0]!.header))!;
      const honestWork = others.reduce((m, n) => (n.running && n.tip.work > m ? n.tip.work : m), 0n);
      return honestWork + ROUND_WEIGHT_BASE > first.work + SIDE_BRANCH_WORK_MARGIN;
    };
    let early = false;
    build: for (let i = 0; i < MAX_BRANCH && sim.clock.now() < releaseAt; i++) {
      const parent = chain.tip;
      const height = parent.height + 1;
      const registry = chain.registryAfter(parent)!;
      const schedule = chain.scheduleForChild(parent);
      let key: KeyPair | null = null;
      let round = 0;
      for (; round < 2 * registry.length; round++) {
        const p = scheduledProducer(schedule, height, round, registry)!.operatorPubkey;
        key = keys.find((k) => k.publicKey.equals(p) && !signedBefore(k, height, round)) ?? null;
        if (key) break;
      }
      if (!key) throw new Error(`no coalition key holds any round at height ${height}`);
      const slot = slotStart(params, parent.timestamp, round);
      const last = Math.min(slot + GRIND_TRIES, slotStart(params, parent.timestamp, round + 1)) - 1;
      // Wait until the last stamp it will try is one every clock accepts, watching the public chain.
      for (let j = 0; j < 10 * (round + 3) && sim.clock.now() < last - ahead; j++) {
        if ((early = lastChance()) || sim.clock.now() >= releaseAt) break build;
        await sim.run(Math.min(bt / 10, last - ahead - sim.clock.now()));
      }
      const txs = branch.length === 0 ? [double] : [];
      let best: Block | null = null;
      for (let ts = slot; ts <= last; ts++) {
        const b = buildBlock({
          parentHash: parent.hash,
          parentHeight: parent.height,
          registry,
          producer: key,
          round,
          timestamp: ts,
          txs,
          fees: txs.length > 0 ? DOUBLE_SPEND_FEE : 0n,
          eraProofInput: chain.finality.eraProofInputForChild(parent),
        });
        tries++;
        if (!best || Buffer.compare(blockHash(b.header), blockHash(best.header)) < 0) best = b;
      }
      // The lead's own node validates it in full (UTXO set included) and makes it its tip.
      const res = chain.processBlock(best!);
      if (res.status !== "connected")
        throw new Error(`${lead.name} did not connect its own private block ${height}: ${res.status}`);
      branch.push(best!);
      rounds.push(round);
      if (round === 0) roundZero.set(hex(key.publicKey), (roundZero.get(hex(key.publicKey)) ?? 0) + 1);
      const total = registry.reduce((a, e) => a + consensusWeight(e), 0);
      weightShare = new Map(
        keys.map((k) => [hex(k.publicKey), consensusWeight(findByOperator(registry, k.publicKey)!) / total]),
      );
    }
    if (branch.length < MIN_BRANCH)
      throw new Error(`the coalition built only ${branch.length} private blocks: give the run more blocks`);
    if (!early) await sim.run(Math.max(0, releaseAt - sim.clock.now()));

    // 3. Release, once the honest nodes agree on a tip (the one that must stay).
    const honest = sim.honestRunning();
    const oneTip = (): boolean => honest.every((n) => n.tip.hash.equals(honest[0]!.tip.hash));
    await sim.runUntil("one honest tip before the release", oneTip, 6 * bt);
    const releaseTip = honest[0]!.tip;
    const branchHashes = new Set(branch.map((b) => hex(blockHash(b.header))));
    const adopted: string[] = [];
    const honestReorgs: number[] = [];
    for (const h of honest) {
      h.n.chain.events.on("tip", (e) => {
        if (branchHashes.has(hex(e.hash)))
          adopted.push(
            `${h.name} at height ${e.height}, ${((sim.clock.now() - sim.startMs) / 1000).toFixed(1)} s`,
          );
      });
      h.n.chain.events.on("reorg", (e) => honestReorgs.push(e.depth));
    }
    sim.record(`grind release ${branch.length} at ${releaseTip.height}`);
    sim.heal(AFTER_RELEASE_BLOCKS * bt);
    const handedIn: Record<string, number> = {};
    for (const h of honest) {
      for (const b of branch) {
        const what = handIn(h, b);
        handedIn[what] = (handedIn[what] ?? 0) + 1;
      }
    }
    await sim.run(Math.max(0, end - sim.clock.now()));
    lastGrind = {
      coalition: coalition.map((n) => n.name),
      forkHeight: fork.height,
      paymentHeight: paid.height,
      releaseHeight: releaseTip.height,
      branch: branch.length,
      early,
      rounds,
      tries,
      handedIn,
      honestReorgs,
    };

    // 4. The honest chain stands.
    if (adopted.length > 0)
      throw new Error(
        `honest nodes switched to the coalition's private branch (fork ${fork.height}, released at ${releaseTip.height}): ${adopted.join("; ")}`,
      );
    const doubleId = txid(double);
    for (const h of sim.honestRunning()) {
      const c = h.n.chain;
      const kept = c.getIndex(releaseTip.hash);
      if (!kept || !c.isMain(kept))
        throw new Error(`${h.name} left the honest tip of the release (height ${releaseTip.height})`);
      for (const b of branch) {
        const at = c.getIndex(blockHash(b.header));
        if (at && c.isMain(at)) throw new Error(`${h.name} has private block ${at.height} on its main chain`);
      }
      const loc = c.storage.getTxLocation(pay.txid);
      if (!loc?.blockHash.equals(paid.hash))
        throw new Error(`${h.name} lost the payment confirmed at height ${paid.height}`);
      if (c.storage.getTxLocation(doubleId))
        throw new Error(`${h.name} holds the coalition's double spend in a block`);
    }
    // Grinding bought no schedule: each key held round 0 on the branch within 3 of its weight's
    // share of the branch's heights (no registry change on it, so the share bound holds).
    for (const k of keys) {
      const got = roundZero.get(hex(k.publicKey)) ?? 0;
      const fair = branch.length * (weightShare.get(hex(k.publicKey)) ?? 0);
      if (got > fair + 3)
        throw new Error(
          `a coalition key held round 0 at ${got} of ${branch.length} branch heights (share ${fair})`,
        );
    }
    expectProgress(sim, ctx, 0.5);
    await finalAgreement(sim, AFTER_RELEASE_BLOCKS * bt);
  },
};
