import type { NetworkName } from "../crypto/address.js";

export type { NetworkName };

/**
 * How far back a fork may be resolved: one policy, read by the chain (refusals, side-block
 * storage) and by the sync (how deep it searches for a common ancestor).
 */
export interface ReorgPolicy {
  /** A reorg deeper than this is refused, and a side branch forking below tip − this is not stored. */
  readonly maxDepth: number;
  /** How far below the tip the sync searches for a common ancestor with an ordinary peer. */
  readonly searchDepth: number;
  /** The same with a whitelisted masternode (priority fork resolution). */
  readonly prioritySearchDepth: number;
}

/** The reorg policy of every network today (no finality yet: a later release caps it there). */
export const REORG_POLICY: ReorgPolicy = {
  maxDepth: 10_000,
  searchDepth: 2_000,
  prioritySearchDepth: 10_000,
};

/** Fixed per-network constants. Consensus values that a devnet may choose live in the genesis. */
export interface NetworkParams {
  readonly network: NetworkName;
  /** 4 bytes at the start of every P2P frame; keeps networks apart. */
  readonly magic: Buffer;
  readonly p2pPort: number;
  readonly rpcPort: number;
  /** Default block interval for a new genesis; the genesis value is what validation uses. */
  readonly defaultBlockTimeMs: number;
  /** Coinbase outputs can be spent only this many blocks later, so a reorg cannot erase spends. */
  readonly coinbaseMaturity: number;
  /** How far back forks are resolved (REORG_POLICY). */
  readonly reorg: ReorgPolicy;
}

export const NETWORKS: Record<NetworkName, NetworkParams> = {
  mainnet: {
    network: "mainnet",
    magic: Buffer.from("54494d45", "hex"), // "TIME"
    p2pPort: 24000,
    rpcPort: 24001,
    defaultBlockTimeMs: 600_000,
    coinbaseMaturity: 100,
    reorg: REORG_POLICY,
  },
  testnet: {
    network: "testnet",
    magic: Buffer.from("54494d74", "hex"), // "TIMt"
    p2pPort: 24100,
    rpcPort: 24101,
    defaultBlockTimeMs: 600_000,
    coinbaseMaturity: 100,
    reorg: REORG_POLICY,
  },
  devnet: {
    network: "devnet",
    magic: Buffer.from("54494d64", "hex"), // "TIMd"
    p2pPort: 24200,
    rpcPort: 24201,
    defaultBlockTimeMs: 2_000,
    // Short so devnet tests can spend rewards quickly; still > 0 so the rule is exercised.
    coinbaseMaturity: 5,
    reorg: REORG_POLICY,
  },
};

export function isNetworkName(s: unknown): s is NetworkName {
  return s === "mainnet" || s === "testnet" || s === "devnet";
}

/** Everything validation needs: the network constants plus the genesis-chosen timing. */
export interface ChainParams extends NetworkParams {
  readonly blockTimeMs: number;
  /** How long the round-r producer has before round r+1 may produce. */
  readonly roundTimeoutMs: number;
  /** How far a block timestamp may run ahead of the local clock. */
  readonly maxFutureDriftMs: number;
}

/**
 * Derives timing from the block interval. The future-drift tolerance is half a block interval
 * (at least 500 ms, at most 900 s, the original's tolerance): enough for honest clock skew, too
 * little to produce a block ahead of its slot.
 */
export function chainParams(network: NetworkName, blockTimeMs: number): ChainParams {
  const base = NETWORKS[network];
  return {
    ...base,
    blockTimeMs,
    roundTimeoutMs: blockTimeMs,
    maxFutureDriftMs: Math.min(900_000, Math.max(500, Math.floor(blockTimeMs / 2))),
  };
}
