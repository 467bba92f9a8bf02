import { CodedError } from "../util/codedError.js";

/** Every consensus rule has its own code; docs/CONSENSUS.md lists them. */
export type BlockErrorCode =
  // structure
  | "BAD_HEADER_VERSION"
  | "BLOCK_TOO_LARGE"
  | "NO_TRANSACTIONS"
  | "FIRST_TX_NOT_COINBASE"
  | "EXTRA_COINBASE"
  | "BAD_COINBASE_PAYLOAD"
  | "BAD_MERKLE_ROOT"
  | "DUPLICATE_TX"
  | "BAD_TX_VERSION"
  | "UNSUPPORTED_TX_KIND"
  | "TX_NO_INPUTS"
  | "TX_NO_OUTPUTS"
  | "TX_TOO_LARGE"
  | "BAD_TX_PAYLOAD"
  | "ZERO_OUTPUT"
  | "OUTPUT_OVER_MAX"
  | "DUPLICATE_INPUT"
  // header context
  | "BAD_HEIGHT"
  | "BAD_PREV_HASH"
  | "TIME_NOT_AFTER_PARENT"
  | "TIME_BEFORE_SLOT"
  | "TIME_TOO_FAR_IN_FUTURE"
  | "WRONG_PRODUCER"
  | "BAD_PRODUCER_SIGNATURE"
  | "BAD_MN_ROOT"
  // transactions in context
  | "MISSING_INPUT"
  | "DOUBLE_SPEND"
  | "INPUT_KEY_MISMATCH"
  | "BAD_TX_SIGNATURE"
  | "IMMATURE_COINBASE_SPEND"
  | "OUTPUTS_EXCEED_INPUTS"
  | "BAD_COINBASE_AMOUNT"
  | "BAD_COINBASE_SPLIT"
  | "BAD_MASTERNODE_TX";

/**
 * A block or transaction broke a rule. `banScore` is how much the peer that sent it is penalised
 * (100 = ban). Rules a peer cannot break by accident score 100; time rules that clock skew can
 * trip score less.
 */
export class BlockError extends CodedError<BlockErrorCode> {
  readonly banScore: number;
  constructor(code: BlockErrorCode, message: string, banScore = 100, context: Record<string, unknown> = {}) {
    super(code, message, context);
    this.banScore = banScore;
  }
}

/**
 * Whether breaking this rule makes a block invalid under its hash for good, so the hash may be
 * remembered as known-invalid. A block hash covers everything except the producer signature and
 * the input signatures (they are left out so block hashes and txids cannot be malleated), so a
 * copy of a valid block with a tampered signature has the genuine block's hash: remembering that
 * hash would let anyone make a node reject the real block. A timestamp ahead of the local clock
 * may become valid later.
 */
export function isPermanentForHash(code: BlockErrorCode): boolean {
  return (
    code !== "BAD_PRODUCER_SIGNATURE" && code !== "BAD_TX_SIGNATURE" && code !== "TIME_TOO_FAR_IN_FUTURE"
  );
}
