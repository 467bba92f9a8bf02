/** The wallet's options with their defaults, and the modules it is built from. */
import type { ChainReader } from "../chain/chainReader.js";
import type { Tx } from "../primitives/tx.js";
import type { NetworkName } from "../crypto/address.js";
import type { KeyPair } from "../crypto/ed25519.js";
import type { Logger } from "../logging/index.js";
import type { Mempool } from "../mempool/mempool.js";
import type { Clock } from "../util/clock.js";
import type { Random } from "../util/random.js";

export const defaultWalletOptions = {
  /**
   * 10 units per byte: ten times the default minimum relay fee, so a wallet transaction still
   * gets in when the mempool's minimum has risen; 1,770 units (0.0000177 TIME) for a simple send.
   */
  feeRate: 10n,
  /**
   * 1,320 units: an output worth less than the fee to spend it (one 132-byte input at the default
   * 10 units/byte) is uneconomic, so the wallet neither pays to one nor makes change that small.
   */
  dustThreshold: 1_320n,
} as const;

export interface WalletOptions {
  /** The key file, normally DATADIR/wallet.json. */
  file: string;
  network: NetworkName;
  /** Keys the wallet may spend from but does not store (the operator key, for its rewards). */
  extraKeys?: KeyPair[];
  /** Fee rate in units per byte. */
  feeRate?: bigint;
  dustThreshold?: bigint;
}

export interface WalletModules {
  chain: ChainReader;
  mempool: Mempool;
  /** TxRelay.submitLocal, so a send is announced to peers; without it, Mempool.accept. */
  relay?: { submitLocal(tx: Tx): { txid: Buffer; fee: bigint } };
  clock: Clock;
  random: Random;
  logger: Logger;
}
