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
  | "TIME_AFTER_SLOT"
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
  // masternode registry (src/consensus/registryTx.ts states the rules R1–R17)
  /** A registry transaction's payload does not decode, or a field is malformed (R1–R3). */
  | "BAD_MASTERNODE_TX"
  /** Registration: the operator's consent signature does not verify (R6). */
  | "MN_BAD_OPERATOR_SIG"
  /** No input signed by the entry's owner (or, for a genesis entry, its operator key) (R7, R15). */
  | "MN_UNAUTHORISED"
  /** Registration of an operator key that is already registered (R8). */
  | "MN_DUPLICATE_OPERATOR"
  /** Update or deregistration of an operator key that is not registered (R14). */
  | "MN_UNKNOWN"
  /** Collateral of the wrong amount or owner, present on Free, absent otherwise, or spent by the registration itself (R4, R5, R12, R13). */
  | "MN_BAD_COLLATERAL"
  /** The collateral outpoint is not an unspent output (R11). */
  | "MN_COLLATERAL_MISSING"
  /** The collateral outpoint already backs another masternode (R9). */
  | "MN_COLLATERAL_IN_USE"
  /** The registry already holds MAX_REGISTRY_SIZE entries (R10). */
  | "MN_REGISTRY_FULL"
  /** The block's transactions would leave the registry empty (R16). */
  | "REGISTRY_EMPTY"
  /** A registration of tier Free on chain: Free entries come only from the genesis (R4). */
  | "MN_FREE_TIER"
  /** More Register transactions in one block than MAX_REGISTRATIONS_PER_BLOCK (R18). */
  | "MN_TOO_MANY_REGISTRATIONS"
  /** A registration of an operator key that evidence slashed (R19). */
  | "MN_SLASHED_OPERATOR"
  // equivocation evidence (src/consensus/evidence.ts)
  /** An Evidence transaction that is not proof: malformed, one slot, one hash, a bad signature, inputs or outputs (E1–E3). */
  | "BAD_EVIDENCE"
  /** Evidence against a producer that is not registered (already removed, or never was) (E4). */
  | "EVIDENCE_UNKNOWN_OFFENDER"
  /** More Evidence transactions in one block than MAX_EVIDENCE_PER_BLOCK (E5). */
  | "TOO_MANY_EVIDENCE"
  // certificates on chain (src/consensus/finalityTx.ts)
  /** A Finality transaction whose certificate is malformed or does not certify a block of its branch (C1, C2, C4–C6). */
  | "BAD_CERTIFICATE"
  /** More than one Finality transaction in a block (C3). */
  | "TOO_MANY_CERTIFICATES"
  // not a rule: this node's operator
  /** The block, or one it builds on, was marked invalid by this node's operator (invalidateblock); no peer is blamed. */
  | "INVALIDATED";

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
    code !== "BAD_PRODUCER_SIGNATURE" &&
    code !== "BAD_TX_SIGNATURE" &&
    code !== "TIME_TOO_FAR_IN_FUTURE" &&
    code !== "INVALIDATED"
  );
}
