/**
 * The chain-derived masternode registry: registration (Free and with collateral), update,
 * deregistration and removal by spending the collateral, through transactions on a harness chain;
 * every rejection with its code, in blocks and at mempool admission (checkRegistryTx); reward and
 * schedule timing; and reorgs across registrations, including a side branch whose blocks are
 * produced by a masternode that only that branch registered.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { blockHash, encodeBlock, type Block } from "../../src/chain/block.js";
import { buildBlock } from "../../src/chain/blockBuilder.js";
import type { ProcessResult } from "../../src/chain/chain.js";
import { StoreError, type BlockIndex } from "../../src/chain/chainStore.js";
import { BLOCK_REWARD } from "../../src/chain/constants.js";
import { BlockError, type BlockErrorCode } from "../../src/chain/errors.js";
import { TxKind, txid, type OutPoint, type Tx, type TxOut } from "../../src/chain/tx.js";
import { checkTxInputs, checkTxSanity } from "../../src/chain/validation.js";
import { pubkeyHash } from "../../src/crypto/address.js";
import type { KeyPair } from "../../src/crypto/ed25519.js";
import { sha256 } from "../../src/crypto/hash.js";
import {
  MAX_REGISTRY_SIZE,
  findByOperator,
  registryRoot,
  sortRegistry,
  type MasternodeEntry,
  type Registry,
} from "../../src/consensus/registry.js";
import {
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
} from "../../src/consensus/registryTx.js";
import { coinbaseOutputs } from "../../src/consensus/rewards.js";
import { scheduledProducer, slotStart } from "../../src/consensus/schedule.js";
import { TIER_COLLATERAL, TIER_WEIGHT, Tier } from "../../src/consensus/tier.js";
import {
  ChainHarness,
  COIN,
  makeTransfer,
  testGenesis,
  testKey,
  testKeys,
  type Coin,
} from "../helpers/chainFixture.js";

const mns = testKeys("mn", 3);
const owner = testKey("owner", 0);
const bob = testKey("bob", 0);
const carol = testKey("carol", 0);
const ops = testKeys("op", 4);
const OWNER = pubkeyHash(owner.publicKey);
const BOB = pubkeyHash(bob.publicKey);
const CAROL = pubkeyHash(carol.publicKey);
const BRONZE = TIER_COLLATERAL[Tier.Bronze];
const SMALL = 50n * COIN;
const FEE = COIN;
const NOWHERE: OutPoint = { txid: sha256(Buffer.from("no such tx")), index: 0 };

const genesis = testGenesis({
  masternodes: mns,
  funded: [
    { key: owner, amount: BRONZE, count: 3 },
    { key: owner, amount: SMALL, count: 8 },
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
    tier: o.tier ?? Tier.Free,
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

function freeBody(op: KeyPair, over: Partial<RegisterBody> = {}): RegisterBody {
  return {
    operatorPubkey: op.publicKey,
    address: serviceOf(op),
    tier: Tier.Free,
    rewardAddress: pubkeyHash(op.publicKey),
    collateral: null,
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

function schedule(h: ChainHarness, rounds = 6): string[] {
  const tip = h.chain.tip;
  const reg = h.chain.getRegistry();
  return Array.from({ length: rounds }, (_, r) =>
    scheduledProducer(reg, tip.hash, tip.height + 1, r)!.operatorPubkey.toString("hex"),
  );
}

const paidAddresses = (b: Block): string[] => b.txs[0]!.outputs.map((o) => o.address.toString("hex"));

describe("registration, update and deregistration on chain", () => {
  test("Free and Bronze registrations change the registry and mnRoot; paid and scheduled from the next block", () =>
    withHarness((h, f) => {
      const genesisRoot = h.chain.storage.getRegistryRoot();
      const genesisRegistry = h.chain.getRegistry();
      const regFree = register({ op: ops[0]!, fund: f.small[0]! });
      const regBronze = register({
        op: ops[1]!,
        fund: f.small[1]!,
        tier: Tier.Bronze,
        collateral: f.big[0]!.outpoint,
      });
      // Mempool admission accepts both and reports the registry each would give.
      assert.equal(poolCheck(h, regFree).registry.length, 4);
      const pooled = poolCheck(h, regBronze);
      assert.equal(pooled.payload?.kind, TxKind.MasternodeRegister);
      assert.ok(findByOperator(pooled.registry, ops[1]!.publicKey));

      const b1 = mineTxs(h, [regFree, regBronze]);
      const reg = h.chain.getRegistry();
      assert.equal(reg.length, 5);
      assert.deepEqual(reg, sortRegistry(reg), "the registry stays sorted by operator key");
      assert.deepEqual(findByOperator(reg, ops[1]!.publicKey), {
        operatorPubkey: ops[1]!.publicKey,
        address: serviceOf(ops[1]!),
        tier: Tier.Bronze,
        rewardAddress: pubkeyHash(ops[1]!.publicKey),
        collateral: f.big[0]!.outpoint,
        ownerPubkey: owner.publicKey,
        registeredHeight: 1,
      });
      const free = findByOperator(reg, ops[0]!.publicKey)!;
      assert.equal(free.tier, Tier.Free);
      assert.equal(free.collateral, null);
      assert.ok(free.ownerPubkey?.equals(owner.publicKey));
      assert.ok(b1.header.mnRoot.equals(registryRoot(reg)));
      assert.ok(!b1.header.mnRoot.equals(genesisRoot));
      assert.ok(h.chain.storage.getRegistryRoot().equals(b1.header.mnRoot));
      assert.equal(h.chain.storage.getUtxo(f.big[0]!.outpoint)?.amount, BRONZE, "collateral stays unspent");

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
      const bronzeOut = b2.txs[0]!.outputs.find((o) => o.address.equals(pubkeyHash(ops[1]!.publicKey)))!;
      const w = 3n * TIER_WEIGHT[Tier.Free] + TIER_WEIGHT[Tier.Free] + TIER_WEIGHT[Tier.Bronze];
      const share = (BLOCK_REWARD * TIER_WEIGHT[Tier.Bronze]) / w;
      assert.ok(bronzeOut.amount === share || b2.header.producer.equals(ops[1]!.publicKey));

      // Both new masternodes join the schedule and produce blocks with their own keys.
      for (const op of [ops[1]!, ops[0]!]) {
        const b = mineUntilProducedBy(h, op);
        assert.ok(b.header.producer.equals(op.publicKey));
        assert.ok(h.chain.tip.hash.equals(blockHash(b.header)));
      }
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
      const regOther = register({ op: ops[2]!, fund: f.small[2]!, extraInputs: [f.big[1]!] });
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
      mineTxs(h, [register({ op: ops[0]!, fund: f.small[0]! })]);
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
      for (const c of [f.under, f.over, f.small[3]!]) {
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

  test("MN_BAD_COLLATERAL: Free with a collateral, Bronze without, collateral spent by the registration itself", () =>
    withHarness((h, f) => {
      expectRejectBoth(
        h,
        register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Free, collateral: f.big[0]!.outpoint }),
        "MN_BAD_COLLATERAL",
      );
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
      expectRejectBoth(h, register({ op: mns[0]!, fund: f.small[0]! }), "MN_DUPLICATE_OPERATOR");
      const first = register({ op: ops[1]!, fund: f.small[0]! });
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
      const body = freeBody(ops[1]!);
      const byOther = encodeRegisterPayload({ ...body, operatorSig: ops[2]!.sign(registerSigMessage(body)) });
      expectRejectBoth(h, raw(TxKind.MasternodeRegister, byOther, f.small[0]!), "MN_BAD_OPERATOR_SIG");
      const consented = freeBody(ops[1]!, { address: "1.2.3.4:24200" });
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
        tier: Tier.Free,
        rewardAddress: BOB,
        collateral: null,
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
      const reg = register({ op: ops[1]!, fund: f.small[0]! });
      const d1 = deregister(ops[1]!.publicKey, f.small[1]!);
      const d2 = deregister(ops[1]!.publicKey, f.small[2]!);
      expectBlockReject(h, [reg, d1, d2], "MN_UNKNOWN");
      mineTxs(h, [reg, d1]);
      expectRejectBoth(h, d2, "MN_UNKNOWN");
    }));

  test("MN_UNAUTHORISED: update or deregistration by someone else (including the operator of an owned entry)", () =>
    withHarness((h, f) => {
      mineTxs(h, [register({ op: ops[0]!, fund: f.small[0]! })]);
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
      // With a registration in the same block the registry is never left empty.
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

  test("BAD_MASTERNODE_TX: payloads that do not decode exactly, an unknown tier, a bad service address", () =>
    withHarness((h, f) => {
      const body = freeBody(ops[1]!);
      const good = encodeRegisterPayload({ ...body, operatorSig: ops[1]!.sign(registerSigMessage(body)) });
      const flagAt = 32 + 4 + Buffer.byteLength(body.address) + 1 + 20;
      assert.equal(good[flagAt], 0);
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
        const b = freeBody(ops[1]!, { address: addr });
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
      const tx = register({ op: ops[1]!, fund: f.small[0]! });
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
      const c1 = n1.mine();
      for (const n of [n2, refB, refA]) n.feed(c1);
      // Branch A (n1): ops[0] registers as Bronze.
      const A = [
        mineTxs(n1, [
          register({ op: ops[0]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: f.big[0]!.outpoint }),
        ]),
      ];
      n1.addProducer(ops[0]!);
      A.push(n1.mine());
      const regA = n1.chain.getRegistry();
      // Branch B (n2): the same operator registers as Free (another owner coin), one block longer.
      const B = [mineTxs(n2, [register({ op: ops[0]!, fund: f.small[1]! })])];
      n2.addProducer(ops[0]!);
      B.push(n2.mine(), n2.mine());
      for (const b of B) refB.feed(b);

      const results = B.map((b) => n1.feed(b));
      assert.ok(
        results.some((r) => r.status === "reorged"),
        results.map((r) => r.status).join(","),
      );
      assert.deepEqual(n1.snapshot(), refB.snapshot(), "exactly the state of a node that never saw A");
      assert.deepEqual(schedule(n1), schedule(refB));
      const e = n1.producerEntry(ops[0]!.publicKey)!;
      assert.equal(e.tier, Tier.Free);
      assert.equal(e.collateral, null);
      assert.equal(n1.chain.storage.getUtxo(f.big[0]!.outpoint)?.amount, BRONZE);
      // A's registry is still known under A's root (side blocks keep their snapshots).
      assert.deepEqual(n1.chain.registryAfter(n1.chain.getIndex(blockHash(A[1]!.header))!), regA);

      // Back to A when it becomes heavier: built on A's stored (side) tip, with A's registry.
      const back: ProcessResult[] = [];
      let parent = blockHash(A[1]!.header);
      for (let i = 0; i < 2; i++) {
        const b = n1.makeBlock({ parentHash: parent });
        A.push(b);
        back.push(n1.feed(b));
        parent = blockHash(b.header);
      }
      for (const b of [c1, ...A]) refA.feed(b);
      assert.ok(
        back.some((r) => r.status === "reorged"),
        back.map((r) => r.status).join(","),
      );
      assert.deepEqual(n1.snapshot(), refA.snapshot());
      assert.deepEqual(schedule(n1), schedule(refA));
      assert.equal(n1.producerEntry(ops[0]!.publicKey)?.tier, Tier.Bronze);
    }, 4));

  test("a side branch whose blocks are produced by a masternode it registered is validated and wins when heavier", () =>
    withNodes((n1, n2, ref) => {
      const f = funds(n1);
      const c1 = n1.mine();
      n2.feed(c1);
      ref.feed(c1);
      // Branch B: ops[1] registers with Bronze collateral, then B runs until ops[1] has produced
      // a block in it.
      const B = [
        mineTxs(n2, [
          register({ op: ops[1]!, fund: f.small[0]!, tier: Tier.Bronze, collateral: f.big[0]!.outpoint }),
        ]),
      ];
      n2.addProducer(ops[1]!);
      let byNew = -1;
      for (let i = 0; i < 80 && byNew < 0; i++) {
        const b = n2.mine();
        B.push(b);
        if (b.header.producer.equals(ops[1]!.publicKey)) byNew = B.length - 1;
      }
      assert.ok(byNew > 0, "the new masternode produced a block on branch B");
      // Branch A (n1) is longer than that part of B, so every block up to ops[1]'s arrives as a
      // side block; then B grows one block longer than A.
      const A = Array.from({ length: byNew + 1 }, () => n1.mine());
      while (B.length <= A.length) B.push(n2.mine());
      for (const b of B) ref.feed(b);

      const statuses: string[] = [];
      B.forEach((b, i) => {
        const r = n1.feed(b);
        statuses.push(r.status);
        if (i <= byNew) assert.equal(r.status, "side", `B[${i}] is validated and stored as a side block`);
      });
      assert.ok(statuses.includes("reorged"), statuses.join(","));
      assert.ok(n1.chain.tip.hash.equals(blockHash(B[B.length - 1]!.header)));
      assert.deepEqual(n1.snapshot(), ref.snapshot());
      assert.deepEqual(schedule(n1), schedule(ref));
      assert.ok(n1.producerEntry(ops[1]!.publicKey));
    }));

  test("registry rules that need no UTXO set reject a side block before it is stored", () =>
    withNodes((n1, n2) => {
      const f = funds(n1);
      const c1 = n1.mine();
      n2.feed(c1);
      n1.mine();
      n1.mine();
      const bad = n2.makeBlock({
        txs: [register({ op: mns[1]!, fund: f.small[0]! })],
        fees: FEE,
        timestamp: slotStart(n2.chain.params, n2.chain.tip.timestamp, 0) + 1,
      });
      const before = n1.snapshot();
      assertCode(
        thrown(() => n1.feed(bad)),
        "MN_DUPLICATE_OPERATOR",
      );
      assert.equal(n1.chain.storage.hasBlock(blockHash(bad.header)), false);
      assert.ok(n1.chain.isKnownInvalid(blockHash(bad.header)), "the verdict is permanent for its hash");
      assert.deepEqual(n1.snapshot(), before);
    }, 2));

  test("a side branch with an invalid collateral is stored, then refused atomically when it would win", () =>
    withNodes((n1, n2) => {
      const f = funds(n1);
      const c1 = n1.mine();
      n2.feed(c1);
      n1.mine();
      n1.mine();
      // B registers with a collateral of the wrong amount: only the UTXO set shows it.
      const reg = register({
        op: ops[1]!,
        fund: f.small[0]!,
        tier: Tier.Bronze,
        collateral: f.under.outpoint,
      });
      const B1 = n2.makeBlock({
        txs: [reg],
        fees: FEE,
        timestamp: slotStart(n2.chain.params, n2.chain.tip.timestamp, 0) + 1,
      });
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
      const producer = scheduledProducer(registry, ghost.hash, ghost.height + 1, 0)!;
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
