import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBlock } from "../../src/consensus/blockBuilder.js";
import { ERA_BLOCKS, eraSeedInput, eraSeedOf, isEraAnchor } from "../../src/consensus/committee.js";
import {
  blockHash,
  blockMerkleRoot,
  blockSigMessage,
  decodeBlock,
  encodeBlock,
  type Block,
} from "../../src/primitives/block.js";
import { Chain, type ChainOptions, type ProcessResult } from "../../src/chain/chain.js";
import type { UtxoStats } from "../../src/chain/chainStore.js";
import { COIN } from "../../src/primitives/constants.js";
import { makeGenesisSpec, type GenesisSpec } from "../../src/consensus/genesis.js";
import { TxKind, txSigMessage, txid, type OutPoint, type Tx } from "../../src/primitives/tx.js";
import { addressFromPubkey, pubkeyHash } from "../../src/crypto/address.js";
import { KeyPair } from "../../src/crypto/ed25519.js";
import { sha256 } from "../../src/crypto/hash.js";
import {
  encodeRegistry,
  findByOperator,
  sortRegistry,
  type MasternodeEntry,
  type Registry,
} from "../../src/consensus/registry.js";
import { Tier } from "../../src/consensus/tier.js";
import {
  epochOf,
  nextSchedule,
  scheduledProducer,
  slotStart,
  type EpochSchedule,
} from "../../src/consensus/schedule.js";
import { ManualClock } from "../../src/util/clock.js";

/** A registry of `keys` as genesis entries (no collateral, no owner), all of one tier. */
export function registryOfKeys(keys: readonly KeyPair[], tier: Tier = Tier.Free): Registry {
  return sortRegistry(
    keys.map((k): MasternodeEntry => ({
      operatorPubkey: k.publicKey,
      address: "127.0.0.1:1",
      tier,
      rewardAddress: Buffer.alloc(20),
      collateral: null,
      ownerPubkey: null,
      registeredHeight: 0,
    })),
  );
}

/** Deterministic keys: seed i = SHA-256("key" ‖ tag ‖ i). */
export function testKey(tag: string, i: number): KeyPair {
  return KeyPair.fromSeed(sha256(Buffer.from(`key/${tag}/${i}`)));
}

export function testKeys(tag: string, n: number): KeyPair[] {
  return Array.from({ length: n }, (_, i) => testKey(tag, i));
}

