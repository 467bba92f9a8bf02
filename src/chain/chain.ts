import type { Registry } from "../consensus/registry.js";
import {
  anchorHeightOf,
  decodeSchedule,
  encodeSchedule,
  EPOCH_BLOCKS,
  epochOf,
  genesisSchedule,
  nextSchedule,
  type EpochSchedule,
} from "../consensus/schedule.js";
import {
  decodeEquivocation,
  describeEquivocation,
  encodeEquivocation,
  evidenceTx,
  makeEquivocation,
  offenderOf,
  type Equivocation,
} from "../consensus/evidence.js";
import type { Clock } from "../util/clock.js";
import { BoundedMap } from "../util/boundedMap.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { blockHash, encodeBlock, type Block, type BlockHeader } from "../primitives/block.js";
import { ROUND_WEIGHT_BASE } from "../primitives/constants.js";
import type { Tx } from "../primitives/tx.js";
import { ChainStore, StoreError, blockWork, type BlockIndex } from "./chainStore.js";
import type { ChainEvents, ChainReader } from "./chainReader.js";
import { BlockError, isPermanentForHash } from "../primitives/errors.js";
import { findByOperator as findRegistered } from "../consensus/registry.js";
import { genesisRegistry, type GenesisSpec, buildGenesisBlock } from "../consensus/genesis.js";
import { chainParams, type ChainParams } from "../primitives/params.js";
import { txid as txidOf } from "../primitives/tx.js";
import {
  checkBlockSanity,
  checkBodyWithoutUtxos,
  checkHeaderContext,
  connectTransactions,
  type BlockContext,
  type CheckedBlock,
} from "../consensus/validation.js";

/** Known-invalid block hashes, so a peer re-sending one costs nothing. */
const INVALID_CACHE_SIZE = 10_000;

/**
 * A side block is stored only while its branch could still win: its cumulative work is at least
 * the tip's minus the work of 8 round-0 blocks (or the sync has validated headers showing its
 * branch beats the tip), and it forks above tip − max_reorg_depth. A competing block at the tip,
 * a partition's other side and a late block all fit; junk on an old parent does not.
 */
export const SIDE_BRANCH_WORK_MARGIN = 8n * ROUND_WEIGHT_BASE;
/** Epoch schedules kept in memory (side anchors are not stored; main anchors are). */
const SCHEDULE_CACHE_SIZE = 256;
/** Hashes the sync coordinator has validated headers for and will fetch (bounded). */
const MAX_EXPECTED = 20_000;

export type ProcessResult =
  | { status: "connected"; hash: Buffer; height: number }
  | { status: "reorged"; hash: Buffer; height: number; depth: number; fork: BlockIndex }
  | { status: "side"; hash: Buffer; height: number }
  | { status: "duplicate"; hash: Buffer }
  /**
   * The block cannot be validated yet: its parent is unknown (`reason` absent or
   * "unknown-parent"), or the parent is stored but the registry after it is not
   * ("unknown-parent-state"; every block stored by this version has its snapshot, so only an
   * older or damaged store can give it). Nothing is stored and the sender is not blamed.
   */
  | {
      status: "orphan";
      hash: Buffer;
      prevHash: Buffer;
      reason?: "unknown-parent" | "unknown-parent-state";
    }
  | { status: "reorg-refused"; hash: Buffer; depth: number }
  /**
   * Valid, but its branch cannot win (it forks below tip − max_reorg_depth, or has too little
   * work): not stored. Not the sender's fault: an honest late block looks the same.
   */
  | { status: "side-refused"; hash: Buffer; height: number; reason: "too-deep" | "too-light" }
  /**
   * Valid, but its producer already has another stored block for this (height, round): kept as
   * evidence only (the body is not stored), unless it extends the best chain.
   */
  | { status: "equivocation"; hash: Buffer; height: number; evidence: Equivocation };

export type { ChainEvents };

