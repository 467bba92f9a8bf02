/**
 * The mempool: the pool of valid unconfirmed transactions, its indexes and caps, and how it
 * follows the chain. Admission checks live in admission.ts, block selection in blockTemplate.ts,
 * the entry record and graph walks in entry.ts, the public types in types.ts.
 */
import type { Block } from "../primitives/block.js";
import type { ChainReader } from "../chain/chainReader.js";
import { MAX_BLOCK_TXS } from "../primitives/constants.js";
import { outpointKey, txid as txidOf, type OutPoint, type Tx } from "../primitives/tx.js";
import type { UtxoEntry, UtxoView } from "../primitives/utxo.js";
import { checkRegistryTx, isRegistryTxKind } from "../consensus/registryTx.js";
import type { Logger } from "../logging/index.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { checkAdmission, type AdmissionPool } from "./admission.js";
import { selectForBlock } from "./blockTemplate.js";
import { MIN_TX_SIZE, compareRate, descendantsOf, type Entry } from "./entry.js";
import { ratePerKb } from "./feeRate.js";
import { defaultMempoolOptions, type MempoolOptions } from "./options.js";
import type { MempoolEntryInfo, MempoolEvents, MempoolInfo, RemovalReason } from "./types.js";

export type { MempoolEntryInfo, MempoolEvents, MempoolInfo, RemovalReason } from "./types.js";
export { formatFeeRate } from "./feeRate.js";

export interface MempoolModules {
  chain: ChainReader;
  clock: Clock;
  logger: Logger;
}

/**
 * Memory one entry holds beyond its serialized bytes: the decoded Tx (a Buffer object per key,
 * signature, txid and address), the Entry with its sets, the hex keys and the map slots. Measured
 * on Node 20 with 10,000 decoded one-input, two-output transfers: ~2.7 KB per entry.
 */
const ENTRY_OVERHEAD_BYTES = 2_700;

/** A disconnected block's transaction to admit, or a former entry to re-check. */
type BacklogItem = { tx: Tx } | { entry: Entry };

/**
 * The pool of valid unconfirmed transactions. Every transaction in it is valid against the chain
 * tip plus the mempool transactions before it, no two spend the same output, and the pool stays
 * under its byte and count caps by evicting the lowest fee rates. It follows the chain through the
 * chain's events: connected blocks remove their transactions and whatever now conflicts; the
 * transactions of disconnected blocks come back if they are still valid after the reorg.
 *
 * Everything is synchronous, like Chain: an accept runs to completion before any chain event.
 * The one exception is a large reorg's backlog (reconcile), brought back a slice per turn.
 */
export class Mempool {
  readonly events = new TypedEmitter<MempoolEvents>();
  private readonly opts: MempoolOptions;
  private readonly chain: ChainReader;
  private readonly clock: Clock;
  private readonly logger: Logger;

  /** By hex txid; insertion order is a topological order (a parent always before its children). */
  private pool = new Map<string, Entry>();
  /** outpointKey → hex txid of the mempool transaction spending it. */
  private spends = new Map<string, string>();
  /**
   * Registry claims of pooled transactions: "op:<operator hex>" and "col:<outpoint>" → txid hex.
   * At most one pooled registry transaction per operator and per collateral, so two pooled
   * registrations can never make the producer build an invalid block.
   */
  private mnClaims = new Map<string, string>();
  /** Every entry, ascending by fee rate: the eviction order. */
  private byRate: Entry[] = [];
  private totalBytes = 0;

  /** Blocks disconnected since the last reconcile, tip first; bounded by maxCount transactions. */
  private pending: Block[] = [];
  private pendingTxs = 0;
  /**
   * What a reorg left to bring back, in order (reconcile): disconnected blocks' transactions, then
   * former entries. At most the pending cap plus the count cap, so bounded like the pool.
   */
  private backlog: BacklogItem[] = [];
  private backlogAt = 0;
  private backlogTimer: TimerHandle | null = null;

  private unsubscribe: Array<() => void> = [];
  private sweepTimer: TimerHandle | null = null;

  /** The UTXO set as a new transaction sees it: the chain's, plus mempool outputs. */
  private readonly view: UtxoView = {
    getUtxo: (o: OutPoint): UtxoEntry | undefined => {
      const parent = this.pool.get(o.txid.toString("hex"));
      if (parent) {
        const out = parent.tx.outputs[o.index];
        if (!out) return undefined;
        return { amount: out.amount, address: out.address, height: this.chain.height + 1, coinbase: false };
      }
      return this.chain.storage.getUtxo(o);
    },
    isSlashed: (op: Uint8Array): boolean => this.chain.storage.isSlashed(op),
  };

