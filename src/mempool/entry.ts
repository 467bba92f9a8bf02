/**
 * The mempool's record of one pooled transaction, the fee-rate order the pool keeps it in, and
 * the walks over the in-mempool parent/child graph. Internal to src/mempool/.
 */
import type { Tx } from "../primitives/tx.js";

export interface Entry {
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

/** A pooled entry by hex txid, or undefined when it is not in the pool. */
export type EntryLookup = (hex: string) => Entry | undefined;

/** The smallest transfer: one input, one output. A block with less room left than this is full. */
export const MIN_TX_SIZE = 17 + 132 + 28;

/** Orders by fee rate (fee/size, exact), then by txid so the order is total and deterministic. */
export function compareRate(a: Entry, b: Entry): number {
  const l = a.fee * BigInt(b.size);
  const r = b.fee * BigInt(a.size);
  if (l !== r) return l < r ? -1 : 1;
  return a.hex < b.hex ? -1 : a.hex > b.hex ? 1 : 0;
}

/** In-mempool ancestors of `e`; the walk stops once more than `limit` are found. */
export function ancestorsOf(e: Entry, get: EntryLookup, limit = Infinity): Set<string> {
  const out = new Set<string>();
  const stack = [...e.parents];
  while (stack.length > 0 && out.size <= limit) {
    const h = stack.pop()!;
    if (out.has(h)) continue;
    out.add(h);
    const p = get(h);
    if (p) stack.push(...p.parents);
  }
  return out;
}

/** `hex` and every in-mempool descendant, parents before children. */
export function descendantsOf(hex: string, get: EntryLookup): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const queue = [hex];
  for (let i = 0; i < queue.length; i++) {
    const h = queue[i]!;
    if (seen.has(h)) continue;
    seen.add(h);
    const e = get(h);
    if (!e) continue;
    out.push(h);
    queue.push(...e.children);
  }
  return out;
}