export function tempDir(prefix = "timetest-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const GENESIS_TIME = 1_700_000_000_000;

export function testGenesis(opts: {
  masternodes: KeyPair[];
  funded?: Array<{ key: KeyPair; amount: bigint; count?: number }>;
  blockTimeMs?: number;
  timestamp?: number;
}): GenesisSpec {
  const allocations: Array<{ address: string; amount: bigint }> = [];
  for (const f of opts.funded ?? []) {
    for (let i = 0; i < (f.count ?? 1); i++)
      allocations.push({ address: addressFromPubkey(f.key.publicKey, "devnet"), amount: f.amount });
  }
  return makeGenesisSpec({
    network: "devnet",
    timestamp: opts.timestamp ?? GENESIS_TIME,
    blockTimeMs: opts.blockTimeMs ?? 1000,
    masternodes: opts.masternodes.map((k, i) => ({
      operatorPubkey: k.publicKey,
      address: `127.0.1.${i + 1}:24200`,
    })),
    allocations,
  });
}

/** Signs a transfer spending `inputs` (all owned by `key`). */
export function makeTransfer(
  key: KeyPair,
  inputs: OutPoint[],
  outputs: Array<{ to: Buffer; amount: bigint }>,
): Tx {
  const tx: Tx = {
    version: 1,
    kind: TxKind.Transfer,
    inputs: inputs.map((prevout) => ({ prevout, pubkey: key.publicKey, signature: Buffer.alloc(64) })),
    outputs: outputs.map((o) => ({ amount: o.amount, address: o.to })),
    payload: Buffer.alloc(0),
  };
  const sig = key.sign(txSigMessage(txid(tx)));
  for (const i of tx.inputs) i.signature = sig;
  return tx;
}

export interface Coin {
  outpoint: OutPoint;
  amount: bigint;
  key: KeyPair;
}

/**
 * Drives a Chain from a test: builds blocks for whichever masternode the schedule names, moving a
 * ManualClock so timestamps are valid. `producers` must hold every genesis masternode key; keys of
 * masternodes registered later are added with addProducer (the harness keeps its own copy of the
 * list, so harnesses sharing one array do not learn each other's keys).
 */
export class ChainHarness {
  readonly clock: ManualClock;
  readonly chain: Chain;
  readonly dir: string;
  readonly producers: KeyPair[];
  private readonly cleanupDir: () => void;
  /** Every block this harness built: its parent, its height, and an anchor's coinbase payload. */
  private readonly lineage = new Map<string, { prev: Buffer; height: number; payload: Buffer | undefined }>();

  constructor(
    readonly genesis: GenesisSpec,
    producers: KeyPair[],
    dir?: string,
    opts: ChainOptions = {},
  ) {
    this.producers = [...producers];
    this.clock = new ManualClock(genesis.timestamp);
    if (dir) {
      this.dir = dir;
      this.cleanupDir = () => undefined;
    } else {
      const t = tempDir();
      this.dir = t.dir;
      this.cleanupDir = t.cleanup;
    }
    this.chain = Chain.open(this.dir, genesis, { clock: this.clock }, opts);
  }

  /** Teaches the harness operator keys (e.g. of masternodes registered on chain). */
  addProducer(...keys: KeyPair[]): void {
    for (const k of keys)
      if (!this.producers.some((p) => p.publicKey.equals(k.publicKey))) this.producers.push(k);
  }

  keyFor(pubkey: Buffer): KeyPair {
    const k = this.producers.find((p) => p.publicKey.equals(pubkey));
    if (!k) throw new Error("no key for producer");
    return k;
  }

  /** Builds (but does not process) a block on `parentHash` (default: tip) at `round`. */
  makeBlock(
    opts: { txs?: Tx[]; fees?: bigint; round?: number; parentHash?: Buffer; timestamp?: number } = {},
  ): Block {
    const parent = opts.parentHash ? this.chain.getIndex(opts.parentHash)! : this.chain.tip;
    return this.makeChild(
      parent,
      this.chain.registryAfter(parent)!,
      this.chain.scheduleForChild(parent),
      opts,
    );
  }

  /**
   * Builds a block on a parent block this node need not store (e.g. a block it rejected), using
   * `registry` (default: the tip's registry) as the registry after the parent.
   */
  makeBlockOn(
    parent: Block,
    opts: {
      txs?: Tx[];
      fees?: bigint;
      round?: number;
      timestamp?: number;
      registry?: Registry;
      schedule?: EpochSchedule;
    } = {},
  ): Block {
    const h = parent.header;
    const stored = this.chain.getIndex(blockHash(h));
    const registry = opts.registry ?? this.chain.getRegistry();
    // Unstored parent: walk the tip's epoch schedule forward, the registry staying `registry`.
    let schedule = opts.schedule ?? (stored ? this.chain.scheduleForChild(stored) : undefined);
    if (!schedule) {
      let s = this.chain.scheduleForChild(this.chain.tip);
      const want = epochOf(h.height + 1);
      if (s.epoch > want) throw new Error("makeBlockOn: pass the schedule of that epoch");
      while (s.epoch < want) s = nextSchedule(s, registry);
      schedule = s;
    }
    // The parent may be a block built here and changed since (resealed): learn it as it is.
    this.remember(parent);
    return this.makeChild(
      { hash: blockHash(h), height: h.height, timestamp: h.timestamp },
      registry,
      schedule,
      opts,
    );
  }

  private makeChild(
    parent: { hash: Buffer; height: number; timestamp: number },
    registry: Registry,
    schedule: EpochSchedule,
    opts: { txs?: Tx[]; fees?: bigint; round?: number; timestamp?: number },
  ): Block {
    const round = opts.round ?? 0;
    const producer = scheduledProducer(schedule, parent.height + 1, round, registry)!;
    const ts = opts.timestamp ?? slotStart(this.chain.params, parent.timestamp, round);
    if (this.clock.now() < ts) this.clock.set(ts);
    const block = buildBlock({
      parentHash: parent.hash,
      parentHeight: parent.height,
      registry,
      producer: this.keyFor(producer.operatorPubkey),
      round,
      timestamp: ts,
      txs: opts.txs ?? [],
      fees: opts.fees ?? 0n,
      eraProofInput: this.eraProofInput(parent),
    });
    this.remember(block);
    return block;
  }

  private remember(block: Block): void {
    const h = block.header;
    this.lineage.set(blockHash(h).toString("hex"), {
      prev: h.prevHash,
      height: h.height,
      payload: isEraAnchor(h.height) ? block.txs[0]!.payload : undefined,
    });
  }

  /**
   * What an era anchor's producer proves (committee.ts): the previous era's seed on the parent's
   * branch, found through the chain's store or the blocks this harness built but did not feed.
   */
  private eraProofInput(parent: { hash: Buffer; height: number }): Buffer | undefined {
    const height = parent.height + 1;
    if (!isEraAnchor(height)) return undefined;
    const era = height / ERA_BLOCKS;
    let hash = parent.hash;
    let at = parent.height;
    while (at > (era - 1) * ERA_BLOCKS) {
      const known = this.lineage.get(hash.toString("hex"));
      const prev = known?.prev ?? this.chain.getBlock(hash)?.header.prevHash;
      if (!prev) throw new Error(`makeBlockOn: block ${hash.toString("hex")} is unknown`);
      hash = prev;
      at--;
    }
    const payload =
      this.lineage.get(hash.toString("hex"))?.payload ??
      this.chain.getBlock(hash)?.txs[0]!.payload ??
      Buffer.alloc(0);
    const seed = eraSeedOf({ hash, height: at, coinbasePayload: payload });
    if (!seed) throw new Error(`makeBlockOn: no era seed at ${hash.toString("hex")}`);
    return eraSeedInput(this.chain.genesisHash, era, seed);
  }

  /** Processes a block after moving the clock up to its timestamp (as a node receiving it would). */
  feed(block: Block): ProcessResult {
    if (this.clock.now() < block.header.timestamp) this.clock.set(block.header.timestamp);
    return this.chain.processBlock(block);
  }

  /** Everything that must match between two nodes on the same chain. */
  snapshot(): ChainSnapshot {
    const s = this.chain.storage;
    return {
      tip: this.chain.tip.hash.toString("hex"),
      height: this.chain.height,
      storedTip: s.getTipHash().toString("hex"),
      stats: s.getStats(),
      registryRoot: s.getRegistryRoot().toString("hex"),
      registry: encodeRegistry(this.chain.getRegistry()).toString("hex"),
      // The main-chain height index, one past the tip (which must be empty).
      heightIndex: Array.from(
        { length: this.chain.height + 2 },
        (_, i) => s.getHashAtHeight(i)?.toString("hex") ?? "none",
      ),
      utxos: utxoDump(this.chain),
    };
  }

  /** Builds and processes a block; returns it. */
  mine(opts: Parameters<ChainHarness["makeBlock"]>[0] = {}): Block {
    const b = this.makeBlock(opts);
    const r = this.chain.processBlock(b);
    if (r.status !== "connected" && r.status !== "reorged" && r.status !== "side") {
      throw new Error(`unexpected process status ${r.status}`);
    }
    return b;
  }

  /** Genesis allocations owned by `key`, as spendable coins. */
  genesisCoins(key: KeyPair): Coin[] {
    const gHash = this.chain.getHashAtHeight(0)!;
    const g = this.chain.getBlock(gHash)!;
    const id = txid(g.txs[0]!);
    const addr = pubkeyHash(key.publicKey);
    const out: Coin[] = [];
    g.txs[0]!.outputs.forEach((o, index) => {
      if (o.address.equals(addr)) out.push({ outpoint: { txid: id, index }, amount: o.amount, key });
    });
    return out;
  }

  producerEntry(pubkey: Buffer) {
    return findByOperator(this.chain.getRegistry(), pubkey);
  }

  async close(): Promise<void> {
    await this.chain.close();
    this.cleanupDir();
  }
}

export interface ChainSnapshot {
  tip: string;
  height: number;
  storedTip: string;
  stats: UtxoStats;
  registryRoot: string;
  /** The tip's registry, canonically encoded (hex). */
  registry: string;
  heightIndex: string[];
  utxos: string[];
}

/** The whole UTXO set as "outpoint=entry" hex strings, in key order. */
export function utxoDump(chain: Chain): string[] {
  return [...chain.storage.iterateUtxos()].map((u) => `${u.key.toString("hex")}=${u.value.toString("hex")}`);
}

/** A deep copy, safe to mutate. */
export function cloneBlock(b: Block): Block {
  return decodeBlock(encodeBlock(b));
}

/**
 * Recomputes the merkle root (unless `keepMerkle`) and re-signs the header with `key`, so a
 * mutation trips only the rule under test.
 */
export function reseal(b: Block, key: KeyPair, opts: { keepMerkle?: boolean } = {}): Block {
  if (!opts.keepMerkle) b.header.merkleRoot = blockMerkleRoot(b.txs);
  b.header.signature = key.sign(blockSigMessage(blockHash(b.header)));
  return b;
}

export { COIN };

/**
 * A factory of ChainHarnesses on one genesis, each closed (store and temporary directory) once
 * the calling test file's tests are done.
 */
export function harnessesClosedAfter(genesis: GenesisSpec, producers: KeyPair[]): () => ChainHarness {
  const open: ChainHarness[] = [];
  after(async () => {
    for (const h of open.splice(0)) await h.close();
  });
  return () => {
    const h = new ChainHarness(genesis, producers);
    open.push(h);
    return h;
  };
}
