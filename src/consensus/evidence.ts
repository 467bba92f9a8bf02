import { CodecError } from "../codec/index.js";
import { verifySignature } from "../crypto/ed25519.js";
import {
  blockHash,
  blockSigMessage,
  decodeHeader,
  encodeHeader,
  HEADER_SIZE,
  type Block,
  type BlockHeader,
} from "../primitives/block.js";
import { BlockError } from "../primitives/errors.js";
import { TX_VERSION } from "../primitives/constants.js";
import { TxKind, type Tx } from "../primitives/tx.js";
import { decodeVoteOffence } from "./voteEvidence.js";

/**
 * Equivocation evidence (docs/CONSENSUS.md, "Evidence"): two different headers that one producer
 * signed for the same (height, round). An honest producer signs at most one header per slot, ever
 * (BlockProducer refuses to sign a second), so the pair is proof, whoever carries it.
 *
 * Encoding: header A (212 bytes) ‖ header B (212 bytes), with blockHash(A) < blockHash(B)
 * bytewise, so one equivocation has exactly one encoding (and an Evidence transaction one txid).
 */
export interface Equivocation {
  a: BlockHeader;
  b: BlockHeader;
}

export const EVIDENCE_SIZE = 2 * HEADER_SIZE;
/** Evidence transactions one block may carry. */
export const MAX_EVIDENCE_PER_BLOCK = 8;

/** The canonical pair for two conflicting headers (either order). */
export function makeEquivocation(h1: BlockHeader, h2: BlockHeader): Equivocation {
  return Buffer.compare(blockHash(h1), blockHash(h2)) < 0 ? { a: h1, b: h2 } : { a: h2, b: h1 };
}

export function encodeEquivocation(e: Equivocation): Buffer {
  return Buffer.concat([encodeHeader(e.a), encodeHeader(e.b)]);
}

/** Throws CodecError on bytes that are not two headers. */
export function decodeEquivocation(buf: Uint8Array): Equivocation {
  if (buf.length !== EVIDENCE_SIZE) {
    throw new CodecError("INVALID_VALUE", `evidence is ${buf.length} bytes, not ${EVIDENCE_SIZE}`);
  }
  return { a: decodeHeader(buf.subarray(0, HEADER_SIZE)), b: decodeHeader(buf.subarray(HEADER_SIZE)) };
}

export function offenderOf(e: Equivocation): Buffer {
  return e.a.producer;
}

/**
 * Proof checks: one producer, one (height, round), two different block hashes in canonical
 * order, and both producer signatures valid. Needs no chain state. Throws BlockError BAD_EVIDENCE.
 */
export function checkEquivocation(e: Equivocation): void {
  const bad = (msg: string): BlockError => new BlockError("BAD_EVIDENCE", `equivocation evidence: ${msg}`);
  if (!e.a.producer.equals(e.b.producer)) throw bad("the headers have different producers");
  if (e.a.height !== e.b.height || e.a.round !== e.b.round) throw bad("the headers are for different slots");
  const ha = blockHash(e.a);
  const hb = blockHash(e.b);
  const c = Buffer.compare(ha, hb);
  if (c === 0) throw bad("the two headers are the same block");
  if (c > 0) throw bad("the headers are not in canonical order (smaller block hash first)");
  if (!verifySignature(e.a.producer, blockSigMessage(ha), e.a.signature))
    throw bad(`the signature of ${ha.toString("hex")} does not verify`);
  if (!verifySignature(e.b.producer, blockSigMessage(hb), e.b.signature))
    throw bad(`the signature of ${hb.toString("hex")} does not verify`);
}

/** The Evidence transaction that puts `e` on chain (no inputs, no outputs). */
export function evidenceTx(e: Equivocation): Tx {
  return {
    version: TX_VERSION,
    kind: TxKind.Evidence,
    inputs: [],
    outputs: [],
    payload: encodeEquivocation(e),
  };
}

/**
 * Operator keys slashed by a block's Evidence and VoteEvidence transactions (which validation has
 * checked).
 */
export function slashedBy(block: Block): Buffer[] {
  const out: Buffer[] = [];
  for (const tx of block.txs) {
    try {
      if (tx.kind === TxKind.Evidence) out.push(offenderOf(decodeEquivocation(tx.payload)));
      else if (tx.kind === TxKind.VoteEvidence) out.push(decodeVoteOffence(tx.payload).a.voter);
    } catch {
      // A stored block passed validation, so this cannot happen; skip rather than throw.
    }
  }
  return out;
}

/** A one-line description for logs and RPC. */
export function describeEquivocation(e: Equivocation): {
  producer: string;
  height: number;
  round: number;
  hashes: [string, string];
} {
  return {
    producer: e.a.producer.toString("hex"),
    height: e.a.height,
    round: e.a.round,
    hashes: [blockHash(e.a).toString("hex"), blockHash(e.b).toString("hex")],
  };
}
