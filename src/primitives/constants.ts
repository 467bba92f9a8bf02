/** 1 TIME = 10^8 units; amounts are bigint units everywhere inside the node. */
export const COIN = 100_000_000n;

/** 1,000,000 bytes per block, as in the original. */
export const MAX_BLOCK_SIZE = 1_000_000;
/** A transaction can never be larger than a block. */
export const MAX_TX_SIZE = MAX_BLOCK_SIZE;
/** Caps for the decoder; the block size cap makes the real limits tighter. */
export const MAX_TX_INPUTS = 20_000;
export const MAX_TX_OUTPUTS = 40_000;
export const MAX_BLOCK_TXS = 50_000;
/**
 * A transaction payload carries the coinbase height, masternode registrations, or the genesis
 * description (which lists every genesis masternode, hence the generous cap).
 */
export const MAX_TX_PAYLOAD = 512 * 1024;

/** 100 TIME per block, as in the original. */
export const BLOCK_REWARD = 100n * COIN;
/** The most units that can ever exist in one amount; rejects overflow tricks early. */
export const MAX_MONEY = 21_000_000_000n * COIN;

export const HEADER_VERSION = 1;
export const TX_VERSION = 1;

/** Domain tags keep a signature for one purpose from being valid for another. */
export const SIG_DOMAIN_TX = Buffer.from("TIME/tx/v1", "utf8");
export const SIG_DOMAIN_BLOCK = Buffer.from("TIME/block/v1", "utf8");

/**
 * Block weight for fork choice: a round-r block adds floor(2^20 / (r + 1)), so a chain whose
 * scheduled producers showed up beats a chain made of fallback rounds (docs/CONSENSUS.md).
 */
export const ROUND_WEIGHT_BASE = 1n << 20n;
