/**
 * sybil: a Byzantine masternode operator buys Sybils, up to what it can pay for and always under a
 * third of the weight with them (the bound the consensus-safety rules are built for).
 *
 * The genesis masternodes are Silver (weight 10,000 each), so that Bronze Sybils (1,000 each)
 * stay a minority, and the genesis gives the operator's owner key OWNER_BUDGET TIME. One
 * masternode turns Byzantine at the start: it never produces an honest block again. Then:
 * 1. it splits its coins into 1,000-TIME collaterals (one transaction, through its own node);
 * 2. at its next round-0 slot it signs a block holding all its Bronze registrations, more than
 *    R18 allows in one block, and hands it to every honest node; then it submits all of them at
 *    once, through its own node, to the mempools;
 * 3. once they are registered, Free registrations: sent to every honest node as over RPC
 *    (sendrawtransaction), put in a block of its own at its next round-0 slot (handed to every
 *    honest node), and announced and served over P2P by its own node.
 *
 * Expected: every honest node refuses the over-cap block (MN_TOO_MANY_REGISTRATIONS) and every
 * Free registration (MN_FREE_TIER: refused at submission, the block refused, never pooled); no
 * main-chain block holds more than 8 registrations or a Free one, and the registry grows by at
 * most 8 a block; every Bronze Sybil ends up registered; none is the round-0 producer of a height
 * before the first epoch whose anchor is at or after its registration (so never in the epoch it
 * registered in), and from that epoch on each member's round-0 count over 4 epochs is within 3 of
 * its weight's share (the share bound, on the registry the honest chain built); the honest nodes
 * keep producing and end on one tip.
 */
