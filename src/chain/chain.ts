import type { Registry } from "../consensus/registry.js";
import type { Clock } from "../util/clock.js";
import { BoundedMap } from "../util/boundedMap.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { blockHash, encodeBlock, type Block } from "./block.js";
import { ChainStore, StoreError, blockWork, type BlockIndex } from "./chainStore.js";
import { BlockError, isPermanentForHash } from "./errors.js";
import { genesisRegistry, type GenesisSpec, buildGenesisBlock } from "./genesis.js";
import { chainParams, type ChainParams } from "./params.js";
import { txid as txidOf } from "./tx.js";
import {
  checkBlockSanity,
  checkBodyWithoutUtxos,
  checkHeaderContext,
  connectTransactions,
  type BlockContext,
  type CheckedBlock,
} from "./validation.js";

/** Known-invalid block hashes, so a peer re-sending one costs nothing. */
const INVALID_CACHE_SIZE = 10_000;

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
  | { status: "reorg-refused"; hash: Buffer; depth: number };

export interface ChainEvents {
  /** A block became part of the main chain (in order, also during a reorg). */
  blockConnected: { block: Block; entry: BlockIndex };
  /** A block left the main chain (tip first, during a reorg). */
  blockDisconnected: { block: Block; entry: BlockIndex };
  reorg: { depth: number; oldTip: BlockIndex; newTip: BlockIndex; fork: BlockIndex };
  tip: BlockIndex;
}

/** Plain-data options for Chain.open. */
export interface ChainOptions {
  /**
   * Overrides the network's max_reorg_depth (NetworkParams.maxReorgDepth). For tests and
   * simulations that exercise the limit with short chains; production nodes leave it unset.
   */
  maxReorgDepth?: number;
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
export class Chain {
  readonly events = new TypedEmitter<ChainEvents>();
  readonly params: ChainParams;
  readonly genesisHash: Buffer;
  readonly genesis: GenesisSpec;
  private readonly store: ChainStore;
  private readonly clock: Clock;
  private readonly logger: ChainLogger | undefined;
  private readonly invalid = new BoundedMap<string, BlockError>(INVALID_CACHE_SIZE);
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
      opts.maxReorgDepth === undefined ? params : { ...params, maxReorgDepth: opts.maxReorgDepth };
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
    const store = ChainStore.open(dir, genesis.network, gHash);
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
      });
    }
    try {
      return new Chain(store, genesis, gHash, modules, opts);
    } catch (e) {
      void store.close().catch(() => undefined);
      throw e;
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
  processBlocks(items: ReadonlyArray<{ block: Block; size?: number }>): {
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
            results.push(this.processBlock(it.block, it.size));
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
   */
  processBlock(block: Block, encodedSize?: number): ProcessResult {
    const hash = blockHash(block.header);
    const hex = hash.toString("hex");
    const known = this.invalid.get(hex);
    if (known) throw known;
    if (this.store.hasBlock(hash)) return { status: "duplicate", hash };
    if (this.invalid.has(block.header.prevHash.toString("hex"))) {
      const err = new BlockError("BAD_PREV_HASH", "block builds on a known-invalid block");
      this.invalid.set(hex, err);
      throw err;
    }
    // Body errors are not cached by hash: a peer could pair a good header with a bad body.
    const checked = checkBlockSanity(block, encodedSize);
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
    if (isTipChild) {
      this.connectTip(checked, entry, ctx);
      return { status: "connected", hash, height: entry.height };
    }
    // A side branch: keep it with the registry after it (content-addressed by its mnRoot, so the
    // snapshot is shared when unchanged), so its children can be validated; then switch if it is
    // now the better tip.
    const after = sideRegistry ?? registry;
    this.store.atomically(() => {
      this.store.putBlock(entry, encodeBlock(block));
      this.store.putRegistrySnapshot(after);
    });
    if (!isBetterTip(entry, this.tipEntry)) return { status: "side", hash, height: entry.height };
    return this.reorgTo(entry);
  }

  private contextFor(parent: BlockIndex, registry: Registry): BlockContext {
    return {
      params: this.params,
      parentHash: parent.hash,
      parentHeight: parent.height,
      parentTimestamp: parent.timestamp,
      registry,
      now: this.clock.now(),
    };
  }

  private connectTip(checked: CheckedBlock, entry: BlockIndex, ctx: BlockContext): void {
    const block = checked.block;
    try {
      this.store.atomically(() => {
        const changes = connectTransactions(checked, ctx, this.store);
        this.store.putBlock(entry, encodeBlock(block));
        this.store.applyConnect(entry, changes, checked.txids);
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
    if (depth > this.params.maxReorgDepth) {
      this.logger?.warn("Refusing reorg deeper than max_reorg_depth", {
        depth,
        max: this.params.maxReorgDepth,
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
