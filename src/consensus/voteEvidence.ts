/**
 * Evidence against a finality voter (docs/CONSENSUS.md, "Vote evidence"): two votes one operator
 * key signed that break a voting rule, a double vote (one target epoch, two different votes) or
 * a surround vote (one vote's source and target epochs strictly inside the other's), both in one
 * era. An honest
 * voter never signs such a pair (its lock is on disk before a vote leaves), so the pair is proof,
 * whoever carries it. On chain, in a VoteEvidence transaction, it removes the voter from the
 * registry, and so from the schedule and from every later voter set, slashes its key for good
 * and burns its collateral, exactly as equivocation evidence does.
 *
 * Encoding: vote A (172 bytes) ‖ vote B (172 bytes), with encodeVote(A) < encodeVote(B)
 * bytewise, so one offence has exactly one encoding (and its transaction one txid).
 */
import { CodecError } from "../codec/index.js";
import { verifySignature } from "../crypto/ed25519.js";
import { BlockError } from "../primitives/errors.js";
import { TX_VERSION } from "../primitives/constants.js";
import { TxKind, type Tx } from "../primitives/tx.js";
import {
  decodeVote,
  encodeVote,
  linkKey,
  slashingOffence,
  voteSigningBytes,
  VOTE_SIZE,
  type FinalityVote,
} from "./finality.js";

export interface VoteOffence {
  a: FinalityVote;
  b: FinalityVote;
}

export const VOTE_EVIDENCE_SIZE = 2 * VOTE_SIZE;

/** The canonical pair for two votes (either order). */
export function makeVoteOffence(v1: FinalityVote, v2: FinalityVote): VoteOffence {
  return Buffer.compare(encodeVote(v1), encodeVote(v2)) < 0 ? { a: v1, b: v2 } : { a: v2, b: v1 };
}

export function encodeVoteOffence(o: VoteOffence): Buffer {
  return Buffer.concat([encodeVote(o.a), encodeVote(o.b)]);
}

/** Throws CodecError on bytes that are not two votes. */
export function decodeVoteOffence(buf: Uint8Array): VoteOffence {
  if (buf.length !== VOTE_EVIDENCE_SIZE)
    throw new CodecError("INVALID_VALUE", `vote evidence is ${buf.length} bytes, not ${VOTE_EVIDENCE_SIZE}`);
  return { a: decodeVote(buf.subarray(0, VOTE_SIZE)), b: decodeVote(buf.subarray(VOTE_SIZE)) };
}

export function voteOffender(o: VoteOffence): Buffer {
  return o.a.voter;
}

const bad = (msg: string): BlockError => new BlockError("BAD_EVIDENCE", `vote evidence: ${msg}`);

/**
 * Rule V2, needing no chain state: one voter, canonical order (so two different votes), and a
 * broken rule. Throws BlockError BAD_EVIDENCE.
 */
export function checkVoteOffenceShape(o: VoteOffence): "double" | "surround" {
  if (!o.a.voter.equals(o.b.voter)) throw bad("the votes have different voters");
  const c = Buffer.compare(encodeVote(o.a), encodeVote(o.b));
  if (c === 0) throw bad("the two votes are the same vote");
  if (c > 0) throw bad("the votes are not in canonical order (smaller encoding first)");
  const offence = slashingOffence(o.a, o.b);
  if (!offence) throw bad("the votes break no voting rule (neither a double nor a surround vote)");
  return offence;
}

/** Rule V3: both signatures verify on this chain (they cover its genesis hash). */
export function checkVoteOffenceSignatures(o: VoteOffence, genesisHash: Buffer): void {
  for (const v of [o.a, o.b]) {
    if (!verifySignature(v.voter, voteSigningBytes(genesisHash, v.era, v.source, v.target), v.signature))
      throw bad(`the signature on ${linkKey(v)} does not verify`);
  }
}

/** Rules V1 and V2 of a VoteEvidence transaction. Throws BlockError BAD_EVIDENCE. */
export function decodeVoteEvidenceTx(tx: Tx): VoteOffence {
  if (tx.inputs.length !== 0 || tx.outputs.length !== 0)
    throw bad("a VoteEvidence transaction has no inputs and no outputs");
  let o: VoteOffence;
  try {
    o = decodeVoteOffence(tx.payload);
  } catch (e) {
    if (e instanceof CodecError) throw bad(`the payload does not decode: ${e.message}`);
    throw e;
  }
  checkVoteOffenceShape(o);
  return o;
}

/** The VoteEvidence transaction that puts `o` on chain (no inputs, no outputs). */
export function voteEvidenceTx(o: VoteOffence): Tx {
  return {
    version: TX_VERSION,
    kind: TxKind.VoteEvidence,
    inputs: [],
    outputs: [],
    payload: encodeVoteOffence(o),
  };
}

/** For logs and RPC. */
export function describeVoteOffence(o: VoteOffence): {
  voter: string;
  offence: string;
  links: [string, string];
} {
  return {
    voter: o.a.voter.toString("hex"),
    offence: slashingOffence(o.a, o.b) ?? "none",
    links: [linkKey(o.a), linkKey(o.b)],
  };
}