/** Plain-data options for Chain.open. */
export interface ChainOptions {
  /**
   * Overrides the reorg policy's maxDepth (NetworkParams.reorg). For tests and
   * simulations that exercise the limit with short chains; production nodes leave it unset.
   */
  maxReorgDepth?: number;
  /**
   * Durable commits (default true): each write transaction returns once it is on disk. false is
   * only for the benchmark that measures what durability costs; a node never sets it.
   */
  durable?: boolean;
}

export interface ChainLogger {
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>, err?: unknown): void;
}

/**
 * Fork choice (docs/CONSENSUS.md): the tip with more cumulative work wins; equal work goes to the
 * smaller block hash (bytewise). It is a total order on distinct tips.
 */
export function isBetterTip(a: BlockIndex, b: BlockIndex): boolean {
  if (a.work !== b.work) return a.work > b.work;
  return Buffer.compare(a.hash, b.hash) < 0;
}

/**
 * The chain: validates blocks, keeps side branches, and switches branches when fork choice says
 * so. Every method is synchronous: each state change is one LMDB write transaction that runs to
 * completion before anything else on the event loop, so no lock is needed.
 */
export class Chain implements ChainReader {
  readonly events = new TypedEmitter<ChainEvents>();
  readonly params: ChainParams;
  readonly genesisHash: Buffer;
  readonly genesis: GenesisSpec;
  private readonly store: ChainStore;
  private readonly clock: Clock;
  private readonly logger: ChainLogger | undefined;
  private readonly invalid = new BoundedMap<string, BlockError>(INVALID_CACHE_SIZE);
  private readonly schedules = new BoundedMap<string, EpochSchedule>(SCHEDULE_CACHE_SIZE);
  /** Block hash → until when (epoch ms) the sync expects it: stored whatever its branch's work. */
  private readonly expected = new BoundedMap<string, number>(MAX_EXPECTED);
  private tipEntry: BlockIndex;

  private constructor(
    store: ChainStore,
    genesis: GenesisSpec,
    genesisHash: Buffer,
    modules: { clock: Clock; logger?: ChainLogger },
    opts: ChainOptions,
  ) {
    this.store = store;
    this.genesis = genesis;
    this.genesisHash = genesisHash;
    const params = chainParams(genesis.network, genesis.blockTimeMs);
    this.params =
      opts.maxReorgDepth === undefined
        ? params
        : { ...params, reorg: { ...params.reorg, maxDepth: opts.maxReorgDepth } };
    this.clock = modules.clock;
    this.logger = modules.logger;
    const tip = store.getIndex(store.getTipHash());
    if (!tip) throw new StoreError("tip block index entry is missing");
    this.tipEntry = tip;
  }

  /** Opens the chain in `dir`, creating it from the genesis on first use. */
  static open(
    dir: string,
    genesis: GenesisSpec,
    modules: { clock: Clock; logger?: ChainLogger },
    opts: ChainOptions = {},
  ): Chain {
    if (
      opts.maxReorgDepth !== undefined &&
      (!Number.isSafeInteger(opts.maxReorgDepth) || opts.maxReorgDepth < 0)
    ) {
      throw new RangeError(`maxReorgDepth must be a non-negative integer, got ${opts.maxReorgDepth}`);
    }
    const gBlock = buildGenesisBlock(genesis);
    const gHash = blockHash(gBlock.header);
    const store = ChainStore.open(dir, genesis.network, gHash, { durable: opts.durable ?? true });
    if (store.isEmpty) {
      const checked = checkBlockSanityGenesis(gBlock, gHash);
      const registry = genesisRegistry(genesis);
      store.initGenesis(genesis.network, gBlock, gHash, registry, {
        spent: [],
        created: gBlock.txs[0]!.outputs.map((o, index) => ({
          outpoint: { txid: checked.txids[0]!, index },
          entry: { amount: o.amount, address: o.address, height: 0, coinbase: true },
        })),
        fees: 0n,
        registry,
        slashed: [],
      });
    }
    let chain: Chain;
    try {
      chain = new Chain(store, genesis, gHash, modules, opts);
    } catch (e) {
      void store.close().catch(() => undefined);
      throw e;
    }
    chain.recoverBestTip();
    return chain;
  }