import type { Chain } from "../../../src/chain/chain.js";
import type { BlockIndex } from "../../../src/chain/storeLayout.js";
import { buildBlock } from "../../../src/consensus/blockBuilder.js";
import { findByOperator, type Registry } from "../../../src/consensus/registry.js";
import {
  MAX_REGISTRATIONS_PER_BLOCK,
  buildSignedTx,
  decodeRegisterPayload,
  makeRegisterTx,
} from "../../../src/consensus/registryTx.js";
import {
  EPOCH_BLOCKS,
  anchorHeightOf,
  consensusWeight,
  epochOf,
  nextSchedule,
  scheduledProducer,
  slotStart,
  type EpochSchedule,
} from "../../../src/consensus/schedule.js";
import { TIER_COLLATERAL, TIER_WEIGHT, Tier } from "../../../src/consensus/tier.js";
import { addressFromPubkey, pubkeyHash } from "../../../src/crypto/address.js";
import { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import { MempoolError } from "../../../src/mempool/errors.js";
import { blockHash, type Block } from "../../../src/primitives/block.js";
import { COIN } from "../../../src/primitives/constants.js";
import { TxKind, txid, type OutPoint, type Tx } from "../../../src/primitives/tx.js";
import { handIn } from "../adversary.js";
import type { Scenario } from "../scenario.js";
import type { SimNode, Simulator } from "../simulator.js";
import { expectProgress, finalAgreement, pick } from "./common.js";

/** The operator's owner key: fixed, so the genesis allocation can name it in the defaults. */
const OWNER = KeyPair.fromSeed(sha256(Buffer.from("sim-sybil-owner")));
const OWNER_HASH = pubkeyHash(OWNER.publicKey);
/** Registrations its budget pays for (the weight bound may allow fewer). */
const MAX_SYBILS = 24;
const COLLATERAL = TIER_COLLATERAL[Tier.Bronze];
/** One coin per registration for its fee (a registration must not spend its own collateral). */
const FEE_COIN = COIN;
const TX_FEE = 100_000n;
const OWNER_BUDGET = BigInt(MAX_SYBILS) * (COLLATERAL + FEE_COIN) + COIN;
/** Epochs over which the share bound is checked once the Sybils are members. */
const SHARE_EPOCHS = 4;

/** What the last sybil run saw (the test prints it). */
export interface SybilOutcome {
  attacker: string;
  sybils: number;
  registeredAt: number[];
  /** The heights of the blocks that carried registrations, with how many each. */
  registrationBlocks: Record<number, number>;
  /** Sybil round-0 heights on the honest chain; the newcomers' first epoch. */
  sybilRoundZero: number[];
  firstEpoch: number;
  /** The coalition's weight share and its round-0 share over SHARE_EPOCHS epochs from firstEpoch. */
  weightShare: number;
  roundZeroShare: number;
  /** How honest nodes answered each attack, by rule or result. */
  refused: Record<string, number>;
  /** Honest peers that fetched the Free registration from the attacker's node; how many banned it. */
  servedOverP2p: number;
  bannedBy: number;
}
export let lastSybil: SybilOutcome | null = null;

const hex = (b: Buffer): string => b.toString("hex");

/** Runs until `n`'s key holds round 0 at the child of its tip and that slot has begun on its clock. */
async function ownRoundZero(sim: Simulator, n: SimNode, what: string): Promise<BlockIndex> {
  const key = n.operatorKey!.publicKey;
  const isMine = (): boolean => {
    const c = n.n.chain;
    const tip = c.tip;
    const p = scheduledProducer(c.scheduleForChild(tip), tip.height + 1, 0, c.registryAfter(tip)!);
    return !!p?.operatorPubkey.equals(key) && n.clock!.now() >= slotStart(c.params, tip.timestamp, 0);
  };
  const members = n.n.chain.getRegistry().length;
  await sim.runUntil(
    `${n.name}'s next round-0 slot (${what})`,
    isMine,
    (3 * members + 4) * sim.opts.blockTimeMs,
  );
  return n.n.chain.tip;
}

/** Hands `block` to every honest node; each must refuse it for `rule`. */
function handInAll(sim: Simulator, block: Block, rule: string, refused: Record<string, number>): void {
  for (const h of sim.honestRunning()) {
    const what = handIn(h, block);
    refused[`block ${what}`] = (refused[`block ${what}`] ?? 0) + 1;
    if (what !== rule) throw new Error(`${h.name} took the attacker's block as ${what}, not ${rule}`);
  }
}

/** The block the attacker signs at its slot on `parent`, carrying `txs` (fees by the UTXO set). */
function ownBlock(n: SimNode, parent: BlockIndex, txs: Tx[], fees: bigint): Block {
  return buildBlock({
    parentHash: parent.hash,
    parentHeight: parent.height,
    registry: n.n.chain.registryAfter(parent)!,
    producer: n.operatorKey!,
    round: 0,
    timestamp: n.clock!.now(),
    txs,
    fees,
    eraProofInput: n.n.chain.finality.eraProofInputForChild(parent),
  });
}

/** Round-0 producers over `epochs` epochs from `s`, with the registry fixed after each anchor. */
function roundZeroCounts(s: EpochSchedule, registry: Registry, epochs: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let e = 0; e < epochs; e++) {
    for (const i of s.sequence) {
      const k = hex(s.members[i]!.operatorPubkey);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    s = nextSchedule(s, registry);
  }
  return counts;
}

/** The schedule of `epoch` on `chain`: its own if its anchor is on the main chain, else projected. */
function scheduleOf(chain: Chain, epoch: number): EpochSchedule {
  const anchor = anchorHeightOf(epoch);
  if (chain.height >= anchor) return chain.scheduleAt(chain.getIndex(chain.getHashAtHeight(anchor)!)!);
  let s = chain.scheduleForChild(chain.tip);
  for (let i = 0; i < epoch && s.epoch < epoch; i++) s = nextSchedule(s, chain.getRegistry());
  return s;
}

export const sybil: Scenario = {
  name: "sybil",
  summary: "a Byzantine operator registers Sybils: Bronze ones in bulk, over the block cap, and Free ones",
  defaults: {
    genesisTier: "silver",
    allocations: [{ address: addressFromPubkey(OWNER.publicKey, "devnet"), amount: OWNER_BUDGET }],
  },
  async run(sim, ctx) {
    const bt = sim.opts.blockTimeMs;
    const end = sim.clock.now() + ctx.durationMs;
    if (ctx.durationMs < 30 * bt) throw new Error("sybil wants at least 30 block times (--blocks)");
    await sim.run(2 * bt);
    const [attacker] = pick(sim, sim.masternodes(), 1);
    const mine = attacker!;
    mine.honest = false;
    mine.n.producer?.stop();
    const chain = mine.n.chain;
    const genesisRegistry = chain.registryAfter(chain.getIndex(chain.genesisHash)!)!;
    // As many as the budget pays for, while the operator stays under a third of the weight.
    const total = genesisRegistry.reduce((a, e) => a + consensusWeight(e), 0);
    const own = consensusWeight(findByOperator(genesisRegistry, mine.operatorKey!.publicKey)!);
    const bronze = Number(TIER_WEIGHT[Tier.Bronze]);
    const count = Math.min(MAX_SYBILS, Math.ceil((total - 3 * own) / (2 * bronze)) - 1);
    if (count <= MAX_REGISTRATIONS_PER_BLOCK)
      throw new Error(
        `sybil wants more masternodes: under a third of the weight it may register ${count}, not more than one block's ${MAX_REGISTRATIONS_PER_BLOCK}`,
      );
    const refused: Record<string, number> = {};
    sim.record(`sybil ${mine.index} registers ${count}`);

    // 1. Collaterals: split the genesis allocation (output 0 of the genesis coinbase).
    const genesisCoinbase = chain.getBlock(chain.genesisHash)!.txs[0]!;
    const budget = genesisCoinbase.outputs[0];
    if (!budget?.address.equals(OWNER_HASH) || budget.amount !== OWNER_BUDGET)
      throw new Error("the genesis does not hold the sybil operator's budget (Simulator allocations)");
    const change = OWNER_BUDGET - BigInt(count) * (COLLATERAL + FEE_COIN) - TX_FEE;
    const split = buildSignedTx(
      TxKind.Transfer,
      Buffer.alloc(0),
      [{ txid: txid(genesisCoinbase), index: 0 }],
      [
        ...Array.from({ length: count }, () => ({ amount: COLLATERAL, address: OWNER_HASH })),
        ...Array.from({ length: count }, () => ({ amount: FEE_COIN, address: OWNER_HASH })),
        { amount: change, address: OWNER_HASH },
      ],
      OWNER,
    );
    const splitId = txid(split);
    mine.n.txRelay.submitLocal(split);
    const honestHas = (id: Buffer): boolean =>
      sim.honestRunning().every((h) => {
        const loc = h.n.chain.storage.getTxLocation(id);
        const at = loc && h.n.chain.getIndex(loc.blockHash);
        return !!at && h.n.chain.isMain(at);
      });
    await sim.runUntil("the collaterals are confirmed", () => honestHas(splitId), 8 * bt);

    // 2. Bronze Sybils: one block of its own with all of them, then all at once to the mempools.
    const out = (index: number): OutPoint => ({ txid: splitId, index });
    const sybils = Array.from({ length: count }, (_, i) =>
      KeyPair.fromSeed(sha256(Buffer.from(`sim-${sim.opts.seed}-sybil-${i}`))),
    );
    const registrations = sybils.map((operatorKey, i) =>
      makeRegisterTx({
        ownerKey: OWNER,
        operatorKey,
        // Hosts nobody listens on: the Sybils are silent, as bought weight needs no node.
        address: `10.254.${i}.1:24200`,
        tier: Tier.Bronze,
        rewardAddress: OWNER_HASH,
        collateral: out(i),
        inputs: [out(count + i)],
        outputs: [{ amount: FEE_COIN - TX_FEE, address: OWNER_HASH }],
      }),
    );
    let parent = await ownRoundZero(sim, mine, "over the registration cap");
    const overCap = ownBlock(mine, parent, registrations, BigInt(count) * TX_FEE);
    handInAll(sim, overCap, "MN_TOO_MANY_REGISTRATIONS", refused);
    for (const tx of registrations) mine.n.txRelay.submitLocal(tx);
    const registered = (h: SimNode): boolean => {
      const reg = h.n.chain.getRegistry();
      return sybils.every((k) => findByOperator(reg, k.publicKey) !== undefined);
    };
    const blocksNeeded = Math.ceil(count / MAX_REGISTRATIONS_PER_BLOCK);
    await sim.runUntil(
      `all ${count} Sybils registered on every honest node`,
      () => sim.honestRunning().every(registered),
      (2 * blocksNeeded + 8) * bt,
    );

    // 3. Free Sybils: over RPC to every honest node, in a block of its own, and over P2P.
    const freeKey = KeyPair.fromSeed(sha256(Buffer.from(`sim-${sim.opts.seed}-sybil-free`)));
    const free = makeRegisterTx({
      ownerKey: OWNER,
      operatorKey: freeKey,
      address: "10.254.255.1:24200",
      tier: Tier.Free,
      rewardAddress: OWNER_HASH,
      collateral: null,
      inputs: [out(2 * count)],
      outputs: [{ amount: change - TX_FEE, address: OWNER_HASH }],
    });
    const freeId = txid(free);
    for (const h of sim.honestRunning()) {
      let rule = "accepted";
      try {
        h.n.txRelay.submitLocal(free);
      } catch (e) {
        if (!(e instanceof MempoolError)) throw e;
        rule = e.ruleCode ?? e.code;
      }
      refused[`rpc ${rule}`] = (refused[`rpc ${rule}`] ?? 0) + 1;
      if (rule !== "MN_FREE_TIER")
        throw new Error(
          `${h.name} answered a Free registration submitted to it with ${rule}, not MN_FREE_TIER`,
        );
    }
    parent = await ownRoundZero(sim, mine, "a Free registration");
    const freeBlock = ownBlock(mine, parent, [free], TX_FEE);
    handInAll(sim, freeBlock, "MN_FREE_TIER", refused);
    // Its own node serves the Free registration to whoever asks, and announces it to every peer.
    const relay = mine.n.txRelay;
    const serve = relay.onGetTxs.bind(relay);
    let served = 0;
    relay.onGetTxs = (ids, peer) => {
      if (!ids.some((id) => id.equals(freeId))) return serve(ids, peer);
      served++;
      return [...serve(ids, peer), free];
    };
    relay.announce(freeId);
    await sim.run(Math.max(0, end - sim.clock.now()));
    expectProgress(sim, ctx, 0.5);
    await finalAgreement(sim, 6 * bt);
    if (served === 0) throw new Error(`no peer of ${mine.name} fetched the Free registration it announced`);

    // 4. What the honest chain holds.
    const sybilKeys = new Set(sybils.map((k) => hex(k.publicKey)));
    const registrationBlocks: Record<number, number> = {};
    const sybilRoundZero = new Set<number>();
    const registeredAt = new Map<string, number>();
    for (const h of sim.honestRunning()) {
      const c = h.n.chain;
      if (c.getIndex(blockHash(overCap.header)) || c.getIndex(blockHash(freeBlock.header)))
        throw new Error(`${h.name} stored a block the rules refuse`);
      if (h.n.mempool.has(freeId) || c.storage.getTxLocation(freeId))
        throw new Error(`${h.name} holds the Free registration`);
      const reg = c.getRegistry();
      if (findByOperator(reg, freeKey.publicKey)) throw new Error(`${h.name} registered a Free Sybil`);
      if (reg.length !== genesisRegistry.length + count)
        throw new Error(`${h.name}'s registry holds ${reg.length}, not ${genesisRegistry.length} + ${count}`);
      for (const e of reg)
        if (sybilKeys.has(hex(e.operatorPubkey))) registeredAt.set(hex(e.operatorPubkey), e.registeredHeight);
      let prev = c.getIndex(c.genesisHash)!;
      for (let y = 1; y <= c.height; y++) {
        const at = c.getIndex(c.getHashAtHeight(y)!)!;
        const block = c.getBlock(at.hash)!;
        const regs = block.txs.filter((t) => t.kind === TxKind.MasternodeRegister);
        if (regs.length > MAX_REGISTRATIONS_PER_BLOCK)
          throw new Error(`${h.name} block ${y} holds ${regs.length} registrations`);
        if (regs.some((t) => decodeRegisterPayload(t.payload).tier === Tier.Free))
          throw new Error(`${h.name} block ${y} holds a Free registration`);
        if (regs.length > 0) registrationBlocks[y] = regs.length;
        const before = c.registryAfter(prev)!;
        const after = c.registryAfter(at)!;
        if (after.length - before.length > MAX_REGISTRATIONS_PER_BLOCK)
          throw new Error(`${h.name}'s registry grew by ${after.length - before.length} at block ${y}`);
        // A newcomer holds round 0 only from the first epoch whose anchor is at or after its
        // registration: never in the epoch it registered in.
        const p = scheduledProducer(c.scheduleForChild(prev), y, 0, before)!;
        if (sybilKeys.has(hex(p.operatorPubkey))) {
          sybilRoundZero.add(y);
          if (anchorHeightOf(epochOf(y)) < p.registeredHeight)
            throw new Error(
              `${h.name}: a Sybil registered at ${p.registeredHeight} holds round 0 at ${y}, in epoch ${epochOf(y)}`,
            );
        }
        prev = at;
      }
    }

    // 5. From the newcomers' first epoch on, round 0 follows weight: each member within 3 of its
    // share over SHARE_EPOCHS epochs (docs/CONSENSUS.md, the share bound), on this registry.
    const c = sim.honestRunning()[0]!.n.chain;
    // Each Sybil is a member of the schedule from the first epoch anchored at or after its
    // registration, and not of the one before (the epoch it registered in).
    const schedules = new Map<number, EpochSchedule>();
    const scheduleAt = (e: number): EpochSchedule => {
      if (!schedules.has(e)) schedules.set(e, scheduleOf(c, e));
      return schedules.get(e)!;
    };
    for (const [k, at] of registeredAt) {
      const first = Math.ceil(at / EPOCH_BLOCKS);
      const member = (e: number): boolean => scheduleAt(e).members.some((m) => hex(m.operatorPubkey) === k);
      if (member(first - 1) || !member(first))
        throw new Error(`a Sybil registered at ${at} is not a member from epoch ${first} on, exactly`);
    }
    const lastRegistered = Math.max(...registeredAt.values());
    const firstEpoch = Math.ceil(lastRegistered / EPOCH_BLOCKS);
    const registry = c.getRegistry();
    const counts = roundZeroCounts(scheduleOf(c, firstEpoch), registry, SHARE_EPOCHS);
    const weight = registry.reduce((a, e) => a + consensusWeight(e), 0);
    const heights = SHARE_EPOCHS * EPOCH_BLOCKS;
    let coalitionSlots = 0;
    let coalitionWeight = 0;
    for (const e of registry) {
      const k = hex(e.operatorPubkey);
      const got = counts.get(k) ?? 0;
      const fair = (heights * consensusWeight(e)) / weight;
      if (Math.abs(got - fair) > 3)
        throw new Error(
          `${e.operatorPubkey.toString("hex").slice(0, 12)} holds round 0 ${got} times of ${heights}, its weight ${fair.toFixed(1)}`,
        );
      if (sybilKeys.has(k) || e.operatorPubkey.equals(mine.operatorKey!.publicKey)) {
        coalitionSlots += got;
        coalitionWeight += consensusWeight(e);
      }
    }
    lastSybil = {
      attacker: mine.name,
      sybils: count,
      registeredAt: [...new Set(registeredAt.values())].sort((a, b) => a - b),
      registrationBlocks,
      sybilRoundZero: [...sybilRoundZero].sort((a, b) => a - b),
      firstEpoch,
      weightShare: coalitionWeight / weight,
      roundZeroShare: coalitionSlots / heights,
      refused,
      servedOverP2p: served,
      bannedBy: sim
        .honestRunning()
        .filter((h) =>
          h.n.peers.listBanned().some((b) => b.subject === mine.nodeId || b.subject === mine.host),
        ).length,
    };
  },
};
