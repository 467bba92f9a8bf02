/**
 * The chain-derived masternode registry: registration with collateral (Free entries come only from
 * the genesis), update, deregistration and removal by spending the collateral, through
 * transactions on a harness chain; every rejection with its code, in blocks and at mempool
 * admission (checkRegistryTx); reward timing (paid from the next block) and schedule timing
 * (scheduled from the next epoch); and reorgs across registrations, including a side branch whose
 * blocks are produced by a masternode that only that branch registered.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { blockHash, encodeBlock, type Block } from "../../../src/primitives/block.js";
import { buildBlock } from "../../../src/consensus/blockBuilder.js";
import type { ProcessResult } from "../../../src/chain/chain.js";
import { StoreError, type BlockIndex } from "../../../src/chain/chainStore.js";
import { BLOCK_REWARD } from "../../../src/primitives/constants.js";
import { BlockError, type BlockErrorCode } from "../../../src/primitives/errors.js";
import { TxKind, txid, type OutPoint, type Tx, type TxOut } from "../../../src/primitives/tx.js";
import { checkBlockSanity, checkTxInputs, checkTxSanity } from "../../../src/consensus/validation.js";
import { pubkeyHash } from "../../../src/crypto/address.js";
import type { KeyPair } from "../../../src/crypto/ed25519.js";
import { sha256 } from "../../../src/crypto/hash.js";
import {
  MAX_REGISTRY_SIZE,
  findByOperator,
  registryRoot,
  sortRegistry,
  type MasternodeEntry,
  type Registry,
} from "../../../src/consensus/registry.js";
import {
  MAX_REGISTRATIONS_PER_BLOCK,
  buildSignedTx,
  checkRegistryTx,
  decodeRegisterPayload,
  encodeDeregisterPayload,
  encodeRegisterPayload,
  encodeUpdatePayload,
  isServiceAddress,
  makeDeregisterTx,
  makeRegisterTx,
  makeUpdateTx,
  registerSigMessage,
  type InputSpec,
  type RegisterBody,
  type RegistryTxCheck,
} from "../../../src/consensus/registryTx.js";
import { coinbaseOutputs } from "../../../src/consensus/rewards.js";
import { EPOCH_BLOCKS, scheduledProducer, slotStart } from "../../../src/consensus/schedule.js";
import { TIER_COLLATERAL, TIER_WEIGHT, Tier } from "../../../src/consensus/tier.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
  type Coin,
} from "../../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const owner = testKey("owner", 0);
const bob = testKey("bob", 0);
const carol = testKey("carol", 0);
const ops = testKeys("op", 4);
const OWNER = pubkeyHash(owner.publicKey);
const BOB = pubkeyHash(bob.publicKey);
const CAROL = pubkeyHash(carol.publicKey);
const BRONZE = TIER_COLLATERAL[Tier.Bronze];
const SILVER = TIER_COLLATERAL[Tier.Silver];
const SMALL = 50n * COIN;
const FEE = COIN;
const NOWHERE: OutPoint = { txid: sha256(Buffer.from("no such tx")), index: 0 };

const genesis = testGenesis({
  masternodes: mns,
  funded: [
    // Enough collaterals and fee coins for a block of more than MAX_REGISTRATIONS_PER_BLOCK.
    { key: owner, amount: BRONZE, count: 10 },
    { key: owner, amount: SILVER },
    { key: owner, amount: SMALL, count: 11 },
    { key: owner, amount: BRONZE - 1n },
    { key: owner, amount: BRONZE + 1n },
    { key: bob, amount: BRONZE },
    { key: bob, amount: SMALL, count: 2 },
    { key: mns[2]!, amount: SMALL },
    { key: ops[0]!, amount: SMALL },
  ],
});

interface Funds {
  /** owner's coins of exactly 1,000 TIME. */
  big: Coin[];
  /** owner's coin of exactly 10,000 TIME. */
  silver: Coin;
  /** owner's 50 TIME coins, for fees. */
  small: Coin[];
  under: Coin;
  over: Coin;
  bobBig: Coin;
  bobSmall: Coin[];
  /** A coin of genesis masternode mns[2]. */
  mn2: Coin;
  /** A coin of ops[0] (an operator key, not an owner). */
  op0: Coin;
}

function funds(h: ChainHarness): Funds {
  const of = (key: KeyPair, amount: bigint) => h.genesisCoins(key).filter((c) => c.amount === amount);
  return {
    big: of(owner, BRONZE),
    silver: of(owner, SILVER)[0]!,
    small: of(owner, SMALL),
    under: of(owner, BRONZE - 1n)[0]!,
    over: of(owner, BRONZE + 1n)[0]!,
    bobBig: of(bob, BRONZE)[0]!,
    bobSmall: of(bob, SMALL),
    mn2: of(mns[2]!, SMALL)[0]!,
    op0: of(ops[0]!, SMALL)[0]!,
  };
}

async function withHarness(
  fn: (h: ChainHarness, f: Funds) => void | Promise<void>,
  spec = genesis,
  keys = mns,
): Promise<void> {
  const h = new ChainHarness(spec, keys);
  try {
    await fn(h, funds(h));
  } finally {
    await h.close();
  }
}

const spec = (c: Coin): InputSpec => ({ prevout: c.outpoint, key: c.key });
/** Every test transaction pays exactly FEE: its first coin comes back minus the fee. */
const payBack = (c: Coin): TxOut[] => [{ amount: c.amount - FEE, address: pubkeyHash(c.key.publicKey) }];
const serviceOf = (op: KeyPair): string => `mn-${op.publicKey.toString("hex").slice(0, 8)}.test:24200`;

function register(o: {
  op: KeyPair;
  fund: Coin;
  tier?: Tier;
  collateral?: OutPoint | null;
  ownerKey?: KeyPair;
  extraInputs?: Coin[];
  reward?: Buffer;
}): Tx {
  return makeRegisterTx({
    ownerKey: o.ownerKey ?? owner,
    operatorKey: o.op,
    address: serviceOf(o.op),
    tier: o.tier ?? Tier.Bronze,
    rewardAddress: o.reward ?? pubkeyHash(o.op.publicKey),
    collateral: o.collateral ?? null,
    inputs: [spec(o.fund), ...(o.extraInputs ?? []).map(spec)],
    outputs: [
      ...payBack(o.fund),
      ...(o.extraInputs ?? []).map((c) => ({ amount: c.amount, address: pubkeyHash(c.key.publicKey) })),
    ],
  });
}

function update(o: { op: Buffer; fund: Coin; address: string; reward: Buffer }): Tx {
  return makeUpdateTx({
    ownerKey: o.fund.key,
    operatorPubkey: o.op,
    address: o.address,
    rewardAddress: o.reward,
    inputs: [spec(o.fund)],
    outputs: payBack(o.fund),
  });
}

