import type { Block } from "../primitives/block.js";
import type { ChainReader } from "../chain/chainReader.js";
import { formatAmount } from "../primitives/amount.js";
import { MAX_BLOCK_TXS } from "../primitives/constants.js";
import { BlockError } from "../primitives/errors.js";
import { TxKind, outpointKey, txSize, txid as txidOf, type OutPoint, type Tx } from "../primitives/tx.js";
import type { UtxoEntry, UtxoView } from "../primitives/utxo.js";
import { checkTxInputs, checkTxSanity } from "../consensus/validation.js";
import {
  MAX_REGISTRATIONS_PER_BLOCK,
  checkRegistryTx,
  checkRegistryTxSanity,
  isRegistryTxKind,
} from "../consensus/registryTx.js";
import type { Logger } from "../logging/index.js";
import type { Clock, TimerHandle } from "../util/clock.js";
import { TypedEmitter } from "../util/typedEmitter.js";
import { MempoolError, STATE_DEPENDENT_RULES } from "./errors.js";
import { defaultMempoolOptions, type MempoolOptions } from "./options.js";

export type RemovalReason = "block" | "conflict" | "evicted" | "expired" | "reorg";

export interface MempoolEvents {
  /** A transaction entered the mempool (accepted, or back from a disconnected block). */
  txAdded: { tx: Tx; txid: Buffer; fee: bigint };
  txRemoved: { txid: Buffer; reason: RemovalReason };
  /** Transactions came back after a reorg; the txAdded events for them sit between these two. */
  reconcileStart: void;
  reconcileEnd: void;
}

export interface MempoolModules {
  chain: ChainReader;
  clock: Clock;
  logger: Logger;
}

/** One mempool transaction as getrawmempool (verbose) shows it. */
export interface MempoolEntryInfo {
  txid: Buffer;
  tx: Tx;
  fee: bigint;
  size: number;
  /** When it entered the mempool (ms since the epoch, from the injected clock). */
  time: number;
  /** In-mempool parents: transactions whose outputs it spends. */
  depends: Buffer[];
  /** In-mempool children. */
  spentBy: Buffer[];
}

export interface MempoolInfo {
  loaded: true;
  /** Number of transactions. */
  size: number;
  /** Sum of their serialized sizes. */
  bytes: number;
  /** Estimated memory held, serialized bytes plus per-entry objects. */
  usage: number;
  /** The byte cap (maxBytes). */
  maxmempool: number;
  /** The count cap (maxCount). */
  maxcount: number;
  /** Minimum relay fee in TIME per 1,000 bytes (bitcoind's unit), as a decimal string. */
  minrelaytxfee: string;
  /** The same in units per byte. */
  minrelayfeerate: bigint;
  /** Fee rate (TIME per 1,000 bytes) a transaction needs now: the minimum, or more when full. */
  mempoolminfee: string;
}

interface Entry {
  tx: Tx;
  txid: Buffer;
  hex: string;
  fee: bigint;
  size: number;
  time: number;
  /** Hex txids of in-mempool parents and children. */
  parents: Set<string>;
  children: Set<string>;
  /** Registry claims (operator, collateral) of a registry transaction. */
  claims?: string[];
}

/**
 * Memory one entry holds beyond its serialized bytes: the decoded Tx (a Buffer object per key,
 * signature, txid and address), the Entry with its sets, the hex keys and the map slots. Measured
 * on Node 20 with 10,000 decoded one-input, two-output transfers: ~2.7 KB per entry.
 */
const ENTRY_OVERHEAD_BYTES = 2_700;
/** The smallest transfer: one input, one output. A block with less room left than this is full. */
const MIN_TX_SIZE = 17 + 132 + 28;

/** Orders by fee rate (fee/size, exact), then by txid so the order is total and deterministic. */
function compareRate(a: Entry, b: Entry): number {
  const l = a.fee * BigInt(b.size);
  const r = b.fee * BigInt(a.size);
  if (l !== r) return l < r ? -1 : 1;
  return a.hex < b.hex ? -1 : a.hex > b.hex ? 1 : 0;
}

/** "1.25 units/byte", rounded down to two decimals. */
export function formatFeeRate(fee: bigint, size: number): string {
  const hundredths = (fee * 100n) / BigInt(Math.max(1, size));
  return `${hundredths / 100n}.${(hundredths % 100n).toString().padStart(2, "0")} units/byte`;
}

