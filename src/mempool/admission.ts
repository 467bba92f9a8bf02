/**
 * Admission to the mempool: the structural, policy and conflict checks a transaction passes
 * before it is inserted, and the eviction plan that makes room for it. It reads the pool only
 * through the narrow AdmissionPool view the Mempool hands it, and changes nothing itself.
 */
import type { ChainReader } from "../chain/chainReader.js";
import { formatAmount } from "../primitives/amount.js";
import { BlockError } from "../primitives/errors.js";
import { TxKind, outpointKey, txSize, type Tx } from "../primitives/tx.js";
import type { UtxoView } from "../primitives/utxo.js";
import { checkTxInputs, checkTxSanity } from "../consensus/validation.js";
import { checkRegistryTx, checkRegistryTxSanity, isRegistryTxKind } from "../consensus/registryTx.js";
import { ancestorsOf, compareRate, descendantsOf, type Entry, type EntryLookup } from "./entry.js";
import { MempoolError, STATE_DEPENDENT_RULES } from "./errors.js";
import { formatFeeRate } from "./feeRate.js";
import type { MempoolOptions } from "./options.js";

/** What admission reads of the pool (and of the chain behind it); lookups go to the live pool. */
export interface AdmissionPool {
  readonly opts: Readonly<MempoolOptions>;
  readonly chain: ChainReader;
  /** The UTXO set as a new transaction sees it: the chain's, plus mempool outputs. */
  readonly view: UtxoView;
  /** The injected clock's time, for the entry's admission time. */
  now(): number;
  /** A pooled entry by hex txid. */
  get: EntryLookup;
  /** Hex txid of the pooled transaction spending this outpoint (by outpointKey), if any. */
  spender(outpoint: string): string | undefined;
  /** Hex txid of the pooled registry transaction holding this claim ("op:…" or "col:…"), if any. */
  claimHolder(claim: string): string | undefined;
  /** Number of pooled transactions. */
  count(): number;
  /** Sum of their serialized sizes. */
  bytes(): number;
  /** Every entry, ascending by fee rate: the eviction order. */
  byRate(): readonly Entry[];
}

/**
 * Every check before insertion, in order: already known, kind, size, sanity, already mined,
 * input conflicts, inputs and amounts, fee, ancestors, registry claims, room, then signatures and
 * registry rules. Returns the entry to insert (with its claims) and the entries to evict first,
 * each with its descendants. Mode "relay" applies every policy; "reorg" (a transaction from a
 * disconnected block) skips the fee minimum and the size cap, since it was good enough for a
 * block, and never evicts (the caller trims to the caps afterwards). Throws MempoolError.
 */
export function checkAdmission(
  tx: Tx,
  id: Buffer,
  mode: "relay" | "reorg",
  pool: AdmissionPool,
): { entry: Entry; evict: string[] } {
  const hex = id.toString("hex");
  if (pool.get(hex) !== undefined) {
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
  if (mode === "relay" && size > pool.opts.maxTxSize) {
    throw new MempoolError(
      "TOO_LARGE",
      `transaction is ${size} bytes, over the relay limit of ${pool.opts.maxTxSize} bytes`,
    );
  }
  try {
    checkTxSanity(tx);
  } catch (e) {
    throw fromBlockError(e);
  }
  const loc = pool.chain.storage.getTxLocation(id);
  if (loc) {
    throw new MempoolError(
      "ALREADY_KNOWN",
      `transaction ${hex} is already in block ${loc.blockHash.toString("hex")}`,
    );
  }
  for (const input of tx.inputs) {
    const k = outpointKey(input.prevout);
    const spender = pool.spender(k);
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
    const entry = pool.view.getUtxo(input.prevout);
    if (!entry) {
      throw new MempoolError("INVALID", `input ${outpointKey(input.prevout)} is not an unspent output`, {
        ruleCode: "MISSING_INPUT",
        banScore: 0,
      });
    }
    inSum += entry.amount;
    const p = input.prevout.txid.toString("hex");
    if (pool.get(p) !== undefined) parents.add(p);
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
  const minFee = pool.opts.minRelayFeeRate * BigInt(size);
  if (mode === "relay" && fee < minFee) {
    throw new MempoolError(
      "LOW_FEE",
      `fee ${formatAmount(fee)} is below the minimum relay fee ${formatAmount(minFee)} ` +
        `(${pool.opts.minRelayFeeRate} units/byte × ${size} bytes)`,
    );
  }
  const entry: Entry = {
    tx,
    txid: id,
    hex,
    fee,
    size,
    time: pool.now(),
    parents,
    children: new Set(),
  };
  if (mode === "relay" && parents.size > 0) {
    const limit = pool.opts.maxAncestors;
    if (ancestorsOf(entry, pool.get, limit).size > limit) {
      throw new MempoolError(
        "TOO_MANY_ANCESTORS",
        `transaction has more than ${limit} unconfirmed ancestors in the mempool; wait for a block`,
      );
    }
  }
  const claims = claimsOf(tx);
  for (const c of claims) {
    const holder = pool.claimHolder(c);
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
    const spender = c.startsWith("col:") ? pool.spender(c.slice(4)) : undefined;
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
    const registration = pool.claimHolder(`col:${k}`);
    if (registration !== undefined) {
      throw new MempoolError(
        "CONFLICT",
        `input ${k} is the collateral of the registration in mempool transaction ${registration}`,
        { context: { outpoint: k, conflict: registration } },
      );
    }
  }
  const evict = mode === "relay" ? planEviction(entry, pool) : [];
  try {
    // A disconnected block's transaction was verified when that block connected, byte for byte:
    // re-verifying 20,000 signatures after a deep reorg would block the event loop for seconds.
    checkTxInputs(tx, id, pool.view, pool.chain.height + 1, pool.chain.params, mode !== "reorg");
    // Registry rules (and transfers that spend a collateral) against the tip's registry.
    checkRegistryTx(tx, pool.chain.getRegistry(), pool.view, { height: pool.chain.height + 1 });
  } catch (e) {
    throw fromBlockError(e);
  }
  entry.claims = claims;
  return { entry, evict };
}

/**
 * The entries to evict (each with its descendants) so that `e` fits, lowest fee rate first.
 * Throws MEMPOOL_FULL when that would evict a fee rate as high as e's, or e's own ancestors.
 */
function planEviction(e: Entry, pool: AdmissionPool): string[] {
  let count = pool.count() + 1;
  let bytes = pool.bytes() + e.size;
  const fits = (): boolean => count <= pool.opts.maxCount && bytes <= pool.opts.maxBytes;
  if (fits()) return [];
  if (e.size > pool.opts.maxBytes) {
    throw new MempoolError("MEMPOOL_FULL", `transaction of ${e.size} bytes is larger than the mempool`);
  }
  const ancestors = ancestorsOf(e, pool.get);
  const chosen = new Set<string>();
  const roots: string[] = [];
  for (const cand of pool.byRate()) {
    if (fits()) break;
    if (chosen.has(cand.hex)) continue;
    for (const h of descendantsOf(cand.hex, pool.get)) {
      if (chosen.has(h)) continue;
      const d = pool.get(h)!;
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

/** The registry claims a transaction makes (none for a transfer). */
function claimsOf(tx: Tx): string[] {
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
