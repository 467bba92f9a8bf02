/**
 * The chain: fork choice, processBlock/processBlocks, reorgTo and the recovery at open. Chain
 * delegates the side-branch policy and pruning (sideBranches.ts), the epoch-schedule cache
 * (schedules.ts) and evidence keeping (evidenceBook.ts) to collaborators it builds at open; walks
 * of the block tree are in blockTree.ts, opening the store with its genesis in genesisStore.ts,
 * and the result and option types in chainTypes.ts (re-exported here).
 */
import type { Certificate } from "../consensus/finality.js";
import type { Registry } from "../consensus/registry.js";
import type { EpochSchedule } from "../consensus/schedule.js";
import { makeEquivocation, type Equivocation } from "../consensus/evidence.js";
import type { VoteOffence } from "../consensus/voteEvidence.js";
import type { Clock } from "../util/clock.js";
import { BoundedMap } from "../util/boundedMap.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { blockHash, encodeBlock, type Block, type BlockHeader } from "../primitives/block.js";
import type { Tx } from "../primitives/tx.js";
import { StoreError, blockWork, type BlockIndex, type ChainStore } from "./chainStore.js";
import { ancestorOf, forkOf, mustIndex } from "./blockTree.js";
import type { ChainEvents, ChainReader } from "./chainReader.js";
import type { ChainLogger, ChainOptions, ProcessResult } from "./chainTypes.js";
import { EvidenceBook } from "./evidenceBook.js";
import { Schedules } from "./schedules.js";
import { SideBranches, type SideRefusal } from "./sideBranches.js";
import { ChainFinality } from "./chainFinality.js";
import { isBetterTip } from "./forkOrder.js";
import {
  invalidateBlock,
  listTips,
  reconsiderBlock,
  type ChainTip,
  type RecoveryHost,
  type TipsView,
} from "./chainTips.js";
import { openGenesisStore } from "./genesisStore.js";
import { BlockError, isPermanentForHash } from "../primitives/errors.js";
import type { GenesisSpec } from "../consensus/genesis.js";
import { chainParams, type ChainParams } from "../primitives/params.js";
import type { KvOpener } from "./kv.js";
import {
  checkBlockSanity,
  certifiedAfter,
  checkBodyWithoutUtxos,
  checkHeaderContext,
  connectTransactions,
  type BlockContext,
  type CheckedBlock,
} from "../consensus/validation.js";

/** Known-invalid block hashes, so a peer re-sending one costs nothing. */
const INVALID_CACHE_SIZE = 10_000;

export { SIDE_BRANCH_WORK_MARGIN } from "./sideBranches.js";
export type { ChainLogger, ChainOptions, ProcessResult } from "./chainTypes.js";
export type { ChainEvents };