  /** A pooled entry by hex txid; reads the live map (reconcile replaces it). */
  private readonly lookup = (hex: string): Entry | undefined => this.pool.get(hex);
  /** What admission reads of the pool; each lookup goes to the live maps. */
  private readonly admission: AdmissionPool;

  constructor(opts: Partial<MempoolOptions>, modules: MempoolModules) {
    this.opts = { ...defaultMempoolOptions, ...stripUndefined(opts) };
    for (const k of [
      "maxBytes",
      "maxCount",
      "maxTxSize",
      "maxAncestors",
      "expiryMs",
      "sweepIntervalMs",
      "reconcileSlice",
    ] as const) {
      const v = this.opts[k];
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`mempool ${k} must be a positive integer`);
    }
    if (this.opts.minRelayFeeRate < 0n) throw new RangeError("mempool minRelayFeeRate must not be negative");
    this.chain = modules.chain;
    this.clock = modules.clock;
    this.logger = modules.logger;
    this.admission = {
      opts: this.opts,
      chain: this.chain,
      view: this.view,
      now: () => this.clock.now(),
      get: this.lookup,
      spender: (outpoint) => this.spends.get(outpoint),
      claimHolder: (claim) => this.mnClaims.get(claim),
      count: () => this.pool.size,
      bytes: () => this.totalBytes,
      byRate: () => this.byRate,
    };
  }

  /** Follows the chain's events and starts the expiry sweep. */
  start(): void {
    if (this.unsubscribe.length > 0) return;
    const ev = this.chain.events;
    this.unsubscribe.push(
      ev.on("blockConnected", ({ block }) => this.onBlockConnected(block)),
      ev.on("blockDisconnected", ({ block }) => this.onBlockDisconnected(block)),
      ev.on("reorg", () => this.reconcile()),
      ev.on("tip", () => {
        if (this.pending.length > 0) this.reconcile();
      }),
    );
    this.sweepTimer = this.clock.setInterval(() => this.sweepExpired(), this.opts.sweepIntervalMs);
  }

  stop(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.sweepTimer?.cancel();
    this.sweepTimer = null;
    this.backlogTimer?.cancel();
    this.backlogTimer = null;
  }

  get options(): Readonly<MempoolOptions> {
    return this.opts;
  }

  get size(): number {
    return this.pool.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(txid: Buffer | string): boolean {
    return this.pool.has(hexOf(txid));
  }

  get(txid: Buffer | string): Tx | undefined {
    return this.pool.get(hexOf(txid))?.tx;
  }

  /** The entry's details, for getrawtransaction and getrawmempool. */
  getEntry(txid: Buffer | string): MempoolEntryInfo | undefined {
    const e = this.pool.get(hexOf(txid));
    return e ? this.info1(e) : undefined;
  }

  txids(): Buffer[] {
    return [...this.pool.values()].map((e) => e.txid);
  }

  /** Every entry with fee, size, time and in-mempool dependencies, parents before children. */
  entries(): MempoolEntryInfo[] {
    return [...this.pool.values()].map((e) => this.info1(e));
  }

  /** The mempool transaction spending `outpoint`, if any. */
  spentBy(outpoint: OutPoint): Buffer | undefined {
    const hex = this.spends.get(outpointKey(outpoint));
    return hex === undefined ? undefined : Buffer.from(hex, "hex");
  }

  /** The pooled registry transaction (register, update or deregister) of this operator key, if any. */
  operatorClaimedBy(operatorPubkey: Buffer): Buffer | undefined {
    const hex = this.mnClaims.get(`op:${operatorPubkey.toString("hex")}`);
    return hex === undefined ? undefined : Buffer.from(hex, "hex");
  }

  /** The pooled registration naming `outpoint` as its collateral, if any. */
  collateralClaimedBy(outpoint: OutPoint): Buffer | undefined {
    const hex = this.mnClaims.get(`col:${outpointKey(outpoint)}`);
    return hex === undefined ? undefined : Buffer.from(hex, "hex");
  }

  info(): MempoolInfo {
    const full = this.pool.size >= this.opts.maxCount || this.totalBytes + MIN_TX_SIZE > this.opts.maxBytes;
    let minRate = this.opts.minRelayFeeRate;
    const lowest = this.byRate[0];
    if (full && lowest) {
      // Rounded up: a transaction must beat the lowest rate to get in.
      const r = (lowest.fee + BigInt(lowest.size) - 1n) / BigInt(lowest.size);
      if (r > minRate) minRate = r;
    }
    return {
      loaded: true,
      size: this.pool.size,
      bytes: this.totalBytes,
      usage: this.totalBytes + this.pool.size * ENTRY_OVERHEAD_BYTES,
      maxmempool: this.opts.maxBytes,
      maxcount: this.opts.maxCount,
      minrelaytxfee: ratePerKb(this.opts.minRelayFeeRate),
      minrelayfeerate: this.opts.minRelayFeeRate,
      mempoolminfee: ratePerKb(minRate),
    };
  }

  /**
   * Validates `tx` against the chain tip plus the mempool and adds it, evicting lower fee rates
   * if the pool is full. Throws MempoolError with the reason when it is refused.
   */
  accept(tx: Tx): { txid: Buffer; fee: bigint } {
    const id = txidOf(tx);
    const e = this.admit(tx, id, "relay");
    this.events.emit("txAdded", { tx, txid: id, fee: e.fee });
    return { txid: id, fee: e.fee };
  }

  /**
   * Transactions for a block: highest fee rate first, never a child before its in-mempool parent,
   * at most `maxBytes` of serialized transactions. A transaction that does not fit is skipped
   * (with its descendants) and smaller ones after it may still fit.
   */
  selectForBlock(maxBytes: number, maxTxs = MAX_BLOCK_TXS - 1): { txs: Tx[]; fees: bigint } {
    return selectForBlock(this.pool.values(), this.lookup, maxBytes, maxTxs);
  }

  /** Removes transactions older than expiryMs, with their descendants. Runs on a timer. */
  sweepExpired(): number {
    const cutoff = this.clock.now() - this.opts.expiryMs;
    let removed = 0;
    for (const e of [...this.pool.values()]) {
      if (e.time <= cutoff && this.pool.has(e.hex)) {
        removed += this.removeWithDescendants(e.hex, "expired");
      }
    }
    if (removed > 0) this.logger.debug("Expired mempool transactions", { removed, size: this.pool.size });
    return removed;
  }

  // ---- admission ----

  /**
   * Checks (checkAdmission), evicts what its plan names, and inserts. Mode "relay" applies every
   * policy; "reorg" (a transaction from a disconnected block) skips the fee minimum and the size
   * cap, since it was good enough for a block, and never evicts (the caller trims to the caps
   * afterwards).
   */
  private admit(tx: Tx, id: Buffer, mode: "relay" | "reorg"): Entry {
    const { entry, evict } = checkAdmission(tx, id, mode, this.admission);
    for (const h of evict) {
      if (this.pool.has(h)) this.removeWithDescendants(h, "evicted");
    }
    this.insert(entry);
    return entry;
  }

  /** Drops pooled registry transactions a new block made invalid (e.g. the operator got registered). */
  private revalidateRegistryTxs(): number {
    let dropped = 0;
    for (const e of [...this.pool.values()]) {
      if (!isRegistryTxKind(e.tx.kind) || !this.pool.has(e.hex)) continue;
      try {
        checkRegistryTx(e.tx, this.chain.getRegistry(), this.view, { height: this.chain.height + 1 });
      } catch {
        dropped += this.removeWithDescendants(e.hex, "conflict");
      }
    }
    return dropped;
  }

  private insert(e: Entry): void {
    this.pool.set(e.hex, e);
    for (const c of e.claims ?? []) this.mnClaims.set(c, e.hex);
    for (const input of e.tx.inputs) this.spends.set(outpointKey(input.prevout), e.hex);
    for (const p of e.parents) this.pool.get(p)?.children.add(e.hex);
    this.byRate.splice(this.rateIndex(e), 0, e);
    this.totalBytes += e.size;
  }

  /** Index of `e` in byRate, or where it would go. */
  private rateIndex(e: Entry): number {
    let lo = 0;
    let hi = this.byRate.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareRate(this.byRate[mid]!, e) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Removes transactions (with their descendants), e.g. ones in a block of ours that was rejected. */
  evict(txids: readonly Buffer[], reason: RemovalReason = "conflict"): number {
    let n = 0;
    for (const id of txids)
      if (this.pool.has(id.toString("hex"))) n += this.removeWithDescendants(id.toString("hex"), reason);
    return n;
  }

  /** Removes one entry; its children stay (their inputs are now chain outputs, or they go next). */
  private removeEntry(hex: string, reason: RemovalReason): Entry | undefined {
    const e = this.pool.get(hex);
    if (!e) return undefined;
    this.pool.delete(hex);
    for (const c of e.claims ?? []) if (this.mnClaims.get(c) === hex) this.mnClaims.delete(c);
    for (const input of e.tx.inputs) {
      const k = outpointKey(input.prevout);
      if (this.spends.get(k) === hex) this.spends.delete(k);
    }
    for (const p of e.parents) this.pool.get(p)?.children.delete(hex);
    for (const c of e.children) this.pool.get(c)?.parents.delete(hex);
    const i = this.rateIndex(e);
    if (this.byRate[i] === e) this.byRate.splice(i, 1);
    this.totalBytes -= e.size;
    this.events.emit("txRemoved", { txid: e.txid, reason });
    return e;
  }

  private removeWithDescendants(hex: string, reason: RemovalReason): number {
    const all = descendantsOf(hex, this.lookup);
    // Children first, so no event ever reports a parent gone while its child is still in.
    for (let i = all.length - 1; i >= 0; i--) this.removeEntry(all[i]!, reason);
    return all.length;
  }

  // ---- following the chain ----

  private onBlockConnected(block: Block): void {
    if (this.pool.size === 0) return;
    const txs = block.txs.slice(1);
    let included = 0;
    let conflicts = 0;
    for (const tx of txs) {
      if (this.removeEntry(txidOf(tx).toString("hex"), "block")) included++;
    }
    for (const tx of txs) {
      for (const input of tx.inputs) {
        const spender = this.spends.get(outpointKey(input.prevout));
        if (spender !== undefined) conflicts += this.removeWithDescendants(spender, "conflict");
      }
    }
    conflicts += this.revalidateRegistryTxs();
    if (included + conflicts > 0) {
      this.logger.debug("Mempool updated for a connected block", {
        height: block.header.height,
        included,
        conflicts,
        size: this.pool.size,
      });
    }
  }

  private onBlockDisconnected(block: Block): void {
    this.pending.push(block);
    // The coinbase counts too, so even a run of empty blocks is bounded.
    this.pendingTxs += block.txs.length;
    // Keep the oldest blocks (they come last): later blocks' transactions may spend theirs.
    while (this.pendingTxs > this.opts.maxCount && this.pending.length > 1) {
      const dropped = this.pending.shift()!;
      this.pendingTxs -= dropped.txs.length;
      this.logger.debug("Too many disconnected transactions to bring back; dropping a block's", {
        height: dropped.header.height,
        txs: dropped.txs.length - 1,
      });
    }
  }

  /**
   * After a reorg (or a plain disconnect): brings back the transactions of disconnected blocks
   * that are valid on the new chain, in block order, then re-checks every earlier entry against
   * the new chain (its inputs may have been created by a block that is gone, or a coinbase may
   * no longer be mature). Whatever fails is dropped; then the caps are enforced.
   *
   * The pool empties at once, so it never holds an entry the new chain makes invalid; the work
   * goes into the backlog, which reconcileTurn() works through options.reconcileSlice items per turn of
   * the event loop. A reorg of a few blocks is done before this returns; one of 1,000 full blocks
   * does not block the chain's other listeners, peers and RPC for the whole of it.
   */
  private reconcile(): void {
    const blocks = this.pending.reverse();
    this.pending = [];
    this.pendingTxs = 0;
    const work: BacklogItem[] = [];
    for (const block of blocks) for (const tx of block.txs.slice(1)) work.push({ tx });
    // Entries admitted so far, in their (topological) order, then what an earlier reconcile left.
    for (const e of this.pool.values()) work.push({ entry: e });
    for (let i = this.backlogAt; i < this.backlog.length; i++) work.push(this.backlog[i]!);
    // Reorgs in quick succession must not pile up work: what would pass two pools' worth goes
    // (the oldest leftovers, at the end).
    const cap = 2 * this.opts.maxCount;
    for (const item of work.splice(cap)) {
      if ("entry" in item) this.events.emit("txRemoved", { txid: item.entry.txid, reason: "reorg" });
    }
    this.pool = new Map();
    this.spends = new Map();
    this.mnClaims = new Map();
    this.byRate = [];
    this.totalBytes = 0;
    this.backlog = work;
    this.backlogAt = 0;
    this.backlogTimer?.cancel();
    this.backlogTimer = null;
    this.reconcileTurn();
  }

  /** One turn of the backlog: at most options.reconcileSlice items, then the next turn is scheduled. */
  private reconcileTurn(): void {
    this.backlogTimer = null;
    const end = Math.min(this.backlog.length, this.backlogAt + this.opts.reconcileSlice);
    const added: Entry[] = [];
    const lost: Entry[] = [];
    let dropped = 0;
    for (; this.backlogAt < end; this.backlogAt++) {
      const item = this.backlog[this.backlogAt]!;
      if ("tx" in item) {
        const id = txidOf(item.tx);
        try {
          added.push(this.admit(item.tx, id, "reorg"));
        } catch (e) {
          dropped++;
          this.logger.debug("Transaction of a disconnected block not brought back", {
            txid: id.toString("hex"),
            reason: e instanceof Error ? e.message : String(e),
          });
        }
        continue;
      }
      const e = item.entry;
      // Sent again (relay, RPC) while it waited here: it is in already.
      if (this.pool.has(e.hex)) continue;
      const reason = this.recheck(e);
      if (reason === null) {
        e.parents = new Set(
          e.tx.inputs.map((i) => i.prevout.txid.toString("hex")).filter((h) => this.pool.has(h)),
        );
        e.children = new Set();
        this.insert(e);
      } else {
        lost.push(e);
        this.logger.debug("Mempool transaction invalid after reorg", { txid: e.hex, reason });
      }
    }
    for (const e of lost) this.events.emit("txRemoved", { txid: e.txid, reason: "reorg" });
    const evicted = this.trimToCaps();
    this.events.emit("reconcileStart", undefined);
    try {
      for (const e of added) {
        if (this.pool.has(e.hex)) this.events.emit("txAdded", { tx: e.tx, txid: e.txid, fee: e.fee });
      }
    } finally {
      this.events.emit("reconcileEnd", undefined);
    }
    const left = this.backlog.length - this.backlogAt;
    this.logger.debug("Mempool reconciled after a reorg", {
      readded: added.length,
      notReadded: dropped,
      invalidated: lost.length,
      evicted,
      size: this.pool.size,
      left,
    });
    if (left > 0) {
      this.backlogTimer = this.clock.setTimeout(() => this.reconcileTurn(), 0);
      return;
    }
    this.backlog = [];
    this.backlogAt = 0;
    this.events.emit("reconciled", undefined);
  }

  /** Transactions and former entries still waiting to be brought back after a reorg. */
  get reconcilePending(): number {
    return this.backlog.length - this.backlogAt;
  }

  /**
   * Whether an entry that was valid before the reorg still is: no conflict, every input available
   * and mature at the next height. Signatures and amounts need no new check: an outpoint names its
   * output by txid, so the spent output's address and amount cannot have changed.
   */
  private recheck(e: Entry): string | null {
    const spendHeight = this.chain.height + 1;
    for (const input of e.tx.inputs) {
      const k = outpointKey(input.prevout);
      const spender = this.spends.get(k);
      if (spender !== undefined) return `input ${k} is already spent by ${spender}`;
      const u = this.view.getUtxo(input.prevout);
      if (!u) return `input ${k} is not an unspent output`;
      if (u.coinbase && u.height > 0 && spendHeight - u.height < this.chain.params.coinbaseMaturity) {
        return `input ${k} is an immature coinbase output`;
      }
    }
    return null;
  }

  /** Evicts the lowest fee rates (with descendants) until both caps hold. */
  private trimToCaps(): number {
    let n = 0;
    while (
      (this.pool.size > this.opts.maxCount || this.totalBytes > this.opts.maxBytes) &&
      this.byRate.length > 0
    ) {
      n += this.removeWithDescendants(this.byRate[0]!.hex, "evicted");
    }
    return n;
  }

  private info1(e: Entry): MempoolEntryInfo {
    return {
      txid: e.txid,
      tx: e.tx,
      fee: e.fee,
      size: e.size,
      time: e.time,
      depends: [...e.parents].map((h) => Buffer.from(h, "hex")),
      spentBy: [...e.children].map((h) => Buffer.from(h, "hex")),
    };
  }
}

function hexOf(txid: Buffer | string): string {
  return typeof txid === "string" ? txid.toLowerCase() : txid.toString("hex");
}

function stripUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