  /**
   * Fork choice runs again when the chain opens, over the stored branches: a crash between
   * storing a better side block and switching to it leaves the better block stored; switch now.
   */
  private recoverBestTip(): void {
    let best: BlockIndex | null = null;
    for (const { hash } of this.store.iterateSide()) {
      const e = this.store.getIndex(hash);
      if (!e || this.isKnownInvalid(hash)) continue;
      if (isBetterTip(e, best ?? this.tipEntry)) best = e;
    }
    if (!best) return;
    this.logger?.info("A stored branch is better than the tip: switching to it", {
      tip: this.tipEntry.hash.toString("hex"),
      height: this.tipEntry.height,
      better: best.hash.toString("hex"),
      betterHeight: best.height,
    });
    try {
      this.reorgTo(best);
    } catch (e) {
      this.logger?.warn("Switching to the stored branch failed; keeping the tip", {}, e);
    }
  }

  /** While a batch is open, events wait here until its commit succeeds. */
  private batchEvents: Array<() => void> | null = null;

  private emit<K extends keyof ChainEvents>(event: K, payload: ChainEvents[K]): void {
    if (this.batchEvents) this.batchEvents.push(() => this.events.emit(event, payload));
    else this.events.emit(event, payload);
  }

  /**
   * Processes blocks in order inside ONE write transaction; each block still runs in its own
   * child transaction, so an invalid block rolls back alone and stops the batch. One commit (one
   * fsync) per batch instead of per block is what makes import and sync fast; events fire only
   * after the batch is on disk.
   */
  processBlocks(items: ReadonlyArray<{ block: Block; raw?: Uint8Array }>): {
    results: ProcessResult[];
    error?: unknown;
  } {
    if (this.batchEvents) throw new Error("processBlocks is not re-entrant");
    const tipBefore = this.tipEntry;
    const queued: Array<() => void> = [];
    const results: ProcessResult[] = [];
    let error: unknown;
    this.batchEvents = queued;
    try {
      this.store.atomically(() => {
        for (const it of items) {
          try {
            results.push(this.processBlock(it.block, it.raw));
          } catch (e) {
            error = e;
            break;
          }
        }
      });
    } catch (e) {
      this.tipEntry = tipBefore;
      throw e;
    } finally {
      this.batchEvents = null;
    }
    for (const fn of queued) fn();
    if (!this.tipEntry.hash.equals(tipBefore.hash)) this.afterTipChange();
    return error === undefined ? { results } : { results, error };
  }

  get tip(): BlockIndex {
    return this.tipEntry;
  }

  get height(): number {
    return this.tipEntry.height;
  }

  /** Direct read access for RPC, sync and verify. Writes go through Chain only. */
  get storage(): ChainStore {
    return this.store;
  }

  getIndex(hash: Uint8Array): BlockIndex | undefined {
    return this.store.getIndex(hash);
  }
  getBlock(hash: Uint8Array): Block | undefined {
    return this.store.getBlock(hash);
  }

  /** A stored block's header, without decoding its body. */
  getHeader(hash: Uint8Array): BlockHeader | undefined {
    return this.store.getHeader(hash);
  }
  getHashAtHeight(height: number): Buffer | undefined {
    return this.store.getHashAtHeight(height);
  }
  getRegistry(): Registry {
    return this.store.getRegistry();
  }
  /** The registry as it stood after `entry`, when known. */
  registryAfter(entry: BlockIndex): Registry | undefined {
    return this.store.getRegistryByRoot(entry.mnRoot);
  }
  isKnownInvalid(hash: Uint8Array): boolean {
    return this.invalid.has(Buffer.from(hash).toString("hex"));
  }
  /** Whether `hash` is on the main chain. */
  isMain(entry: BlockIndex): boolean {
    const h = this.store.getHashAtHeight(entry.height);
    return h !== undefined && h.equals(entry.hash);
  }

