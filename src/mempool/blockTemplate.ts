/** Block template selection: which pooled transactions go into the next block, in what order. */
import { MAX_BLOCK_TXS } from "../primitives/constants.js";
import { TxKind, type Tx } from "../primitives/tx.js";
import { MAX_REGISTRATIONS_PER_BLOCK } from "../consensus/registryTx.js";
import { Heap } from "../util/heap.js";
import { MIN_TX_SIZE, compareRate, type Entry, type EntryLookup } from "./entry.js";

/**
 * Transactions for a block from the pool's `entries` (in the pool's topological order; `get`
 * looks a child up by hex txid): highest fee rate first, never a child before its in-mempool
 * parent, at most `maxBytes` of serialized transactions and `maxTxs` transactions. A transaction
 * that does not fit is skipped (with its descendants) and smaller ones after it may still fit.
 */
export function selectForBlock(
  entries: Iterable<Entry>,
  get: EntryLookup,
  maxBytes: number,
  maxTxs: number,
): { txs: Tx[]; fees: bigint } {
  const heap = new Heap<Entry>((a, b) => compareRate(b, a) < 0);
  const waiting = new Map<string, number>();
  for (const e of entries) {
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
        const child = get(c);
        if (child) heap.push(child);
      }
    }
  }
  return { txs, fees };
}
