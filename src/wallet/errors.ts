/** The wallet's error: a code the RPC layer maps to its answer, and a message for the user. */
import { CodedError } from "../util/codedError.js";

export type WalletErrorCode =
  | "CORRUPT_FILE"
  | "WRONG_NETWORK"
  | "IO"
  | "BAD_AMOUNT"
  | "DUST"
  | "BAD_FEE_RATE"
  | "INSUFFICIENT_FUNDS"
  /** sweep: an outpoint that is not an unspent, mature coin of this wallet, or already spent in the mempool. */
  | "NOT_SPENDABLE";

export class WalletError extends CodedError<WalletErrorCode> {}
