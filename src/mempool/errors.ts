import type { BlockErrorCode } from "../primitives/errors.js";
import { CodedError } from "../util/codedError.js";

/**
 * Why the mempool refused a transaction. The relay switches on the code (exhaustively) to decide
 * the sender's penalty; the RPC layer answers with the message.
 * - INVALID: a consensus rule failed; `ruleCode` names it and `banScore` is the penalty.
 * - COINBASE: a coinbase is only valid as the first transaction of a block.
 * - CONFLICT: an input is already spent by another mempool transaction.
 * - LOW_FEE: the fee rate is under the minimum relay fee rate.
 * - TOO_LARGE: the transaction is over the mempool's per-transaction size cap (policy).
 * - ALREADY_KNOWN: the transaction is already in the mempool or in the chain.
 * - MEMPOOL_FULL: the mempool is full and this fee rate does not beat what would be evicted.
 * - TOO_MANY_ANCESTORS: too long a chain of unconfirmed parents (policy).
 */
export type MempoolErrorCode =
  | "INVALID"
  | "COINBASE"
  | "CONFLICT"
  | "LOW_FEE"
  | "TOO_LARGE"
  | "ALREADY_KNOWN"
  | "MEMPOOL_FULL"
  | "TOO_MANY_ANCESTORS";

export class MempoolError extends CodedError<MempoolErrorCode> {
  /** The consensus rule that failed, for INVALID. */
  readonly ruleCode: BlockErrorCode | undefined;
  /** How much the peer that relayed the transaction is penalised (100 = ban). */
  readonly banScore: number;
  constructor(
    code: MempoolErrorCode,
    message: string,
    opts: { ruleCode?: BlockErrorCode; banScore?: number; context?: Record<string, unknown> } = {},
  ) {
    super(code, message, opts.context ?? {});
    this.ruleCode = opts.ruleCode;
    this.banScore = opts.banScore ?? 0;
  }
}

/**
 * Whether a rejection holds for good under this txid, so the relay may remember the txid as
 * rejected and never fetch it again (until the next block, when the cache is cleared).
 * - A missing input or an immature coinbase spend can become valid later (a parent arrives, a
 *   block matures the coin).
 * - A bad signature is not part of the txid: a copy with a tampered signature has the genuine
 *   transaction's txid, so remembering it would let anyone block the real one.
 */
/**
 * Rules whose verdict depends on the chain state a peer happens to be at (one block apart, a
 * valid transaction can look invalid): never penalised, never cached.
 */
export const STATE_DEPENDENT_RULES: ReadonlySet<string> = new Set([
  "MISSING_INPUT",
  "IMMATURE_COINBASE_SPEND",
  "MN_UNKNOWN",
  "MN_DUPLICATE_OPERATOR",
  "MN_COLLATERAL_MISSING",
  "MN_COLLATERAL_IN_USE",
  "MN_REGISTRY_FULL",
  "REGISTRY_EMPTY",
]);

export function isCacheableRejection(err: MempoolError): boolean {
  switch (err.code) {
    case "INVALID":
      return (
        !(err.ruleCode !== undefined && STATE_DEPENDENT_RULES.has(err.ruleCode)) &&
        err.ruleCode !== "BAD_TX_SIGNATURE"
      );
    case "COINBASE":
    case "CONFLICT":
    case "LOW_FEE":
    case "TOO_LARGE":
    case "MEMPOOL_FULL":
    case "TOO_MANY_ANCESTORS":
      return true;
    case "ALREADY_KNOWN":
      return false;
  }
}