function deregister(op: Buffer, fund: Coin): Tx {
  return makeDeregisterTx({
    ownerKey: fund.key,
    operatorPubkey: op,
    inputs: [spec(fund)],
    outputs: payBack(fund),
  });
}

function send(c: Coin, to: Buffer): Tx {
  return makeTransfer(c.key, [c.outpoint], [{ to, amount: c.amount - FEE }]);
}

/** A raw transaction of `kind` with an arbitrary payload, funded and signed by `fund`'s key. */
function raw(kind: TxKind, payload: Buffer, fund: Coin): Tx {
  return buildSignedTx(kind, payload, [spec(fund)], payBack(fund), fund.key);
}

/** A Bronze registration of `op` owned by owner, backed by `collateral`. */
function bronzeBody(op: KeyPair, collateral: OutPoint, over: Partial<RegisterBody> = {}): RegisterBody {
  return {
    operatorPubkey: op.publicKey,
    address: serviceOf(op),
    tier: Tier.Bronze,
    rewardAddress: pubkeyHash(op.publicKey),
    collateral,
    ownerPubkey: owner.publicKey,
    ...over,
  };
}

function mineTxs(h: ChainHarness, txs: Tx[], opts: { round?: number } = {}): Block {
  return h.mine({ txs, fees: BigInt(txs.length) * FEE, ...opts });
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an exception");
}