  /**
   * Validates and stores a block, extending the tip or a side branch, and reorganises when a side
   * branch becomes better. Throws BlockError for an invalid block.
   *
   * - A block already stored that beats the tip (a crash came between storing it and switching)
   *   triggers the switch.
   * - A second block of one producer for one (height, round) is recorded as evidence; its body is
   *   stored only if it extends the tip, or the sync expects it (validated headers of a branch
   *   that needs it to win).
   * - A side block is stored only while its branch could still win (SIDE_BRANCH_WORK_MARGIN, the
   *   reorg depth) or the sync expects it; otherwise it is refused without blame.
   */
  processBlock(block: Block, raw?: Uint8Array): ProcessResult {
    const hash = blockHash(block.header);
    const hex = hash.toString("hex");
    const known = this.invalid.get(hex);
    if (known) throw known;
    const stored = this.store.getIndex(hash);
    if (stored) {
      if (this.store.isSide(hash) && isBetterTip(stored, this.tipEntry)) return this.reorgTo(stored);
      return { status: "duplicate", hash };
    }
    if (this.invalid.has(block.header.prevHash.toString("hex"))) {
      const err = new BlockError("BAD_PREV_HASH", "block builds on a known-invalid block");
      this.invalid.set(hex, err);
      throw err;
    }
    // Body errors are not cached by hash: a peer could pair a good header with a bad body.
    // The bytes it arrived in are stored as they are (the codec has one encoding per block, so
    // they equal encodeBlock(block)); a block built here is encoded once.
    const bytes = raw ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength) : encodeBlock(block);
    const checked = checkBlockSanity(block, bytes.length);
    const parent = this.store.getIndex(block.header.prevHash);
    if (!parent) return { status: "orphan", hash, prevHash: block.header.prevHash, reason: "unknown-parent" };
    const registry = this.store.getRegistryByRoot(parent.mnRoot);
    if (!registry) {
      // Input from a peer must never surface as a storage error: without the parent's registry
      // the block cannot be checked, so it is treated like an orphan (not stored, not blamed).
      this.logger?.warn("Parent's masternode registry is unknown; block not validated", {
        hash: hex,
        parent: parent.hash.toString("hex"),
        mnRoot: parent.mnRoot.toString("hex"),
      });
      return { status: "orphan", hash, prevHash: block.header.prevHash, reason: "unknown-parent-state" };
    }
    const ctx = this.contextFor(parent, registry);
    const isTipChild = parent.hash.equals(this.tipEntry.hash);
    let sideRegistry: Registry | null = null;
    try {
      checkHeaderContext(checked, ctx);
      // A side block is stored before its transactions meet a UTXO set, so check now what needs
      // none: a stored body must not be a signature-tampered copy (it would shadow the genuine
      // block under the same hash), and it must name a registry its children can be checked with.
      if (!isTipChild) sideRegistry = checkBodyWithoutUtxos(checked, ctx);
    } catch (e) {
      if (e instanceof BlockError && isPermanentForHash(e.code)) this.invalid.set(hex, e);
      throw e;
    }
    const entry: BlockIndex = {
      hash,
      height: block.header.height,
      prevHash: block.header.prevHash,
      timestamp: block.header.timestamp,
      round: block.header.round,
      producer: block.header.producer,
      mnRoot: block.header.mnRoot,
      work: parent.work + blockWork(block.header.round),
      size: checked.size,
      txCount: block.txs.length,
    };
    // The producer signed another stored block for this slot: proof of equivocation.
    const holder = this.store.getSlot(entry.producer, entry.height, entry.round);
    let evidence: Equivocation | null = null;
    if (holder && !holder.equals(hash)) {
      const other = this.store.getHeader(holder);
      if (other) {
        evidence = makeEquivocation(other, block.header);
        this.recordEvidence(evidence);
      }
    }
    if (isTipChild) {
      this.connectTip(checked, bytes, entry, ctx);
      return { status: "connected", hash, height: entry.height };
    }
    // At most one block per (producer, height, round) is stored, unless the sync has validated
    // headers on top of this one: a branch that needs it to win.
    const expected = this.isExpected(hash);
    if (evidence && !expected) return { status: "equivocation", hash, height: entry.height, evidence };
    if (!expected) {
      const refusal = this.sideRefusal(entry, parent);
      if (refusal) return { status: "side-refused", hash, height: entry.height, reason: refusal };
    }
    // A side branch: keep it with the registry after it (content-addressed by its mnRoot, so the
    // snapshot is shared when unchanged), so its children can be validated; then switch if it is
    // now the better tip.
    const after = sideRegistry ?? registry;
    this.store.atomically(() => {
      this.store.putBlock(entry, bytes, true);
      this.store.putRegistrySnapshot(after);
    });
    if (!isBetterTip(entry, this.tipEntry)) return { status: "side", hash, height: entry.height };
    return this.reorgTo(entry);
  }

  /**
   * Whether a block with this header would be refused as a side block (its branch cannot win),
   * judged from the header alone so a relay need not download the body: null when the parent is
   * unknown or the tip, when the sync expects it, or when it would be a second block for a stored
   * block's (producer, height, round), which is evidence worth fetching.
   */
  sideRefusalOf(header: BlockHeader): "too-deep" | "too-light" | null {
    const parent = this.store.getIndex(header.prevHash);
    if (!parent || parent.hash.equals(this.tipEntry.hash)) return null;
    const hash = blockHash(header);
    if (this.isExpected(hash)) return null;
    const holder = this.store.getSlot(header.producer, header.height, header.round);
    if (holder && !holder.equals(hash)) return null;
    const work = parent.work + blockWork(header.round);
    return this.sideRefusal({ work }, parent);
  }

  /** Why a side block's branch cannot win, or null: too deep a fork, or too little work. */
  private sideRefusal(entry: Pick<BlockIndex, "work">, parent: BlockIndex): "too-deep" | "too-light" | null {
    if (entry.work + SIDE_BRANCH_WORK_MARGIN < this.tipEntry.work) return "too-light";
    const floor = this.tipEntry.height - this.params.reorg.maxDepth;
    // Walk down the side branch to the main chain; heights fall by one a step, so the walk ends
    // within entry.height − floor steps.
    let e: BlockIndex | undefined = parent;
    while (e && this.store.isSide(e.hash)) {
      if (e.height < floor) return "too-deep";
      e = this.store.getIndex(e.prevHash);
    }
    if (!e || e.height < floor) return "too-deep";
    return null;
  }

  /**
   * The sync coordinator validated these headers and will fetch their blocks: store them as side
   * blocks whatever their branch's work so far (a long heavier branch is lighter than our tip
   * until its end). Kept for `ttlMs`, and never pruned meanwhile.
   */
  expect(hashes: readonly Buffer[], ttlMs: number): void {
    const until = this.clock.now() + Math.max(0, ttlMs);
    for (const h of hashes) this.expected.set(h.toString("hex"), until);
  }

  private isExpected(hash: Buffer): boolean {
    const hex = hash.toString("hex");
    const until = this.expected.get(hex);
    if (until === undefined) return false;
    if (until >= this.clock.now()) return true;
    this.expected.delete(hex);
    return false;
  }

  /**
   * Deletes stored side blocks whose branch can no longer win (work more than the margin behind
   * the tip, or below tip − max_reorg_depth), unless the sync expects them or a descendant that
   * can still win needs them. Returns how many were deleted.
   */
  pruneSideBranches(): number {
    const tip = this.tipEntry;
    const floor = tip.height - this.params.reorg.maxDepth;
    const side: BlockIndex[] = [];
    for (const { hash } of this.store.iterateSide()) {
      const e = this.store.getIndex(hash);
      if (e) side.push(e);
    }
    if (side.length === 0) return 0;
    side.sort((a, b) => b.height - a.height);
    const needed = new Set<string>();
    for (const e of side) {
      const hex = e.hash.toString("hex");
      const keep =
        needed.has(hex) ||
        this.isExpected(e.hash) ||
        (e.work + SIDE_BRANCH_WORK_MARGIN >= tip.work && e.height >= floor);
      if (keep) {
        needed.add(hex);
        needed.add(e.prevHash.toString("hex"));
      }
    }
    const doomed = side.filter((e) => !needed.has(e.hash.toString("hex")));
    if (doomed.length === 0) return 0;
    this.store.atomically(() => {
      for (const e of doomed) this.store.deleteSideBlock(e);
    });
    for (const e of doomed) this.schedules.delete(e.hash.toString("hex"));
    this.logger?.info("Pruned side blocks that can no longer win", {
      blocks: doomed.length,
      tip: tip.height,
    });
    return doomed.length;
  }

  // ---- the producer schedule ----

  /** The ancestor of `entry` (or `entry` itself) at `height`. */
  ancestorAt(entry: BlockIndex, height: number): BlockIndex {
    if (height > entry.height || height < 0)
      throw new StoreError(`no ancestor of ${entry.hash.toString("hex")} at height ${height}`);
    let e = entry;
    while (e.height > height) {
      if (!this.store.isSide(e.hash)) {
        // On the main chain: every ancestor is too, and the height index finds it at once.
        const h = this.store.getHashAtHeight(height);
        if (h) return this.mustIndex(h);
      }
      e = this.mustIndex(e.prevHash);
    }
    return e;
  }

  /** The schedule of the epoch that `parent`'s children (height parent.height + 1) belong to. */
  scheduleForChild(parent: BlockIndex): EpochSchedule {
    const anchor = this.ancestorAt(parent, anchorHeightOf(epochOf(parent.height + 1)));
    return this.scheduleAt(anchor);
  }

  /**
   * The schedule fixed by an anchor block (height a multiple of EPOCH_BLOCKS): epoch 0 from the
   * genesis registry, then each from the one before and the registry after its anchor. Computed
   * once per anchor; main-chain anchors are stored, side ones kept in memory.
   */
  scheduleAt(anchor: BlockIndex): EpochSchedule {
    const pending: BlockIndex[] = [];
    let base: EpochSchedule | undefined;
    for (let a: BlockIndex = anchor; ;) {
      base = this.cachedSchedule(a);
      if (base) break;
      if (a.height === 0) {
        base = genesisSchedule(this.registryOrThrow(a));
        this.schedules.set(a.hash.toString("hex"), base);
        break;
      }
      pending.push(a);
      a = this.ancestorAt(a, a.height - EPOCH_BLOCKS);
    }
    for (let i = pending.length - 1; i >= 0; i--) {
      const a = pending[i]!;
      base = nextSchedule(base, this.registryOrThrow(a));
      this.schedules.set(a.hash.toString("hex"), base);
    }
    return base;
  }

  private cachedSchedule(anchor: BlockIndex): EpochSchedule | undefined {
    const hex = anchor.hash.toString("hex");
    const hit = this.schedules.get(hex);
    if (hit) return hit;
    const bytes = this.store.getSchedule(anchor.hash);
    if (!bytes) return undefined;
    const s = decodeSchedule(bytes);
    this.schedules.set(hex, s);
    return s;
  }

  private registryOrThrow(entry: BlockIndex): Registry {
    const reg = this.store.getRegistryByRoot(entry.mnRoot);
    if (!reg) throw new StoreError(`registry snapshot ${entry.mnRoot.toString("hex")} is missing`);
    return reg;
  }

  /** Inside a write transaction: stores the schedule an anchor block fixes, once it is main. */
  private persistScheduleIfAnchor(entry: BlockIndex): void {
    if (entry.height === 0 || entry.height % EPOCH_BLOCKS !== 0) return;
    if (this.store.getSchedule(entry.hash)) return;
    this.store.putSchedule(entry.hash, encodeSchedule(this.scheduleAt(entry)));
  }

  // ---- evidence ----

  /**
   * Keeps evidence of equivocation (the first one per offender is all that is needed). Returns
   * true when it is new. The caller has checked it (checkEquivocation).
   */
  recordEvidence(ev: Equivocation): boolean {
    const offender = offenderOf(ev);
    const fresh = this.store.atomically(() =>
      this.store.putEvidence(offender, encodeEquivocation(ev), this.clock.now()),
    );
    if (!fresh) return false;
    this.logger?.warn("Equivocation: a producer signed two blocks for one slot", describeEquivocation(ev));
    this.emit("evidence", ev);
    return true;
  }

  /** Whether evidence against this operator key is held. */
  hasEvidenceAgainst(operator: Uint8Array): boolean {
    return this.store.getEvidence(operator) !== undefined;
  }

  /** Every piece of evidence held, with when it was first seen and where it was put on chain. */
  listEvidence(): Array<{ evidence: Equivocation; seenAt: number; slashedAt: number | null }> {
    const out = [];
    for (const r of this.store.iterateEvidence()) {
      try {
        out.push({
          evidence: decodeEquivocation(r.bytes),
          seenAt: r.seenAt,
          slashedAt: this.store.slashedAt(r.operator) ?? null,
        });
      } catch {
        // Stored by this node after checking; skip anything unreadable rather than fail the list.
      }
    }
    return out;
  }

  /**
   * Evidence transactions for the next block on the tip: against producers still registered
   * after the tip (at most `max`).
   */
  pendingEvidenceTxs(max: number): Tx[] {
    const registry = this.getRegistry();
    const out: Tx[] = [];
    for (const { evidence } of this.listEvidence()) {
      if (out.length >= max) break;
      if (findRegistered(registry, offenderOf(evidence))) out.push(evidenceTx(evidence));
    }
    return out;
  }

  private contextFor(parent: BlockIndex, registry: Registry): BlockContext {
    return {
      params: this.params,
      parentHash: parent.hash,
      parentHeight: parent.height,
      parentTimestamp: parent.timestamp,
      registry,
      schedule: this.scheduleForChild(parent),
      now: this.clock.now(),
    };
  }

  private connectTip(checked: CheckedBlock, bytes: Buffer, entry: BlockIndex, ctx: BlockContext): void {
    const block = checked.block;
    try {
      this.store.atomically(() => {
        const changes = connectTransactions(checked, ctx, this.store);
        this.store.putBlock(entry, bytes);
        this.store.applyConnect(entry, changes, checked.txids);
        this.persistScheduleIfAnchor(entry);
      });
    } catch (e) {
      if (e instanceof BlockError && isPermanentForHash(e.code)) {
        this.invalid.set(entry.hash.toString("hex"), e);
      }
      throw e;
    }
    this.tipEntry = entry;
    this.emit("blockConnected", { block, entry });
    this.emit("tip", entry);
    if (!this.batchEvents) this.afterTipChange();
  }

  /** Once the tip has moved (and outside a batch): side branches it left behind are pruned. */
  private afterTipChange(): void {
    try {
      this.pruneSideBranches();
    } catch (e) {
      this.logger?.warn("Pruning side branches failed", {}, e);
    }
  }

  /** The last common block of the main chain and the branch ending at `entry`. */
  findFork(entry: BlockIndex): BlockIndex {
    let a: BlockIndex = this.tipEntry;
    let b: BlockIndex = entry;
    while (!a.hash.equals(b.hash)) {
      if (a.height >= b.height) a = this.mustIndex(a.prevHash);
      else b = this.mustIndex(b.prevHash);
    }
    return a;
  }

  private mustIndex(hash: Buffer): BlockIndex {
    const e = this.store.getIndex(hash);
    if (!e) throw new StoreError(`block index entry ${hash.toString("hex")} is missing`);
    return e;
  }

  /**
   * Switches to the branch ending at `target` in ONE write transaction: disconnect back to the
   * fork, then validate and connect each block of the branch. If a branch block is invalid the
   * whole transaction is dropped, the block is marked invalid, and the best valid prefix of the
   * branch is tried instead if it still beats the tip.
   */
  reorgTo(target: BlockIndex): ProcessResult {
    const oldTip = this.tipEntry;
    const fork = this.findFork(target);
    const depth = oldTip.height - fork.height;
    if (depth > this.params.reorg.maxDepth) {
      this.logger?.warn("Refusing reorg deeper than max_reorg_depth", {
        depth,
        max: this.params.reorg.maxDepth,
      });
      return { status: "reorg-refused", hash: target.hash, depth };
    }
    const branch: BlockIndex[] = [];
    for (let e = target; !e.hash.equals(fork.hash); e = this.mustIndex(e.prevHash)) branch.push(e);
    branch.reverse();
    const disconnected: Array<{ block: Block; entry: BlockIndex }> = [];
    const connected: Array<{ block: Block; entry: BlockIndex }> = [];
    let failedAt = -1;
    let failure = null as BlockError | null;
    try {
      this.store.atomically(() => {
        // The fork is on the main chain, so its registry snapshot is stored; each branch block's
        // registry is then carried forward from connecting its parent.
        let registry = this.store.getRegistryByRoot(fork.mnRoot);
        if (!registry) throw new StoreError(`registry at fork ${fork.hash.toString("hex")} is missing`);
        for (let e = oldTip; !e.hash.equals(fork.hash);) {
          const parent = this.mustIndex(e.prevHash);
          disconnected.push({ block: this.store.applyDisconnect(e, parent), entry: e });
          e = parent;
        }
        let parent = fork;
        for (let i = 0; i < branch.length; i++) {
          const entry = branch[i]!;
          const block = this.store.getBlock(entry.hash);
          if (!block) throw new StoreError(`side block ${entry.hash.toString("hex")} body is missing`);
          try {
            const checked = checkBlockSanity(block, entry.size);
            const ctx = this.contextFor(parent, registry);
            checkHeaderContext(checked, ctx);
            const changes = connectTransactions(checked, ctx, this.store);
            this.store.applyConnect(entry, changes, checked.txids);
            this.persistScheduleIfAnchor(entry);
            registry = changes.registry ?? registry;
          } catch (e) {
            if (e instanceof BlockError) {
              failedAt = i;
              failure = e;
            }
            throw e;
          }
          connected.push({ block, entry });
          parent = entry;
        }
      });
    } catch (e) {
      if (!(e instanceof BlockError) || failedAt < 0) throw e;
      const bad = branch[failedAt]!;
      this.logger?.warn("Reorg aborted: invalid block on the new branch", {
        hash: bad.hash.toString("hex"),
        height: bad.height,
        code: e.code,
      });
      if (failure !== null && isPermanentForHash(failure.code)) {
        for (let i = failedAt; i < branch.length; i++) {
          this.invalid.set(branch[i]!.hash.toString("hex"), failure);
        }
      }
      const prefix = failedAt > 0 ? branch[failedAt - 1]! : null;
      if (prefix && isBetterTip(prefix, this.tipEntry)) return this.reorgTo(prefix);
      throw e;
    }
    this.tipEntry = target;
    for (const d of disconnected) this.emit("blockDisconnected", d);
    for (const c of connected) this.emit("blockConnected", c);
    this.logger?.info("Reorganised to a better branch", {
      depth,
      fork: fork.height,
      oldTip: oldTip.hash.toString("hex"),
      newTip: target.hash.toString("hex"),
      newHeight: target.height,
    });
    this.emit("reorg", { depth, oldTip, newTip: target, fork });
    this.emit("tip", target);
    if (!this.batchEvents) this.afterTipChange();
    return { status: "reorged", hash: target.hash, height: target.height, depth, fork };
  }

  /**
   * Disconnects the tip block (one write transaction) and makes its parent the tip. The block
   * stays stored as a side block. For operator tools (invalidateblock-style) and tests; fork
   * choice is not re-run, so a later better block moves the tip forward again.
   */
  disconnectTip(): { block: Block; entry: BlockIndex } {
    const entry = this.tipEntry;
    if (entry.height === 0) throw new StoreError("cannot disconnect the genesis block");
    const parent = this.mustIndex(entry.prevHash);
    const block = this.store.atomically(() => this.store.applyDisconnect(entry, parent));
    this.tipEntry = parent;
    this.emit("blockDisconnected", { block, entry });
    this.emit("tip", parent);
    return { block, entry };
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

function checkBlockSanityGenesis(block: Block, hash: Buffer): CheckedBlock {
  // The genesis is built locally from the spec, so only its txids are needed.
  const checked = { block, hash, txids: [] as Buffer[], size: encodeBlock(block).length };
  for (const tx of block.txs) checked.txids.push(txidOf(tx));
  return checked;
}
