/** The mempool's public data types: its events, removal reasons, and what getrawmempool and getmempoolinfo show. */
import type { Tx } from "../primitives/tx.js";

export type RemovalReason = "block" | "conflict" | "evicted" | "expired" | "reorg";

export interface MempoolEvents {
  /** A transaction entered the mempool (accepted, or back from a disconnected block). */
  txAdded: { tx: Tx; txid: Buffer; fee: bigint };
  txRemoved: { txid: Buffer; reason: RemovalReason };
  /** Transactions came back after a reorg; the txAdded events for them sit between these two. */
  reconcileStart: void;
  reconcileEnd: void;
  /** A reorg's backlog is done: every transaction that could come back is in (see reconcile). */
  reconciled: void;
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