function assertCode(e: unknown, code: BlockErrorCode): void {
  assert.ok(e instanceof BlockError, `expected BlockError ${code}, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.equal(e.banScore, 100);
}

/** Mempool admission as a pool would run it: sanity, inputs, then the registry rules. */
function poolCheck(h: ChainHarness, tx: Tx): RegistryTxCheck {
  checkTxSanity(tx);
  const height = h.chain.height + 1;
  checkTxInputs(tx, txid(tx), h.chain.storage, height, h.chain.params);
  return checkRegistryTx(tx, h.chain.getRegistry(), h.chain.storage, { height });
}

function expectPoolReject(h: ChainHarness, tx: Tx, code: BlockErrorCode): void {
  assertCode(
    thrown(() => poolCheck(h, tx)),
    code,
  );
}

/** processBlock rejects a block with `txs` with `code`; nothing changes and nothing is stored. */
function expectBlockReject(h: ChainHarness, txs: Tx[], code: BlockErrorCode): void {
  const before = h.snapshot();
  const b = h.makeBlock({ txs, fees: BigInt(txs.length) * FEE });
  assertCode(
    thrown(() => h.chain.processBlock(b)),
    code,
  );
  assert.deepEqual(h.snapshot(), before, "a rejected block leaves the chain unchanged");
  assert.equal(h.chain.storage.hasBlock(blockHash(b.header)), false, "a rejected block is not stored");
}

function expectRejectBoth(h: ChainHarness, tx: Tx, code: BlockErrorCode): void {
  expectPoolReject(h, tx, code);
  expectBlockReject(h, [tx], code);
}

/** Mines round-0 blocks until `op` produces one (at most `max` blocks); returns that block. */
function mineUntilProducedBy(h: ChainHarness, op: KeyPair, max = 80): Block {
  for (let i = 0; i < max; i++) {
    const b = h.mine();
    if (b.header.producer.equals(op.publicKey)) return b;
  }
  assert.fail(`operator ${op.publicKey.toString("hex").slice(0, 8)} was never scheduled in ${max} blocks`);
}

/** The producers of rounds 0..rounds-1 at the next height (rounds wrap over the live members). */
function schedule(h: ChainHarness, rounds = 6): string[] {
  const tip = h.chain.tip;
  const reg = h.chain.getRegistry();
  const sched = h.chain.scheduleForChild(tip);
  return Array.from({ length: rounds }, (_, r) =>
    scheduledProducer(sched, tip.height + 1, r, reg)!.operatorPubkey.toString("hex"),
  );
}

/** Operator key → weight, for the members of the schedule of the next height's epoch. */
function members(h: ChainHarness): Map<string, number> {
  const s = h.chain.scheduleForChild(h.chain.tip);
  return new Map(s.members.map((m) => [m.operatorPubkey.toString("hex"), m.weight]));
}

const hexOf = (k: KeyPair): string => k.publicKey.toString("hex");

const paidAddresses = (b: Block): string[] => b.txs[0]!.outputs.map((o) => o.address.toString("hex"));

describe("registration, update and deregistration on chain", () => {
  test("Bronze and Silver registrations change the registry and mnRoot; paid from the next block, scheduled from the next epoch", () =>
    withHarness((h, f) => {
      const genesisRoot = h.chain.storage.getRegistryRoot();
      const genesisRegistry = h.chain.getRegistry();
      const regBronze = register({ op: ops[0]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint });
      const regSilver = register({
        op: ops[1]!,
        fund: f.small[1]!,
        tier: Tier.Silver,
        collateral: f.silver.outpoint,
      });
      // Mempool admission accepts both and reports the registry each would give.
      assert.equal(poolCheck(h, regBronze).registry.length, 4);
      const pooled = poolCheck(h, regSilver);
      assert.equal(pooled.payload?.kind, TxKind.MasternodeRegister);
      assert.ok(findByOperator(pooled.registry, ops[1]!.publicKey));

      const b1 = mineTxs(h, [regBronze, regSilver]);
      const reg = h.chain.getRegistry();
      assert.equal(reg.length, 5);
      assert.deepEqual(reg, sortRegistry(reg), "the registry stays sorted by operator key");
      assert.deepEqual(findByOperator(reg, ops[1]!.publicKey), {
        operatorPubkey: ops[1]!.publicKey,
        address: serviceOf(ops[1]!),
        tier: Tier.Silver,
        rewardAddress: pubkeyHash(ops[1]!.publicKey),
        collateral: f.silver.outpoint,
        ownerPubkey: owner.publicKey,
        registeredHeight: 1,
      });
      const bronze = findByOperator(reg, ops[0]!.publicKey)!;
      assert.equal(bronze.tier, Tier.Bronze);
      assert.deepEqual(bronze.collateral, f.big[0]!.outpoint);
      assert.ok(bronze.ownerPubkey?.equals(owner.publicKey));
      assert.ok(b1.header.mnRoot.equals(registryRoot(reg)));
      assert.ok(!b1.header.mnRoot.equals(genesisRoot));
      assert.ok(h.chain.storage.getRegistryRoot().equals(b1.header.mnRoot));
      assert.equal(h.chain.storage.getUtxo(f.big[0]!.outpoint)?.amount, BRONZE, "collateral stays unspent");
      assert.equal(h.chain.storage.getUtxo(f.silver.outpoint)?.amount, SILVER, "collateral stays unspent");

      // Block 1 is split by the registry after genesis: the new masternodes are not paid yet.
      assert.deepEqual(
        b1.txs[0]!.outputs,
        coinbaseOutputs(
          genesisRegistry,
          findByOperator(genesisRegistry, b1.header.producer)!,
          BLOCK_REWARD,
          2n * FEE,
        ),
      );
      h.addProducer(ops[0]!, ops[1]!);
      const b2 = h.mine();
      assert.equal(b2.txs[0]!.outputs.length, 5, "paid from the block after the registration");
      const w = 3n * TIER_WEIGHT[Tier.Free] + TIER_WEIGHT[Tier.Bronze] + TIER_WEIGHT[Tier.Silver];
      for (const [op, tier] of [
        [ops[0]!, Tier.Bronze],
        [ops[1]!, Tier.Silver],
      ] as const) {
        const out = b2.txs[0]!.outputs.find((o) => o.address.equals(pubkeyHash(op.publicKey)))!;
        assert.equal(out.amount, (BLOCK_REWARD * TIER_WEIGHT[tier]) / w, "a share by tier weight");
      }

      // Epoch 0's schedule was fixed by the genesis registry: no round of it names them.
      const newcomers = [hexOf(ops[0]!), hexOf(ops[1]!)];
      while (h.chain.height < EPOCH_BLOCKS) {
        assert.equal(members(h).size, 3);
        const s = schedule(h);
        assert.ok(!s.some((k) => newcomers.includes(k)), `not scheduled at height ${h.chain.height + 1}`);
        assert.ok(!newcomers.includes(h.mine().header.producer.toString("hex")));
      }
      // Epoch 1 (from height 33) has them, with their tier weights, and behind the others: every
      // round of the first height names them, round 0 does not.
      assert.deepEqual(
        members(h),
        new Map(reg.map((e) => [e.operatorPubkey.toString("hex"), Number(TIER_WEIGHT[e.tier])])),
      );
      const first = schedule(h, 5);
      assert.ok(!newcomers.includes(first[0]!), "a newcomer is not scheduled first");
      for (const k of newcomers) assert.ok(first.includes(k), "a newcomer is in the round order");

      // Both produce blocks with their own keys.
      for (const op of [ops[1]!, ops[0]!]) {
        const b = mineUntilProducedBy(h, op);
        assert.ok(b.header.height > EPOCH_BLOCKS);
        assert.ok(h.chain.tip.hash.equals(blockHash(b.header)));
      }
    }));

  test("a registration in an epoch's anchor block joins the next epoch's schedule; one a block later waits an epoch; a deregistered member is skipped at once", () =>
    withHarness((h, f) => {
      while (h.chain.height < EPOCH_BLOCKS - 1) h.mine();
      // Height 32 fixes epoch 1's schedule (heights 33..64); height 33 is inside epoch 1.
      mineTxs(h, [register({ op: ops[0]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })]);
      assert.equal(h.chain.height, EPOCH_BLOCKS);
      mineTxs(h, [register({ op: ops[1]!, fund: f.small[1]!, collateral: f.big[1]!.outpoint })]);
      h.addProducer(ops[0]!, ops[1]!);
      let byOp0 = 0;
      while (h.chain.height < 2 * EPOCH_BLOCKS) {
        assert.ok(members(h).has(hexOf(ops[0]!)));
        assert.ok(!members(h).has(hexOf(ops[1]!)));
        assert.ok(!schedule(h).includes(hexOf(ops[1]!)), `ops[1] is not scheduled at ${h.chain.height + 1}`);
        if (h.mine().header.producer.equals(ops[0]!.publicKey)) byOp0++;
      }
      // Bronze weighs 10 genesis (Free) masternodes: it holds most of the epoch.
      assert.ok(byOp0 > EPOCH_BLOCKS / 2, `ops[0] produced ${byOp0} of ${EPOCH_BLOCKS} blocks`);
      assert.ok(members(h).has(hexOf(ops[1]!)), "epoch 2 has ops[1]");

      // Deregistered mid-epoch: still a member of the epoch's schedule, but no round names it.
      h.mine();
      mineTxs(h, [deregister(ops[0]!.publicKey, f.small[2]!)]);
      assert.ok(members(h).has(hexOf(ops[0]!)));
      while (h.chain.height < 3 * EPOCH_BLOCKS) {
        assert.ok(!schedule(h).includes(hexOf(ops[0]!)), `ops[0] is skipped at ${h.chain.height + 1}`);
        assert.ok(!h.mine().header.producer.equals(ops[0]!.publicKey));
      }
      assert.ok(!members(h).has(hexOf(ops[0]!)), "and it leaves the schedule at the next epoch");
    }));

  test("spending the collateral (in a transfer or any other kind) removes the masternode; paid in that block, not after", () =>
    withHarness((h, f) => {
      const genesisRoot = h.chain.storage.getRegistryRoot();
      mineTxs(h, [
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: f.big[0]!.outpoint }),
      ]);
      h.addProducer(ops[1]!);
      h.mine();
      const spend = send(f.big[0]!, BOB);
      const pooled = poolCheck(h, spend);
      assert.equal(pooled.payload, null);
      assert.deepEqual(pooled.releasedCollateralOf, [ops[1]!.publicKey]);
      assert.equal(findByOperator(pooled.registry, ops[1]!.publicKey), undefined);

      const b = mineTxs(h, [spend]);
      assert.equal(h.producerEntry(ops[1]!.publicKey), undefined, "spending the collateral deregisters");
      assert.ok(
        h.chain.storage.getRegistryRoot().equals(genesisRoot),
        "back to exactly the genesis registry",
      );
      assert.ok(
        paidAddresses(b).includes(pubkeyHash(ops[1]!.publicKey).toString("hex")),
        "paid in the removing block",
      );
      const next = h.mine();
      assert.ok(!paidAddresses(next).includes(pubkeyHash(ops[1]!.publicKey).toString("hex")), "not after");

      // The operator can register again with another collateral. Then a registration of another
      // operator that spends this collateral as a funding input removes ops[1]: any kind counts.
      mineTxs(h, [
        register({ op: ops[1]!, fund: f.small[1]!, tier: Tier.Bronze, collateral: f.big[1]!.outpoint }),
      ]);
      assert.equal(h.producerEntry(ops[1]!.publicKey)?.registeredHeight, h.chain.height);
      const regOther = register({
        op: ops[2]!,
        fund: f.small[2]!,
        collateral: f.big[2]!.outpoint,
        extraInputs: [f.big[1]!],
      });
      mineTxs(h, [regOther]);
      assert.equal(
        h.producerEntry(ops[1]!.publicKey),
        undefined,
        "removed: a registration spent its collateral",
      );
      assert.ok(h.producerEntry(ops[2]!.publicKey));
    }));

  test("collateral created earlier in the same block is accepted; collateral spent later in the block removes the entry", () =>
    withHarness((h, f) => {
      // bob pays owner exactly 1,000 TIME, then owner registers with that fresh output.
      const pay = makeTransfer(
        bob,
        [f.bobBig.outpoint, f.bobSmall[0]!.outpoint],
        [
          { to: OWNER, amount: BRONZE },
          { to: BOB, amount: SMALL - FEE },
        ],
      );
      const fresh = { txid: txid(pay), index: 0 };
      const reg = register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: fresh });
      mineTxs(h, [pay, reg]);
      h.addProducer(ops[1]!);
      assert.deepEqual(h.producerEntry(ops[1]!.publicKey)?.collateral, fresh);

      const reg2 = register({
        op: ops[2]!,
        fund: f.small[1]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
      });
      const spend = send(f.big[0]!, BOB);
      const before = h.chain.getRegistry();
      mineTxs(h, [reg2, spend]);
      assert.equal(h.producerEntry(ops[2]!.publicKey), undefined, "added, then removed in block order");
      assert.deepEqual(h.chain.getRegistry(), before);
    }));

  test("update changes the address and reward address; deregistration removes; genesis entries answer to their operator key", () =>
    withHarness((h, f) => {
      mineTxs(h, [register({ op: ops[0]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })]);
      h.addProducer(ops[0]!);
      const before = h.producerEntry(ops[0]!.publicKey)!;
      const rootBefore = h.chain.storage.getRegistryRoot();
      const upd = update({
        op: ops[0]!.publicKey,
        fund: f.small[1]!,
        address: "10.0.0.9:24300",
        reward: CAROL,
      });
      assert.equal(poolCheck(h, upd).payload?.kind, TxKind.MasternodeUpdate);
      mineTxs(h, [upd]);
      assert.deepEqual(h.producerEntry(ops[0]!.publicKey), {
        ...before,
        address: "10.0.0.9:24300",
        rewardAddress: CAROL,
      });
      assert.ok(!h.chain.storage.getRegistryRoot().equals(rootBefore));
      const paid = h.mine();
      assert.ok(paidAddresses(paid).includes(CAROL.toString("hex")), "the new reward address is paid");

      const dereg = deregister(ops[0]!.publicKey, f.small[2]!);
      assert.equal(poolCheck(h, dereg).registry.length, 3);
      const d = mineTxs(h, [dereg]);
      assert.equal(h.producerEntry(ops[0]!.publicKey), undefined);
      assert.ok(paidAddresses(d).includes(CAROL.toString("hex")), "still paid in the deregistering block");
      assert.ok(!paidAddresses(h.mine()).includes(CAROL.toString("hex")), "not after");

      // A genesis entry has no owner: its operator key authorises update and deregistration.
      const gUpd = update({ op: mns[2]!.publicKey, fund: f.mn2, address: "10.0.0.2:24200", reward: BOB });
      mineTxs(h, [gUpd]);
      assert.equal(h.producerEntry(mns[2]!.publicKey)?.address, "10.0.0.2:24200");
      const mn2Change = { outpoint: { txid: txid(gUpd), index: 0 }, amount: SMALL - FEE, key: mns[2]! };
      mineTxs(h, [deregister(mns[2]!.publicKey, mn2Change)]);
      assert.equal(h.producerEntry(mns[2]!.publicKey), undefined);
      assert.equal(h.chain.getRegistry().length, 2);
    }));

  test("a deregistration that also spends the entry's collateral is valid", () =>
    withHarness((h, f) => {
      mineTxs(h, [
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: f.big[0]!.outpoint }),
      ]);
      h.addProducer(ops[1]!);
      const tx = deregister(ops[1]!.publicKey, f.big[0]!);
      poolCheck(h, tx);
      mineTxs(h, [tx]);
      assert.equal(h.producerEntry(ops[1]!.publicKey), undefined);
      assert.equal(h.chain.storage.getUtxo(f.big[0]!.outpoint), undefined);
    }));

  test("disconnecting the tip reverts the registry and its root", () =>
    withHarness((h, f) => {
      h.mine();
      const before = h.snapshot();
      mineTxs(h, [
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: f.big[0]!.outpoint }),
      ]);
      assert.notEqual(h.snapshot().registryRoot, before.registryRoot);
      h.chain.disconnectTip();
      assert.deepEqual(h.snapshot(), before);
    }));
});

describe("rejections (block and mempool)", () => {
  test("MN_BAD_COLLATERAL: wrong amount (under, over, another tier's amount, a small coin)", () =>
    withHarness((h, f) => {
      for (const c of [f.under, f.over, f.small[3]!, f.silver]) {
        expectRejectBoth(
          h,
          register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: c.outpoint }),
          "MN_BAD_COLLATERAL",
        );
      }
      const silver = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Silver,
        collateral: f.big[0]!.outpoint,
      });
      expectRejectBoth(h, silver, "MN_BAD_COLLATERAL");
      mineTxs(h, [
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: f.big[0]!.outpoint }),
      ]);
    }));

  test("MN_BAD_COLLATERAL: collateral not owned by the owner key", () =>
    withHarness((h, f) => {
      const tx = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Bronze,
        collateral: f.bobBig.outpoint,
      });
      expectRejectBoth(h, tx, "MN_BAD_COLLATERAL");
      // bob, who owns it, may use it.
      mineTxs(h, [
        register({
          op: ops[1]!,
          fund: f.bobSmall[0]!,
          ownerKey: bob,
          tier: Tier.Bronze,
          collateral: f.bobBig.outpoint,
        }),
      ]);
      assert.ok(h.producerEntry(ops[1]!.publicKey)?.ownerPubkey?.equals(bob.publicKey));
    }));

  test("MN_BAD_COLLATERAL: Bronze without a collateral, collateral spent by the registration itself", () =>
    withHarness((h, f) => {
      expectRejectBoth(
        h,
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: null }),
        "MN_BAD_COLLATERAL",
      );
      const selfSpend = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
        extraInputs: [f.big[0]!],
      });
      expectRejectBoth(h, selfSpend, "MN_BAD_COLLATERAL");
      assertCode(
        thrown(() => checkTxSanity(selfSpend)),
        "MN_BAD_COLLATERAL",
      );
    }));

  test("MN_FREE_TIER: a Free registration (with or without a collateral) is refused in a block and at admission; genesis Free entries stay", () =>
    withHarness((h, f) => {
      const free = register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Free, collateral: null });
      const freeWithCollateral = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Free,
        collateral: f.big[0]!.outpoint,
      });
      for (const tx of [free, freeWithCollateral]) {
        // Context-free: no registry or UTXO set needed.
        assertCode(
          thrown(() => checkTxSanity(tx)),
          "MN_FREE_TIER",
        );
        assertCode(
          thrown(() => checkRegistryTx(tx, h.chain.getRegistry(), h.chain.storage)),
          "MN_FREE_TIER",
        );
        expectRejectBoth(h, tx, "MN_FREE_TIER");
      }
      // Next to a valid registration, the whole block is refused.
      const bronze = register({ op: ops[2]!, fund: f.small[1]!, collateral: f.big[1]!.outpoint });
      expectBlockReject(h, [bronze, free], "MN_FREE_TIER");

      // The genesis entries are Free, and keep producing and being paid.
      const genesisRegistry = h.chain.getRegistry();
      assert.ok(genesisRegistry.every((e) => e.tier === Tier.Free && e.collateral === null));
      const b = mineTxs(h, [bronze]);
      assert.ok(findByOperator(genesisRegistry, b.header.producer));
      for (const e of genesisRegistry) assert.ok(paidAddresses(b).includes(e.rewardAddress.toString("hex")));
      // The same operator registers with a collateral instead.
      mineTxs(h, [register({ op: ops[1]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })]);
      assert.equal(h.producerEntry(ops[1]!.publicKey)?.tier, Tier.Bronze);
    }));

  test("MN_TOO_MANY_REGISTRATIONS: a block holds at most MAX_REGISTRATIONS_PER_BLOCK (8) registrations", () =>
    withHarness((h, f) => {
      assert.equal(MAX_REGISTRATIONS_PER_BLOCK, 8);
      const many = testKeys("many-op", MAX_REGISTRATIONS_PER_BLOCK + 1);
      const regs = many.map((op, i) => register({ op, fund: f.small[i]!, collateral: f.big[i]!.outpoint }));
      // Each is valid on its own: the cap is per block.
      for (const tx of regs) poolCheck(h, tx);
      expectBlockReject(h, regs, "MN_TOO_MANY_REGISTRATIONS");
      assertCode(
        thrown(() => checkBlockSanity(h.makeBlock({ txs: regs, fees: BigInt(regs.length) * FEE }))),
        "MN_TOO_MANY_REGISTRATIONS",
      );
      // Eight connect, with other registry kinds beside them (only Register counts).
      const gUpd = update({ op: mns[2]!.publicKey, fund: f.mn2, address: "10.0.0.2:24200", reward: BOB });
      mineTxs(h, [...regs.slice(0, MAX_REGISTRATIONS_PER_BLOCK), gUpd]);
      assert.equal(h.chain.getRegistry().length, 3 + MAX_REGISTRATIONS_PER_BLOCK);
      // The ninth goes in the next block.
      mineTxs(h, [regs[MAX_REGISTRATIONS_PER_BLOCK]!]);
      assert.equal(h.chain.getRegistry().length, 3 + MAX_REGISTRATIONS_PER_BLOCK + 1);
    }));

  test("MN_COLLATERAL_IN_USE: collateral already backing a masternode (earlier block, or earlier in the block)", () =>
    withHarness((h, f) => {
      const a = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
      });
      const b = register({
        op: ops[2]!,
        fund: f.small[1]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
      });
      expectBlockReject(h, [a, b], "MN_COLLATERAL_IN_USE");
      mineTxs(h, [a]);
      h.addProducer(ops[1]!);
      expectRejectBoth(h, b, "MN_COLLATERAL_IN_USE");
    }));

  test("MN_COLLATERAL_MISSING: unknown outpoint, spent in an earlier block, spent earlier in the same block", () =>
    withHarness((h, f) => {
      expectRejectBoth(
        h,
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: NOWHERE }),
        "MN_COLLATERAL_MISSING",
      );
      const spendEarlier = send(f.big[0]!, OWNER);
      const reg = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
      });
      expectBlockReject(h, [spendEarlier, reg], "MN_COLLATERAL_MISSING");
      mineTxs(h, [spendEarlier]);
      expectRejectBoth(h, reg, "MN_COLLATERAL_MISSING");
      // An output a LATER transaction of the block creates does not count either.
      const pay = makeTransfer(
        bob,
        [f.bobBig.outpoint, f.bobSmall[0]!.outpoint],
        [
          { to: OWNER, amount: BRONZE },
          { to: BOB, amount: SMALL - FEE },
        ],
      );
      const early = register({
        op: ops[2]!,
        fund: f.small[1]!,
        tier: Tier.Bronze,
        collateral: { txid: txid(pay), index: 0 },
      });
      expectBlockReject(h, [early, pay], "MN_COLLATERAL_MISSING");
    }));

  test("MN_DUPLICATE_OPERATOR: a genesis operator, a registered operator, twice in one block", () =>
    withHarness((h, f) => {
      expectRejectBoth(
        h,
        register({ op: mns[0]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint }),
        "MN_DUPLICATE_OPERATOR",
      );
      const first = register({ op: ops[1]!, fund: f.small[0]!, collateral: f.big[1]!.outpoint });
      const again = register({
        op: ops[1]!,
        fund: f.small[1]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
      });
      expectBlockReject(h, [first, again], "MN_DUPLICATE_OPERATOR");
      mineTxs(h, [first]);
      h.addProducer(ops[1]!);
      expectRejectBoth(h, again, "MN_DUPLICATE_OPERATOR");
    }));

  test("MN_BAD_OPERATOR_SIG: signed by another key, or over other fields", () =>
    withHarness((h, f) => {
      const body = bronzeBody(ops[1]!, f.big[0]!.outpoint);
      const byOther = encodeRegisterPayload({ ...body, operatorSig: ops[2]!.sign(registerSigMessage(body)) });
      expectRejectBoth(h, raw(TxKind.MasternodeRegister, byOther, f.small[0]!), "MN_BAD_OPERATOR_SIG");
      const consented = bronzeBody(ops[1]!, f.big[0]!.outpoint, { address: "1.2.3.4:24200" });
      const swapped = encodeRegisterPayload({
        ...body,
        operatorSig: ops[1]!.sign(registerSigMessage(consented)),
      });
      expectRejectBoth(h, raw(TxKind.MasternodeRegister, swapped, f.small[0]!), "MN_BAD_OPERATOR_SIG");
      // Nobody can redirect an operator's consent (given to owner) to another owner.
      const good = encodeRegisterPayload({ ...body, operatorSig: ops[1]!.sign(registerSigMessage(body)) });
      const stolen = encodeRegisterPayload({ ...decodeRegisterPayload(good), ownerPubkey: bob.publicKey });
      expectRejectBoth(h, raw(TxKind.MasternodeRegister, stolen, f.bobSmall[0]!), "MN_BAD_OPERATOR_SIG");
      mineTxs(h, [raw(TxKind.MasternodeRegister, good, f.small[0]!)]);
      assert.ok(h.producerEntry(ops[1]!.publicKey));
    }));

  test("MN_UNAUTHORISED: a registration with no input signed by the owner", () =>
    withHarness((h, f) => {
      // The payload names owner, but only bob's coin funds (and signs) the transaction.
      const tx = makeRegisterTx({
        ownerKey: owner,
        operatorKey: ops[1]!,
        address: serviceOf(ops[1]!),
        tier: Tier.Bronze,
        rewardAddress: BOB,
        collateral: f.big[0]!.outpoint,
        inputs: [spec(f.bobSmall[0]!)],
        outputs: payBack(f.bobSmall[0]!),
      });
      expectRejectBoth(h, tx, "MN_UNAUTHORISED");
    }));

  test("MN_UNKNOWN: update or deregistration of an operator that is not registered (or no longer)", () =>
    withHarness((h, f) => {
      expectRejectBoth(
        h,
        update({ op: ops[3]!.publicKey, fund: f.small[0]!, address: "a.b:1", reward: OWNER }),
        "MN_UNKNOWN",
      );
      expectRejectBoth(h, deregister(ops[3]!.publicKey, f.small[0]!), "MN_UNKNOWN");
      const reg = register({ op: ops[1]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint });
      const d1 = deregister(ops[1]!.publicKey, f.small[1]!);
      const d2 = deregister(ops[1]!.publicKey, f.small[2]!);
      expectBlockReject(h, [reg, d1, d2], "MN_UNKNOWN");
      mineTxs(h, [reg, d1]);
      expectRejectBoth(h, d2, "MN_UNKNOWN");
    }));

  test("MN_UNAUTHORISED: update or deregistration by someone else (including the operator of an owned entry)", () =>
    withHarness((h, f) => {
      mineTxs(h, [register({ op: ops[0]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })]);
      h.addProducer(ops[0]!);
      expectRejectBoth(h, deregister(ops[0]!.publicKey, f.bobSmall[0]!), "MN_UNAUTHORISED");
      expectRejectBoth(
        h,
        update({ op: ops[0]!.publicKey, fund: f.bobSmall[0]!, address: "evil:1", reward: BOB }),
        "MN_UNAUTHORISED",
      );
      expectRejectBoth(h, deregister(ops[0]!.publicKey, f.op0), "MN_UNAUTHORISED");
      // A genesis entry answers only to its operator key.
      expectRejectBoth(h, deregister(mns[2]!.publicKey, f.small[1]!), "MN_UNAUTHORISED");
      expectRejectBoth(h, deregister(mns[1]!.publicKey, f.mn2), "MN_UNAUTHORISED");
    }));

  test("REGISTRY_EMPTY: a block whose changes leave no masternode", async () => {
    const solo = testKey("solo", 0);
    const soloSpec = testGenesis({
      masternodes: [solo],
      funded: [
        { key: solo, amount: SMALL, count: 2 },
        { key: owner, amount: BRONZE },
        { key: owner, amount: SMALL, count: 2 },
      ],
    });
    const h = new ChainHarness(soloSpec, [solo]);
    try {
      const soloCoins = h.genesisCoins(solo);
      const [big] = h.genesisCoins(owner).filter((c) => c.amount === BRONZE);
      const small = h.genesisCoins(owner).filter((c) => c.amount === SMALL);
      const out = deregister(solo.publicKey, soloCoins[0]!);
      expectRejectBoth(h, out, "REGISTRY_EMPTY");
      // With a registration in the same block the registry is never left empty. That block is the
      // anchor of epoch 1, whose schedule is then ops[1] alone.
      while (h.chain.height < EPOCH_BLOCKS - 1) h.mine();
      const reg = register({ op: ops[1]!, fund: small[0]!, tier: Tier.Bronze, collateral: big!.outpoint });
      mineTxs(h, [reg, out]);
      assert.deepEqual(
        h.chain.getRegistry().map((e) => e.operatorPubkey),
        [ops[1]!.publicKey],
      );
      h.addProducer(ops[1]!);
      // Spending the last masternode's collateral is refused, in a block and in the pool.
      expectRejectBoth(h, send(big!, BOB), "REGISTRY_EMPTY");
      expectRejectBoth(h, deregister(ops[1]!.publicKey, small[1]!), "REGISTRY_EMPTY");
      const b = h.mine();
      assert.ok(b.header.producer.equals(ops[1]!.publicKey), "the registered masternode now produces alone");
    } finally {
      await h.close();
    }
  });

  test("every scheduled masternode leaving mid-epoch does not halt the chain", async () => {
    // A solo masternode hands over to a newcomer in block 1, in the middle of epoch 0. The epoch's
    // schedule then names nobody live; the live registry takes over until the next anchor.
    const solo = testKey("solo", 0);
    const soloSpec = testGenesis({
      masternodes: [solo],
      funded: [
        { key: solo, amount: SMALL, count: 2 },
        { key: owner, amount: BRONZE },
        { key: owner, amount: SMALL, count: 2 },
      ],
    });
    const h = new ChainHarness(soloSpec, [solo, ops[1]!]);
    try {
      const [big] = h.genesisCoins(owner).filter((c) => c.amount === BRONZE);
      const small = h.genesisCoins(owner).filter((c) => c.amount === SMALL);
      const reg = register({ op: ops[1]!, fund: small[0]!, tier: Tier.Bronze, collateral: big!.outpoint });
      mineTxs(h, [reg, deregister(solo.publicKey, h.genesisCoins(solo)[0]!)]);
      assert.equal(h.chain.height, 1);
      for (let i = 0; i < EPOCH_BLOCKS + 3; i++) {
        const b = h.mine();
        assert.ok(b.header.producer.equals(ops[1]!.publicKey), `block ${b.header.height} by the newcomer`);
      }
      assert.equal(h.chain.height, EPOCH_BLOCKS + 4);
    } finally {
      await h.close();
    }
  });

  test("BAD_MASTERNODE_TX: payloads that do not decode exactly, an unknown tier, a bad service address", () =>
    withHarness((h, f) => {
      const body = bronzeBody(ops[1]!, f.big[0]!.outpoint);
      const good = encodeRegisterPayload({ ...body, operatorSig: ops[1]!.sign(registerSigMessage(body)) });
      const flagAt = 32 + 4 + Buffer.byteLength(body.address) + 1 + 20;
      assert.equal(good[flagAt], 1);
      const badFlag = Buffer.from(good);
      badFlag[flagAt] = 2;
      const badTier = (() => {
        const b = { ...body, tier: 4 as Tier };
        return encodeRegisterPayload({ ...b, operatorSig: ops[1]!.sign(registerSigMessage(b)) });
      })();
      const payloads: Array<[TxKind, Buffer]> = [
        [TxKind.MasternodeRegister, Buffer.concat([good, Buffer.alloc(1)])],
        [TxKind.MasternodeRegister, good.subarray(0, good.length - 1)],
        [TxKind.MasternodeRegister, badFlag],
        [TxKind.MasternodeRegister, badTier],
        [
          TxKind.MasternodeUpdate,
          Buffer.concat([
            encodeUpdatePayload({ operatorPubkey: mns[2]!.publicKey, address: "a:1", rewardAddress: BOB }),
            Buffer.alloc(1),
          ]),
        ],
        [
          TxKind.MasternodeDeregister,
          encodeDeregisterPayload({ operatorPubkey: mns[2]!.publicKey }).subarray(0, 31),
        ],
        [TxKind.MasternodeDeregister, Buffer.alloc(0)],
      ];
      for (const addr of ["nohost", "host:0", "host:65536", "a b:1", ":24200", "host:123456", "hôst:1"]) {
        assert.equal(isServiceAddress(addr), false, addr);
        const b = bronzeBody(ops[1]!, f.big[0]!.outpoint, { address: addr });
        payloads.push([
          TxKind.MasternodeRegister,
          encodeRegisterPayload({ ...b, operatorSig: ops[1]!.sign(registerSigMessage(b)) }),
        ]);
        payloads.push([
          TxKind.MasternodeUpdate,
          encodeUpdatePayload({ operatorPubkey: mns[2]!.publicKey, address: addr, rewardAddress: BOB }),
        ]);
      }
      for (const [kind, payload] of payloads) {
        const fund = kind === TxKind.MasternodeRegister ? f.small[0]! : f.mn2;
        expectRejectBoth(h, raw(kind, payload, fund), "BAD_MASTERNODE_TX");
      }
      for (const addr of ["127.0.0.1:24200", "[::1]:1", "node.example.org:65535"])
        assert.ok(isServiceAddress(addr), addr);
      mineTxs(h, [raw(TxKind.MasternodeRegister, good, f.small[0]!)]);
    }));

  test("MN_REGISTRY_FULL: checkRegistryTx against a registry of MAX_REGISTRY_SIZE entries", () =>
    withHarness((h, f) => {
      const filler = (i: number): MasternodeEntry => ({
        operatorPubkey: sha256(Buffer.from(`filler/${i}`)),
        address: "x:1",
        tier: Tier.Free,
        rewardAddress: Buffer.alloc(20),
        collateral: null,
        ownerPubkey: null,
        registeredHeight: 0,
      });
      const full: Registry = sortRegistry(Array.from({ length: MAX_REGISTRY_SIZE }, (_, i) => filler(i)));
      const tx = register({ op: ops[1]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint });
      assertCode(
        thrown(() => checkRegistryTx(tx, full, h.chain.storage)),
        "MN_REGISTRY_FULL",
      );
      const after = checkRegistryTx(tx, full.slice(1), h.chain.storage).registry;
      assert.equal(after.length, MAX_REGISTRY_SIZE);
    }));
});

describe("side branches and reorgs", () => {
  /** Three nodes on one genesis: two builders and a reference that sees only the winning branch. */
  async function withNodes(fn: (...nodes: ChainHarness[]) => void | Promise<void>, n = 3): Promise<void> {
    const nodes = Array.from({ length: n }, () => new ChainHarness(genesis, mns));
    try {
      await fn(...nodes);
    } finally {
      for (const h of nodes) await h.close();
    }
  }

  test("a reorg across a registration reverts the registry, its root and the schedule, both ways", () =>
    withNodes((n1, n2, refB, refA) => {
      const f = funds(n1);
      // Common blocks 1..30. Each branch registers ops[0] at height 31 and crosses the anchor at
      // 32, so the branches' schedules of epoch 1 differ.
      const common = Array.from({ length: EPOCH_BLOCKS - 2 }, () => n1.mine());
      for (const n of [n2, refB, refA]) for (const b of common) n.feed(b);
      // Branch A (n1, round 1: B's round-0 producers are on the other side): ops[0] as Bronze.
      const A = [
        mineTxs(n1, [register({ op: ops[0]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })], {
          round: 1,
        }),
      ];
      n1.addProducer(ops[0]!);
      while (n1.chain.height < EPOCH_BLOCKS + 3) A.push(n1.mine({ round: 1 }));
      const regA = n1.chain.getRegistry();
      assert.equal(members(n1).get(hexOf(ops[0]!)), Number(TIER_WEIGHT[Tier.Bronze]));
      // Branch B (n2, round 0): the same operator as Silver, with another collateral. Its 4
      // round-0 blocks outweigh A's 5 round-1 blocks.
      const B = [
        mineTxs(n2, [
          register({ op: ops[0]!, fund: f.small[1]!, tier: Tier.Silver, collateral: f.silver.outpoint }),
        ]),
      ];
      n2.addProducer(ops[0]!);
      while (n2.chain.height < EPOCH_BLOCKS + 2) B.push(n2.mine());
      for (const b of B) refB.feed(b);

      const results = B.map((b) => n1.feed(b));
      assert.ok(
        results.some((r) => r.status === "reorged"),
        results.map((r) => r.status).join(","),
      );
      assert.deepEqual(n1.snapshot(), refB.snapshot(), "exactly the state of a node that never saw A");
      assert.deepEqual(schedule(n1), schedule(refB));
      assert.equal(members(n1).get(hexOf(ops[0]!)), Number(TIER_WEIGHT[Tier.Silver]), "B's schedule");
      const e = n1.producerEntry(ops[0]!.publicKey)!;
      assert.equal(e.tier, Tier.Silver);
      assert.deepEqual(e.collateral, f.silver.outpoint);
      assert.equal(n1.chain.storage.getUtxo(f.big[0]!.outpoint)?.amount, BRONZE);
      // A's registry is still known under A's root (side blocks keep their snapshots).
      assert.deepEqual(n1.chain.registryAfter(n1.chain.getIndex(blockHash(A.at(-1)!.header))!), regA);

      // Back to A when it becomes heavier: built on A's stored (side) tip, with A's registry and
      // schedule (round 0 is free here: B has no blocks at these heights).
      const back: ProcessResult[] = [];
      let parent = blockHash(A.at(-1)!.header);
      for (let i = 0; i < 2; i++) {
        const b = n1.makeBlock({ parentHash: parent });
        A.push(b);
        back.push(n1.feed(b));
        parent = blockHash(b.header);
      }
      for (const b of [...common, ...A]) refA.feed(b);
      assert.ok(
        back.some((r) => r.status === "reorged"),
        back.map((r) => r.status).join(","),
      );
      assert.deepEqual(n1.snapshot(), refA.snapshot());
      assert.deepEqual(schedule(n1), schedule(refA));
      assert.equal(members(n1).get(hexOf(ops[0]!)), Number(TIER_WEIGHT[Tier.Bronze]), "A's schedule");
      assert.equal(n1.producerEntry(ops[0]!.publicKey)?.tier, Tier.Bronze);
    }, 4));

  test("a side branch whose blocks are produced by a masternode it registered is validated and wins when heavier", () =>
    withNodes((nA, nB, n1, ref) => {
      const f = funds(n1);
      const c1 = nA.mine();
      for (const n of [nB, n1, ref]) n.feed(c1);
      // Branch B (round 0): ops[1] registers, joins the schedule at the next epoch, and B runs
      // until ops[1] has produced a block in it.
      const B = [mineTxs(nB, [register({ op: ops[1]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })])];
      nB.addProducer(ops[1]!);
      let byNew = -1;
      for (let i = 0; i < 3 * EPOCH_BLOCKS && byNew < 0; i++) {
        const b = nB.mine();
        B.push(b);
        if (b.header.producer.equals(ops[1]!.publicKey)) byNew = B.length - 1;
      }
      assert.ok(byNew > 0, "the new masternode produced a block on branch B");
      assert.ok(B[byNew]!.header.height > EPOCH_BLOCKS, "scheduled only from epoch 1");
      // Branch A (round 1, so no slot is B's): twice as many blocks plus one, so it stays just
      // ahead of B's part up to ops[1]'s block.
      const A = Array.from({ length: 2 * (byNew + 1) + 1 }, () => nA.mine({ round: 1 }));
      for (const b of B) ref.feed(b);

      // n1 sees both as they grow: A always slightly heavier, so B's blocks are stored as side
      // blocks, each checked with B's own registry and schedule.
      let fedA = 0;
      B.slice(0, byNew + 1).forEach((b, i) => {
        while (fedA < 2 * (i + 1) + 1) assert.equal(n1.feed(A[fedA++]!).status, "connected");
        assert.equal(n1.feed(b).status, "side", `B[${i}] is validated and stored as a side block`);
      });
      assert.ok(n1.chain.storage.hasBlock(blockHash(B[byNew]!.header)));
      assert.equal(n1.producerEntry(ops[1]!.publicKey), undefined, "A's registry has no ops[1]");
      // Then B grows heavier than A.
      const rest: Block[] = [];
      while (2 * (B.length + rest.length) <= A.length) rest.push(nB.mine());
      for (const b of rest) ref.feed(b);
      const statuses = rest.map((b) => n1.feed(b).status);
      assert.ok(statuses.includes("reorged"), statuses.join(","));
      assert.ok(n1.chain.tip.hash.equals(blockHash(rest.at(-1)!.header)));
      assert.deepEqual(n1.snapshot(), ref.snapshot());
      assert.deepEqual(schedule(n1), schedule(ref));
      assert.ok(n1.producerEntry(ops[1]!.publicKey));
    }, 4));

  test("registry rules that need no UTXO set reject a side block before it is stored", () =>
    withNodes((n1, n2) => {
      const f = funds(n1);
      const c1 = n1.mine();
      n2.feed(c1);
      // n1's branch at round 1, the side blocks at round 0: other producers.
      n1.mine({ round: 1 });
      n1.mine({ round: 1 });
      const before = n1.snapshot();
      const bad = n2.makeBlock({
        txs: [register({ op: mns[1]!, fund: f.small[0]!, collateral: f.big[0]!.outpoint })],
        fees: FEE,
      });
      assertCode(
        thrown(() => n1.feed(bad)),
        "MN_DUPLICATE_OPERATOR",
      );
      assert.equal(n1.chain.storage.hasBlock(blockHash(bad.header)), false);
      assert.ok(n1.chain.isKnownInvalid(blockHash(bad.header)), "the verdict is permanent for its hash");
      // A Free registration fails the block's context-free checks.
      const free = n2.makeBlock({
        txs: [register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Free, collateral: null })],
        fees: FEE,
      });
      assertCode(
        thrown(() => n1.feed(free)),
        "MN_FREE_TIER",
      );
      assert.equal(n1.chain.storage.hasBlock(blockHash(free.header)), false);
      assert.deepEqual(n1.snapshot(), before);
    }, 2));

  test("a side branch with an invalid collateral is stored, then refused atomically when it would win", () =>
    withNodes((n1, n2) => {
      const f = funds(n1);
      const c1 = n1.mine();
      n2.feed(c1);
      // A: three round-1 blocks (1.5 blocks of work), so B1 (round 0) is a side block.
      for (let i = 0; i < 3; i++) n1.mine({ round: 1 });
      // B registers with a collateral of the wrong amount: only the UTXO set shows it.
      const reg = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Bronze,
        collateral: f.under.outpoint,
      });
      const B1 = n2.makeBlock({ txs: [reg], fees: FEE });
      const after = n2.chain.getRegistry();
      assert.equal(after.length, 3);
      // n2 cannot connect B1 itself; build B on it with the registry B1 claims.
      const claimed = sortRegistry([
        ...after,
        {
          operatorPubkey: ops[1]!.publicKey,
          address: serviceOf(ops[1]!),
          tier: Tier.Bronze,
          rewardAddress: pubkeyHash(ops[1]!.publicKey),
          collateral: f.under.outpoint,
          ownerPubkey: owner.publicKey,
          registeredHeight: 2,
        },
      ]);
      assert.ok(B1.header.mnRoot.equals(registryRoot(claimed)));
      n2.addProducer(ops[1]!);
      const B2 = n2.makeBlockOn(B1, { registry: claimed });
      const B3 = n2.makeBlockOn(B2, { registry: claimed });
      const before = n1.snapshot();
      assert.equal(n1.feed(B1).status, "side");
      const r2 = thrown(() => {
        const r = n1.feed(B2);
        if (r.status === "side") n1.feed(B3);
      });
      assertCode(r2, "MN_BAD_COLLATERAL");
      assert.deepEqual(n1.snapshot(), before, "the reorg was rolled back");
      assert.ok(n1.chain.isKnownInvalid(blockHash(B1.header)));
    }, 2));

  test("a block whose parent's registry snapshot is missing is 'cannot validate yet', never a StoreError", () =>
    withHarness((h) => {
      const b1 = h.mine();
      const tip = h.chain.tip;
      // A stored parent whose mnRoot resolves to no snapshot (as an older or damaged store could hold).
      const ghost: BlockIndex = {
        ...tip,
        hash: sha256(Buffer.from("ghost block")),
        mnRoot: sha256(Buffer.from("a registry nobody stored")),
      };
      h.chain.storage.atomically(() => h.chain.storage.putBlock(ghost, encodeBlock(b1)));
      const registry = h.chain.getRegistry();
      const producer = scheduledProducer(h.chain.scheduleForChild(tip), ghost.height + 1, 0, registry)!;
      const child = buildBlock({
        parentHash: ghost.hash,
        parentHeight: ghost.height,
        registry,
        producer: h.keyFor(producer.operatorPubkey),
        round: 0,
        timestamp: slotStart(h.chain.params, ghost.timestamp, 0),
        txs: [],
        fees: 0n,
      });
      h.clock.set(child.header.timestamp);
      let r: ProcessResult | undefined;
      try {
        r = h.chain.processBlock(child);
      } catch (e) {
        assert.ok(!(e instanceof StoreError), "never a StoreError");
        throw e;
      }
      assert.equal(r.status, "orphan");
      assert.equal(r.status === "orphan" && r.reason, "unknown-parent-state");
      assert.equal(h.chain.storage.hasBlock(blockHash(child.header)), false);
    }));
});