function ratePerKb(unitsPerByte: bigint): string {
  return formatAmount(unitsPerByte * 1000n);
}

/**
 * The pool of valid unconfirmed transactions. Every transaction in it is valid against the chain
 * tip plus the mempool transactions before it, no two spend the same output, and the pool stays
 * under its byte and count caps by evicting the lowest fee rates. It follows the chain through the
 * chain's events: connected blocks remove their transactions and whatever now conflicts; the
 * transactions of disconnected blocks come back if they are still valid after the reorg.
 *
 * Everything is synchronous, like Chain: an accept runs to completion before any chain event.
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

  constructor(opts: Partial<MempoolOptions>, modules: MempoolModules) {
    this.opts = { ...defaultMempoolOptions, ...stripUndefined(opts) };
    for (const k of [
      "maxBytes",
      "maxCount",
      "maxTxSize",
      "maxAncestors",
      "expiryMs",
      "sweepIntervalMs",
    ] as const) {
      const v = this.opts[k];
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`mempool ${k} must be a positive integer`);
    }
    if (this.opts.minRelayFeeRate < 0n) throw new RangeError("mempool minRelayFeeRate must not be negative");
    this.chain = modules.chain;
    this.clock = modules.clock;
    this.logger = modules.logger;
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
    const heap = new Heap<Entry>((a, b) => compareRate(b, a) < 0);
    const waiting = new Map<string, number>();
    for (const e of this.pool.values()) {
      if (e.parents.size === 0) heap.push(e);
      else waiting.set(e.hex, e.parents.size);
    }
    const txs: Tx[] = [];
    let fees = 0n;
    let used = 0;
    let registrations = 0;
    const maxCount = Math.min(maxTxs, MAX_BLOCK_TXS - 1);
    while (heap.size > 0 && maxBytes - used >= MIN_TX_SIZE && txs.length < maxCount) {
      const e = heap.pop()!;
      if (used + e.size > maxBytes) continue;
      // R18: a block holds at most MAX_REGISTRATIONS_PER_BLOCK registrations; the rest wait for
      // the next block (their descendants with them, since they are never released here).
      if (e.tx.kind === TxKind.MasternodeRegister) {
        if (registrations >= MAX_REGISTRATIONS_PER_BLOCK) continue;
        registrations++;
      }
      txs.push(e.tx);
      fees += e.fee;
      used += e.size;
      for (const c of e.children) {
        const left = (waiting.get(c) ?? 1) - 1;
        if (left > 0) {
          waiting.set(c, left);
        } else {
          waiting.delete(c);
          const child = this.pool.get(c);
          if (child) heap.push(child);
        }
      }
    }
    return { txs, fees };
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
   * Checks and inserts. Mode "relay" applies every policy; "reorg" (a transaction from a
   * disconnected block) skips the fee minimum and the size cap, since it was good enough for a
   * block, and never evicts (the caller trims to the caps afterwards).
   */
  private admit(tx: Tx, id: Buffer, mode: "relay" | "reorg"): Entry {
    const hex = id.toString("hex");
    if (this.pool.has(hex)) {
      throw new MempoolError("ALREADY_KNOWN", `transaction ${hex} is already in the mempool`);
    }
    if (tx.kind === TxKind.Coinbase) {
      throw new MempoolError(
        "COINBASE",
        "a coinbase transaction is only valid as the first transaction of a block",
        { banScore: 100 },
      );
    }
    if (tx.kind !== TxKind.Transfer && !isRegistryTxKind(tx.kind)) {
      throw new MempoolError("INVALID", `transaction kind ${tx.kind} is not admitted to the mempool`, {
        ruleCode: "UNSUPPORTED_TX_KIND",
        banScore: 0,
      });
    }
    const size = txSize(tx);
    if (mode === "relay" && size > this.opts.maxTxSize) {
      throw new MempoolError(
        "TOO_LARGE",
        `transaction is ${size} bytes, over the relay limit of ${this.opts.maxTxSize} bytes`,
      );
    }
    try {
      checkTxSanity(tx);
    } catch (e) {
      throw fromBlockError(e);
    }
    const loc = this.chain.storage.getTxLocation(id);
    if (loc) {
      throw new MempoolError(
        "ALREADY_KNOWN",
        `transaction ${hex} is already in block ${loc.blockHash.toString("hex")}`,
      );
    }
    for (const input of tx.inputs) {
      const k = outpointKey(input.prevout);
      const spender = this.spends.get(k);
      if (spender !== undefined) {
        throw new MempoolError("CONFLICT", `input ${k} is already spent by mempool transaction ${spender}`, {
          context: { outpoint: k, conflict: spender },
        });
      }
    }
    // Cheap checks before the signatures: inputs exist, amounts add up, fee rate, room.
    const parents = new Set<string>();
    let inSum = 0n;
    for (const input of tx.inputs) {
      const entry = this.view.getUtxo(input.prevout);
      if (!entry) {
        throw new MempoolError("INVALID", `input ${outpointKey(input.prevout)} is not an unspent output`, {
          ruleCode: "MISSING_INPUT",
          banScore: 0,
        });
      }
      inSum += entry.amount;
      const p = input.prevout.txid.toString("hex");
      if (this.pool.has(p)) parents.add(p);
    }
    let outSum = 0n;
    for (const o of tx.outputs) outSum += o.amount;
    if (outSum > inSum) {
      throw new MempoolError(
        "INVALID",
        `outputs ${formatAmount(outSum)} exceed inputs ${formatAmount(inSum)}`,
        { ruleCode: "OUTPUTS_EXCEED_INPUTS", banScore: 100 },
      );
    }
    const fee = inSum - outSum;
    const minFee = this.opts.minRelayFeeRate * BigInt(size);
    if (mode === "relay" && fee < minFee) {
      throw new MempoolError(
        "LOW_FEE",
        `fee ${formatAmount(fee)} is below the minimum relay fee ${formatAmount(minFee)} ` +
          `(${this.opts.minRelayFeeRate} units/byte × ${size} bytes)`,
      );
    }
    const entry: Entry = {
      tx,
      txid: id,
      hex,
      fee,
      size,
      time: this.clock.now(),
      parents,
      children: new Set(),
    };
    if (mode === "relay" && parents.size > 0) {
      const limit = this.opts.maxAncestors;
      if (this.ancestorsOf(entry, limit).size > limit) {
        throw new MempoolError(
          "TOO_MANY_ANCESTORS",
          `transaction has more than ${limit} unconfirmed ancestors in the mempool; wait for a block`,
        );
      }
    }
    const claims = this.claimsOf(tx);
    for (const c of claims) {
      const holder = this.mnClaims.get(c);
      if (holder !== undefined) {
        throw new MempoolError(
          "CONFLICT",
          `masternode ${c} is already claimed by mempool transaction ${holder}`,
          {
            context: { claim: c, conflict: holder },
          },
        );
      }
      // A registration whose collateral a pooled transaction spends could never be mined after it.
      const spender = c.startsWith("col:") ? this.spends.get(c.slice(4)) : undefined;
      if (spender !== undefined) {
        throw new MempoolError(
          "CONFLICT",
          `collateral ${c.slice(4)} is already spent by mempool transaction ${spender}`,
          { context: { claim: c, conflict: spender } },
        );
      }
    }
    // Spending the collateral of a pooled registration: a block holding both in that order would
    // be invalid (R11), so the first one in keeps it.
    for (const input of tx.inputs) {
      const k = outpointKey(input.prevout);
      const registration = this.mnClaims.get(`col:${k}`);
      if (registration !== undefined) {
        throw new MempoolError(
          "CONFLICT",
          `input ${k} is the collateral of the registration in mempool transaction ${registration}`,
          { context: { outpoint: k, conflict: registration } },
        );
      }
    }
    const evict = mode === "relay" ? this.planEviction(entry) : [];
    try {
      // A disconnected block's transaction was verified when that block connected, byte for byte:
      // re-verifying 20,000 signatures after a deep reorg would block the event loop for seconds.
      checkTxInputs(tx, id, this.view, this.chain.height + 1, this.chain.params, mode !== "reorg");
      // Registry rules (and transfers that spend a collateral) against the tip's registry.
      checkRegistryTx(tx, this.chain.getRegistry(), this.view, { height: this.chain.height + 1 });
    } catch (e) {
      throw fromBlockError(e);
    }
    entry.claims = claims;
    for (const h of evict) {
      if (this.pool.has(h)) this.removeWithDescendants(h, "evicted");
    }
    this.insert(entry);
    return entry;
  }

  /**
   * The entries to evict (each with its descendants) so that `e` fits, lowest fee rate first.
   * Throws MEMPOOL_FULL when that would evict a fee rate as high as e's, or e's own ancestors.
   */
  private planEviction(e: Entry): string[] {
    let count = this.pool.size + 1;
    let bytes = this.totalBytes + e.size;
    const fits = (): boolean => count <= this.opts.maxCount && bytes <= this.opts.maxBytes;
    if (fits()) return [];
    if (e.size > this.opts.maxBytes) {
      throw new MempoolError("MEMPOOL_FULL", `transaction of ${e.size} bytes is larger than the mempool`);
    }
    const ancestors = this.ancestorsOf(e);
    const chosen = new Set<string>();
    const roots: string[] = [];
    for (const cand of this.byRate) {
      if (fits()) break;
      if (chosen.has(cand.hex)) continue;
      for (const h of this.descendantsOf(cand.hex)) {
        if (chosen.has(h)) continue;
        const d = this.pool.get(h)!;
        if (ancestors.has(h)) {
          throw new MempoolError(
            "MEMPOOL_FULL",
            `mempool full: making room would evict the transaction's own parent ${h}`,
          );
        }
        if (compareRate(e, d) <= 0) {
          throw new MempoolError(
            "MEMPOOL_FULL",
            `mempool full: fee rate ${formatFeeRate(e.fee, e.size)} does not beat ` +
              `${formatFeeRate(d.fee, d.size)} of the transactions it would evict`,
          );
        }
        chosen.add(h);
        count--;
        bytes -= d.size;
      }
      roots.push(cand.hex);
    }
    return roots;
  }

  /** In-mempool ancestors of `e`; the walk stops once more than `limit` are found. */
  private ancestorsOf(e: Entry, limit = Infinity): Set<string> {
    const out = new Set<string>();
    const stack = [...e.parents];
    while (stack.length > 0 && out.size <= limit) {
      const h = stack.pop()!;
      if (out.has(h)) continue;
      out.add(h);
      const p = this.pool.get(h);
      if (p) stack.push(...p.parents);
    }
    return out;
  }

  /** `hex` and every in-mempool descendant, parents before children. */
  private descendantsOf(hex: string): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    const queue = [hex];
    for (let i = 0; i < queue.length; i++) {
      const h = queue[i]!;
      if (seen.has(h)) continue;
      seen.add(h);
      const e = this.pool.get(h);
      if (!e) continue;
      out.push(h);
      queue.push(...e.children);
    }
    return out;
  }

  /** The registry claims a transaction makes (none for a transfer). */
  private claimsOf(tx: Tx): string[] {
    if (!isRegistryTxKind(tx.kind)) return [];
    let p;
    try {
      p = checkRegistryTxSanity(tx);
    } catch (e) {
      throw fromBlockError(e);
    }
    const out = [`op:${p.operatorPubkey.toString("hex")}`];
    if ("collateral" in p && p.collateral) out.push(`col:${outpointKey(p.collateral)}`);
    return out;
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
    const all = this.descendantsOf(hex);
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
   */
  private reconcile(): void {
    const blocks = this.pending.reverse();
    this.pending = [];
    this.pendingTxs = 0;
    const old = [...this.pool.values()];
    this.pool = new Map();
    this.spends = new Map();
    this.mnClaims = new Map();
    this.byRate = [];
    this.totalBytes = 0;

    const added: Entry[] = [];
    let dropped = 0;
    for (const block of blocks) {
      for (const tx of block.txs.slice(1)) {
        const id = txidOf(tx);
        try {
          added.push(this.admit(tx, id, "reorg"));
        } catch (e) {
          dropped++;
          this.logger.debug("Transaction of a disconnected block not brought back", {
            txid: id.toString("hex"),
            reason: e instanceof Error ? e.message : String(e),
          });
        }
      }
    }
    const lost: Entry[] = [];
    for (const e of old) {
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
    this.logger.debug("Mempool reconciled after a reorg", {
      readded: added.length,
      notReadded: dropped,
      invalidated: lost.length,
      evicted,
      size: this.pool.size,
    });
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

/**
 * A consensus failure as a mempool rejection. A missing input or an immature coinbase spend costs
 * the relaying peer nothing: it may simply be ahead of us, or have sent a child before its parent.
 */
function fromBlockError(e: unknown): unknown {
  if (!(e instanceof BlockError)) return e;
  const lenient = STATE_DEPENDENT_RULES.has(e.code);
  return new MempoolError("INVALID", e.message, {
    ruleCode: e.code,
    banScore: lenient ? 0 : e.banScore,
  });
}

/** A binary heap; `before(a, b)` is true when a comes out first. */
class Heap<T> {
  private readonly items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function stripUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
