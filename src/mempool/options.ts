/** Plain-data options of the mempool and the transaction relay, with their defaults. */

export interface MempoolOptions {
  /** Cap on the serialized bytes of all mempool transactions. */
  maxBytes: number;
  /** Cap on the number of mempool transactions. */
  maxCount: number;
  /** Largest transaction accepted for relay (policy; consensus allows up to a block). */
  maxTxSize: number;
  /** Most unconfirmed in-mempool ancestors a transaction may have. */
  maxAncestors: number;
  /** Minimum fee, in units per serialized byte, for a transaction to enter and be relayed. */
  minRelayFeeRate: bigint;
  /** A transaction unconfirmed for longer than this is dropped. */
  expiryMs: number;
  /** How often the expiry sweep runs. */
  sweepIntervalMs: number;
  /**
   * After a reorg, how many transactions the mempool brings back per turn of the event loop; the
   * rest wait for later turns (Mempool.reconcile).
   */
  reconcileSlice: number;
}

export const defaultMempoolOptions: Readonly<MempoolOptions> = {
  /**
   * 64 MiB: 64 blocks of 1 MB, more than ten hours of full blocks on mainnet. Memory stays
   * bounded: each entry also holds ~2.7 KB of objects (see info().usage), so a full pool of
   * 50,000 entries uses about 64 MiB + 135 MB.
   */
  maxBytes: 64 * 1024 * 1024,
  /**
   * 50,000: the block transaction cap (MAX_BLOCK_TXS), and it bounds the per-entry maps even
   * when every transaction is tiny.
   */
  maxCount: 50_000,
  /**
   * 100,000 bytes: a tenth of a block, Bitcoin's standardness limit. A bigger transaction is
   * still valid in a block; it is just not relayed, so one transaction cannot crowd out a block.
   */
  maxTxSize: 100_000,
  /**
   * 25, Bitcoin Core's -limitancestorcount: bounds the ancestor and descendant walks each
   * admission, eviction and removal makes, so a long chain of unconfirmed spends cannot make them
   * quadratic. Honest chains of unconfirmed payments are far shorter.
   */
  maxAncestors: 25,
  /**
   * 1 unit per byte: a one-input, one-output transfer (177 bytes) pays 177 units (0.00000177
   * TIME), negligible for users, but flooding 64 MiB costs 0.67 TIME.
   */
  minRelayFeeRate: 1n,
  /** 14 days, as in Bitcoin Core (-mempoolexpiry = 336 hours). */
  expiryMs: 14 * 24 * 60 * 60 * 1000,
  /** 10 minutes: expiry is measured in days, so a coarse sweep costs nothing and loses nothing. */
  sweepIntervalMs: 10 * 60 * 1000,
  /**
   * 1,000: about 30 ms of admissions here (a transfer coming back costs ~30 µs: UTXO reads and
   * its txid; its signature was checked when its block connected). A reorg of a few full blocks
   * still finishes at once; one of 1,000 full blocks takes about twenty turns.
   */
  reconcileSlice: 1_000,
};

export interface TxRelayOptions {
  /** Txids accepted (and announced) recently, so they are neither fetched nor announced again. */
  seenCacheSize: number;
  /** Txids rejected recently (cleared at every new tip), so they are not fetched again. */
  rejectedCacheSize: number;
  /** Per-peer inventory known to be on the other side, so we do not announce it back. */
  knownPerPeer: number;
  /** New transactions a peer may send us per second (token bucket refill rate). */
  rateLimitPerSec: number;
  /** Bucket size: how many may arrive at once after a quiet spell. */
  rateLimitBurst: number;
  /** Penalty for each announcement batch over the rate limit. */
  overLimitScore: number;
  /** Txids requested and not yet answered, across all peers. */
  maxInFlight: number;
  /** Most transactions served for one GetTxs request. */
  maxServePerRequest: number;
}

export const defaultTxRelayOptions: Readonly<TxRelayOptions> = {
  /** 50,000: the mempool's count cap, so every txid the mempool can hold fits. */
  seenCacheSize: 50_000,
  /** 50,000: the same bound; a flood of rejects cannot push out more than one mempool's worth. */
  rejectedCacheSize: 50_000,
  /** 10,000 per peer: several blocks' worth of announcements; older ones matter little. */
  knownPerPeer: 10_000,
  /** 50 tx/s per peer: the original node's relay limit. */
  rateLimitPerSec: 50,
  /** 100: two seconds' worth, so a burst after a block does not trip the limit. */
  rateLimitBurst: 100,
  /**
   * 0: txids over the relay limit are dropped, not scored. Announcements are gossip: a peer
   * relaying a burst (after a stall, or a block's worth returning from a reorg) is not attacking.
   */
  overLimitScore: 0,
  /** 5,000: a hundred peers at the rate limit for one second, with room to spare. */
  maxInFlight: 5_000,
  /** 1,000: bounds the reply to one request; the rate limit keeps honest requests far smaller. */
  maxServePerRequest: 1_000,
};
