/**
 * What a peer can do wrong in relay, as coded errors, and the one exhaustive mapping from a code
 * to the score its sender gets (as sync/errors.ts does for the sync). Only proof scores: every
 * code here is something no honest node sends; a rejection that another node's state could
 * explain (a fee, a conflict, a full pool) is not a RelayError at all.
 */
import type { BlockError } from "../primitives/errors.js";
import { CodedError } from "../util/codedError.js";

export type RelayErrorCode =
  /** A NewTip whose header does not hash to its hash, or is not at its height. */
  | "NEWTIP_MISMATCH"
  /** Block bytes that do not decode. */
  | "UNDECODABLE_BLOCK"
  /** A block that breaks a consensus rule (its own score: 0 for the time rules, a clock fault). */
  | "INVALID_BLOCK"
  /** Transaction bytes that do not decode. */
  | "UNDECODABLE_TX"
  /** A relayed transaction that breaks a consensus rule (the rule's score). */
  | "INVALID_TX"
  /** Equivocation evidence that is not proof (a bad signature, two copies of one header, …). */
  | "BAD_EVIDENCE"
  /** A finality vote that is malformed or badly signed (a relay checks every vote it passes on). */
  | "BAD_VOTE";

export class RelayError extends CodedError<RelayErrorCode> {
  constructor(
    code: RelayErrorCode,
    message: string,
    /** What the peer sent, for the ban list (the first bytes, the hash, the rule). */
    readonly evidence: string,
    /** For INVALID_BLOCK and INVALID_TX: the rule's own ban score. */
    readonly ruleScore?: number,
  ) {
    super(code, message);
  }

  static invalidBlock(e: BlockError, evidence: string): RelayError {
    return new RelayError("INVALID_BLOCK", `invalid block: ${e.code}`, evidence, e.banScore);
  }
}

/** The score the sender of `err` gets (100 = proof, a ban). */
export function relayPenalty(err: RelayError): number {
  switch (err.code) {
    case "NEWTIP_MISMATCH":
    case "UNDECODABLE_BLOCK":
    case "UNDECODABLE_TX":
    case "BAD_EVIDENCE":
    case "BAD_VOTE":
      return 100;
    case "INVALID_BLOCK":
    case "INVALID_TX":
      return err.ruleScore ?? 100;
  }
}

/** Where relay reports a peer's error: PeerManager.misbehaving fits. */
export interface RelayPenaltySink<P> {
  misbehaving(peer: P, score: number, reason: string, evidence?: string): void;
}

/** Reports `err` against `peer` when its score is above 0; returns the score. */
export function reportRelayError<P>(sink: RelayPenaltySink<P>, peer: P, err: RelayError): number {
  const score = relayPenalty(err);
  if (score > 0) sink.misbehaving(peer, score, err.message, err.evidence);
  return score;
}