export { isBetterTip };

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
  private readonly schedules: Schedules;
  private readonly sides: SideBranches;
  private readonly evidence: EvidenceBook;
  /** Votes, justification and the last final block (docs/CONSENSUS.md, "Finality"). */
  readonly finality: ChainFinality;
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
    // The collaborators get the store and plain functions, never the Chain itself.
    const base = { store, clock: this.clock, logger: this.logger };
    this.schedules = new Schedules({ store, ancestorAt: (e, h) => this.ancestorAt(e, h) });
    const forgetSchedule = (h: Buffer): void => this.schedules.forget(h);
    this.finality = new ChainFinality({
      store,
      genesisHash,
      logger: this.logger,
      emitFinalized: (checkpoint, certificate) => this.emit("finalized", { checkpoint, certificate }),
      emitJustified: (checkpoint) => this.emit("justified", checkpoint),
      recordVoteEvidence: (o) => this.evidence.recordVote(o),
      fork: {
        tip: () => this.tipEntry,
        inBatch: () => this.batchEvents !== null,
        isKnownInvalid: (h) => this.isKnownInvalid(h),
        reorgTo: (e) => this.reorgTo(e),
      },
    });
    const finalHeight = (): number => this.finality.finalizedHeight;
    this.sides = new SideBranches({
      ...base,
      params: this.params,
      tip: () => this.tipEntry,
      forgetSchedule,
      finalHeight,
      holdsFinal: (e) => this.holdsFinal(e),
    });
    this.evidence = new EvidenceBook({
      ...base,
      emit: (ev) => this.emit("evidence", ev),
      emitVote: (o) => this.emit("voteEvidence", o),
    });
    const tip = store.getIndex(store.getTipHash());
    if (!tip) throw new StoreError("tip block index entry is missing");
    this.tipEntry = tip;
  }

  /** Opens the chain in `dir`, creating it from the genesis on first use. */
  static open(
    dir: string,
    genesis: GenesisSpec,
    modules: { clock: Clock; logger?: ChainLogger; openKv?: KvOpener },
    opts: ChainOptions = {},
  ): Chain {
    if (
      opts.maxReorgDepth !== undefined &&
      (!Number.isSafeInteger(opts.maxReorgDepth) || opts.maxReorgDepth < 0)
    ) {
      throw new RangeError(`maxReorgDepth must be a non-negative integer, got ${opts.maxReorgDepth}`);
    }
    const { store, genesisHash: gHash } = openGenesisStore(
      dir,
      genesis,
      opts.durable ?? true,
      modules.openKv,
    );
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
  /**
   * The last certificate of each era a batch's blocks carried, in order: only these are taken,
   * after the commit. Each era's last one closes it (when the era ended in the batch), and the
   * next era's can only be taken once that era is open.
   */
  private batchCerts: Certificate[] = [];

  private emit<K extends keyof ChainEvents>(event: K, payload: ChainEvents[K]): void {
    if (this.batchEvents) this.batchEvents.push(() => this.events.emit(event, payload));
    else this.events.emit(event, payload);
  }

  /**
   * Processes blocks in order inside ONE write transaction; each block still runs in its own
   * child transaction, so an invalid block rolls back alone and stops the batch. One commit (one
   * fsync) per batch instead of per block is what makes import and sync fast; events fire only
   * after the batch is on disk.
   *
   * `stopAfter`, asked after each block, ends the batch early (at least one block is processed):
   * the blocks after it are left to the caller, with no error.
   */
  processBlocks(
    items: ReadonlyArray<{ block: Block; raw?: Uint8Array }>,
    stopAfter?: () => boolean,
  ): {
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
          if (stopAfter?.()) break;
        }
      });
    } catch (e) {
      this.tipEntry = tipBefore;
      this.batchCerts = [];
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
    // The tip's entry names the registry after it (the store's root key says the same, but
    // reading it is a database read and a copy on every call).
    return this.store.getRegistryByRoot(this.tipEntry.mnRoot) ?? this.store.getRegistry();
  }
  /** The registry as it stood after `entry`, when known. */
  registryAfter(entry: BlockIndex): Registry | undefined {
    return this.store.getRegistryByRoot(entry.mnRoot);
  }
  /** Invalid under a rule (remembered), or marked invalid by the operator (invalidateblock). */
  isKnownInvalid(hash: Uint8Array): boolean {
    return this.invalid.has(Buffer.from(hash).toString("hex")) || this.store.isManualInvalid(hash);
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
    // The operator's decision, not a rule: refused, never cached, and no peer is blamed.
    if (this.store.isManualInvalid(hash) || this.store.isManualInvalid(block.header.prevHash))
      throw new BlockError("INVALIDATED", "the operator marked this block or its parent invalid", 0);
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
      certified: certifiedAfter(checked, parent.certified ?? 0),
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
    const expected = this.sides.isExpected(hash);
    if (evidence && !expected) return { status: "equivocation", hash, height: entry.height, evidence };
    if (!expected) {
      const refusal = this.sides.refusal(entry, parent);
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

  /** Whether a block with this header would be refused as a side block (SideBranches.refusalOf). */
  sideRefusalOf(header: BlockHeader): SideRefusal | null {
    return this.sides.refusalOf(header);
  }

  /** The sync will fetch these blocks: store them whatever their branch's work (SideBranches.expect). */
  expect(hashes: readonly Buffer[], ttlMs: number): void {
    this.sides.expect(hashes, ttlMs);
  }

  /** Deletes stored side blocks that can no longer win; returns how many (SideBranches.prune). */
  pruneSideBranches(): number {
    return this.sides.prune();
  }

  // ---- the producer schedule ----

  /** The ancestor of `entry` (or `entry` itself) at `height`. */
  ancestorAt(entry: BlockIndex, height: number): BlockIndex {
    return ancestorOf(this.store, entry, height);
  }

  /** The schedule of the epoch that `parent`'s children (height parent.height + 1) belong to. */
  scheduleForChild(parent: BlockIndex): EpochSchedule {
    return this.schedules.forChild(parent);
  }

  /** The schedule fixed by an anchor block (height a multiple of EPOCH_BLOCKS; Schedules.at). */
  scheduleAt(anchor: BlockIndex): EpochSchedule {
    return this.schedules.at(anchor);
  }

  // ---- evidence ----

  /** Keeps checked evidence of equivocation; true when it is new (EvidenceBook.record). */
  recordEvidence(ev: Equivocation): boolean {
    return this.evidence.record(ev);
  }

  /** Evidence from a header seen without its block; true when new (EvidenceBook.noteHeader). */
  noteHeader(header: BlockHeader): boolean {
    return this.evidence.noteHeader(header, blockHash(header));
  }

  /** Whether evidence against this operator key is held. */
  hasEvidenceAgainst(operator: Uint8Array): boolean {
    return this.evidence.hasAgainst(operator);
  }

  /** Every piece of evidence held, with when it was first seen and where it was put on chain. */
  listEvidence(): Array<{ evidence: Equivocation; seenAt: number; slashedAt: number | null }> {
    return this.evidence.list();
  }

  /** Every piece of vote evidence held (EvidenceBook.listVotes). */
  listVoteEvidence(): Array<{ evidence: VoteOffence; seenAt: number; slashedAt: number | null }> {
    return this.evidence.listVotes();
  }

  /** Keeps checked vote evidence; true when it is new (EvidenceBook.recordVote). */
  recordVoteEvidence(o: VoteOffence): boolean {
    return this.evidence.recordVote(o);
  }

  /** Evidence transactions for the next block on the tip (at most `max`). */
  pendingEvidenceTxs(max: number): Tx[] {
    return this.evidence.pendingTxs(max);
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
      finality: this.finality.contextFor(parent),
    };
  }

  private connectTip(checked: CheckedBlock, bytes: Buffer, entry: BlockIndex, ctx: BlockContext): void {
    const block = checked.block;
    try {
      this.store.atomically(() => {
        const changes = connectTransactions(checked, ctx, this.store);
        this.store.putBlock(entry, bytes);
        this.store.applyConnect(entry, changes, checked.txids);
        this.schedules.persistIfAnchor(entry);
      });
    } catch (e) {
      if (e instanceof BlockError && isPermanentForHash(e.code)) {
        this.invalid.set(entry.hash.toString("hex"), e);
      }
      throw e;
    }
    this.tipEntry = entry;
    this.afterConnect(checked);
    this.emit("blockConnected", { block, entry });
    this.emit("tip", entry);
    if (!this.batchEvents) this.afterTipChange();
  }

  /**
   * A block joined the main chain: the certificate it carries (checked by validation) makes its
   * block final. Taken once the block is on disk (after a batch's commit).
   */
  private afterConnect(checked: CheckedBlock): void {
    const cert = checked.certificate;
    if (!cert) return;
    if (!this.batchEvents) {
      this.finality.acceptOnChain([cert]);
      return;
    }
    // Each later certificate of an era finalises every earlier one's block too, and a certificate
    // of a later era counts only once the era before is closed: each era's last one is taken, in
    // order, and the final checkpoint is written durably once per batch, not once per block.
    if (this.batchCerts.length === 0)
      this.batchEvents.push(() => {
        const certs = this.batchCerts;
        this.batchCerts = [];
        this.finality.acceptOnChain(certs);
      });
    const last = this.batchCerts[this.batchCerts.length - 1];
    if (last?.era === cert.era) this.batchCerts[this.batchCerts.length - 1] = cert;
    else this.batchCerts.push(cert);
  }

  /** Once the tip has moved (and outside a batch): side branches it left behind are pruned. */
  private afterTipChange(): void {
    try {
      this.pruneSideBranches();
    } catch (e) {
      this.logger?.warn("Pruning side branches failed", {}, e);
    }
  }

  /** Whether the branch ending at `entry` holds the last final block (ChainFinality.holds). */
  holdsFinal(entry: BlockIndex): boolean {
    return this.finality.holds(entry);
  }

  /** The last common block of the main chain and the branch ending at `entry`. */
  findFork(entry: BlockIndex): BlockIndex {
    return forkOf(this.store, this.tipEntry, entry);
  }

  private mustIndex(hash: Buffer): BlockIndex {
    return mustIndex(this.store, hash);
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
    if (!this.holdsFinal(target)) {
      this.logger?.warn("Refusing a reorg below the final block", {
        fork: fork.height,
        final: this.finality.finalizedHeight,
        target: target.hash.toString("hex"),
      });
      return { status: "reorg-refused", hash: target.hash, depth, reason: "below-final" };
    }
    if (depth > this.params.reorg.maxDepth) {
      this.logger?.warn("Refusing reorg deeper than max_reorg_depth", {
        depth,
        max: this.params.reorg.maxDepth,
      });
      return { status: "reorg-refused", hash: target.hash, depth, reason: "too-deep" };
    }
    const branch: BlockIndex[] = [];
    for (let e = target; !e.hash.equals(fork.hash); e = this.mustIndex(e.prevHash)) branch.push(e);
    branch.reverse();
    const disconnected: Array<{ block: Block; entry: BlockIndex }> = [];
    const connected: Array<{ block: Block; entry: BlockIndex }> = [];
    const certified: CheckedBlock[] = [];
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
            // Stored blocks passed their signature checks before they were stored (side blocks
            // in processBlock, main-chain blocks when they connected): the rest runs again.
            const ctx = { ...this.contextFor(parent, registry), signaturesChecked: true };
            checkHeaderContext(checked, ctx);
            const changes = connectTransactions(checked, ctx, this.store);
            this.store.applyConnect(entry, changes, checked.txids);
            this.schedules.persistIfAnchor(entry);
            registry = changes.registry ?? registry;
            certified.push(checked);
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
    for (const c of certified) this.afterConnect(c);
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

  // ---- chain tips and manual recovery (chainTips.ts) ----

  /** getchaintips: the active tip, then every stored branch end. */
  chainTips(): ChainTip[] {
    return listTips(this.tipsView());
  }

  /** invalidateblock (chainTips.ts invalidateBlock): one write transaction; never a final block. */
  invalidateBlock(hash: Buffer): { tip: BlockIndex; marked: number } {
    return invalidateBlock(this.recoveryHost(), hash);
  }

  /** reconsiderblock (chainTips.ts reconsiderBlock): one write transaction. */
  reconsiderBlock(hash: Buffer): { tip: BlockIndex; cleared: number } {
    return reconsiderBlock(this.recoveryHost(), hash);
  }

  private tipsView(): TipsView {
    return {
      store: this.store,
      tip: () => this.tipEntry,
      finalizedHeight: () => this.finality.finalizedHeight,
      holdsFinal: (x) => this.holdsFinal(x),
      isInvalid: (h) => this.isKnownInvalid(h),
    };
  }

  private recoveryHost(): RecoveryHost {
    return {
      ...this.tipsView(),
      logger: this.logger,
      reorgTo: (e) => this.reorgTo(e),
      forgetInvalid: (hex) => void this.invalid.delete(hex),
      asOneChange: (fn) => this.asOneChange(fn),
    };
  }

  /** Runs `fn` in one write transaction; events wait for its commit (as processBlocks does). */
  private asOneChange<T>(fn: () => T): T {
    if (this.batchEvents) throw new Error("asOneChange is not re-entrant");
    const tipBefore = this.tipEntry;
    const queued: Array<() => void> = [];
    this.batchEvents = queued;
    let out: T;
    try {
      out = this.store.atomically(fn);
    } catch (e) {
      this.tipEntry = tipBefore;
      this.batchCerts = [];
      throw e;
    } finally {
      this.batchEvents = null;
    }
    for (const f of queued) f();
    if (!this.tipEntry.hash.equals(tipBefore.hash)) this.afterTipChange();
    return out;
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
