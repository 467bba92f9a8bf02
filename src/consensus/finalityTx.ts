/**
 * Certificates on chain (docs/CONSENSUS.md, "Certificates on chain"): a Finality transaction
 * carries the certificate of an earlier block of its own branch, so a node that replays the chain
 * (a sync from genesis, `timed verify`) learns which blocks are final from the chain alone,
 * trusting no peer.
 *
 * A Finality transaction has no inputs and no outputs; its payload is the certificate of the
 * second link of one block B at height h: (B, 2h) -> (B, 2h + 1), with its votes in ascending
 * order of voter key. Rules:
 *   C1 BAD_CERTIFICATE        no inputs, no outputs; the payload decodes exactly (at most
 *                             MAX_CERTIFICATE_VOTES votes, at least one)
 *   C2 BAD_CERTIFICATE        the link is (B, 2h) -> (B, 2h + 1); voters strictly ascending
 *   C3 TOO_MANY_CERTIFICATES  at most one Finality transaction in a block
 *   C4 BAD_CERTIFICATE        B is the block at height h of this block's branch (the parent or
 *                             one of its ancestors)
 *   C5 BAD_CERTIFICATE        h is above the highest block certified on the parent's branch
 *   C6 BAD_CERTIFICATE        every voter is in the link's voter set (the voter set of the
 *                             certificate's era, drawn at the era's anchor on this branch, less
 *                             entries not registered after B), every signature verifies, and the
 *                             voters carry more than 2/3 of the era's weight
 *   C7 BAD_CERTIFICATE        the certificate's era is the era of the parent's certified height
 * A block's certified height is then h, or the next era's anchor height if h is above it.
 * C1 to C3 need no chain state; C4 to C6 run where the block meets its branch (side blocks before
 * they are stored, main-chain blocks when connected).
 */
import { CodecError, Reader, Writer } from "../codec/index.js";
import { BlockError } from "../primitives/errors.js";
import { MAX_TX_PAYLOAD, TX_VERSION } from "../primitives/constants.js";
import { TxKind, type Tx } from "../primitives/tx.js";
import {
  CERTIFICATE_HEADER_SIZE,
  CERTIFICATE_VOTE_SIZE,
  certificateError,
  heightOfEpoch,
  isSupermajority,
  readCertificate,
  writeCertificate,
  type Certificate,
} from "./finality.js";
import type { Registry } from "./registry.js";
import { eraEndHeight, eraOfFinalHeight, linkVoters, type VoterSet } from "./committee.js";

/** 80 bytes of era, link and count, then 96 per vote: what fits in one transaction's payload. */
export const MAX_CERTIFICATE_VOTES = Math.floor(
  (MAX_TX_PAYLOAD - CERTIFICATE_HEADER_SIZE) / CERTIFICATE_VOTE_SIZE,
);
/** Finality transactions one block may carry. */
export const MAX_CERTIFICATES_PER_BLOCK = 1;

/** What checking a certificate against its branch needs (Chain gives it; see BlockContext). */
export interface FinalityContext {
  genesisHash: Buffer;
  /** The highest block height certified on the parent's branch (0: none yet). */
  parentCertified: number;
  /**
   * The block at `height` on the parent's branch (height at most the parent's), with the
   * registry after it, or undefined when it is not known.
   */
  branchBlock(height: number): { hash: Buffer; registry: Registry | undefined } | undefined;
  /** The voter set of era `era` on the parent's branch (drawn at its anchor there), if known. */
  eraVoters(era: number): VoterSet | undefined;
  /** The seed of era `era` on the parent's branch (committee.ts, eraSeedOf), if known. */
  eraSeed(era: number): Buffer | undefined;
}

const bad = (msg: string): BlockError => new BlockError("BAD_CERTIFICATE", `finality certificate: ${msg}`);

export function encodeCertificate(c: Certificate): Buffer {
  const w = new Writer(CERTIFICATE_HEADER_SIZE + CERTIFICATE_VOTE_SIZE * c.votes.length);
  writeCertificate(w, c);
  return w.toBuffer();
}

/**
 * The Finality transaction for `cert`. Its votes are sorted by voter key, and trimmed to the
 * heaviest that carry more than 2/3 of the link's voter set, so the transaction is no larger
 * than it needs to be. Null when no MAX_CERTIFICATE_VOTES of them carry more than 2/3 (a registry
 * of many light entries): such a certificate cannot go on chain, and a block carrying a short one
 * would be invalid.
 */
export function finalityTx(cert: Certificate, voters: VoterSet): Tx | null {
  const total = voters.total;
  const byWeight = cert.votes
    .map((v) => ({ v, w: voters.weightOf(v.voter) }))
    .filter((x) => x.w > 0n)
    .sort((a, b) => (a.w === b.w ? Buffer.compare(a.v.voter, b.v.voter) : a.w > b.w ? -1 : 1));
  const kept: Certificate["votes"] = [];
  let weight = 0n;
  for (const { v, w } of byWeight) {
    if (isSupermajority(weight, total) || kept.length >= MAX_CERTIFICATE_VOTES) break;
    kept.push(v);
    weight += w;
  }
  if (!isSupermajority(weight, total)) return null;
  kept.sort((a, b) => Buffer.compare(a.voter, b.voter));
  return {
    version: TX_VERSION,
    kind: TxKind.Finality,
    inputs: [],
    outputs: [],
    payload: encodeCertificate({ era: cert.era, source: cert.source, target: cert.target, votes: kept }),
  };
}

/** Rules C1 and C2: the certificate a Finality transaction carries. Throws BlockError. */
export function decodeFinalityTx(tx: Tx): Certificate {
  if (tx.inputs.length !== 0 || tx.outputs.length !== 0)
    throw bad("a Finality transaction has no inputs and no outputs");
  let cert: Certificate;
  try {
    const r = new Reader(tx.payload);
    cert = readCertificate(r, MAX_CERTIFICATE_VOTES);
    if (r.remaining !== 0)
      throw new CodecError("TRAILING_BYTES", `${r.remaining} bytes after the certificate`);
  } catch (e) {
    if (e instanceof CodecError) throw bad(`the payload does not decode: ${e.message}`);
    throw e;
  }
  const { source, target } = cert;
  if (target.epoch % 2 !== 1 || source.epoch !== target.epoch - 1 || !source.hash.equals(target.hash))
    throw bad("the link is not a block's second link (B, 2h) -> (B, 2h + 1)");
  if (cert.votes.length === 0) throw bad("no votes");
  for (let i = 1; i < cert.votes.length; i++) {
    if (Buffer.compare(cert.votes[i - 1]!.voter, cert.votes[i]!.voter) >= 0)
      throw bad("the voters are not in strictly ascending order");
  }
  return cert;
}

/** The certified block's height. */
export function certifiedHeight(cert: Certificate): number {
  return heightOfEpoch(cert.source.epoch);
}

/**
 * The height a certificate makes final: its block's, or the next era's anchor when the block is
 * above it (an era finalises at most up to the next era's anchor).
 */
export function finalHeightOf(cert: Certificate): number {
  return Math.min(certifiedHeight(cert), eraEndHeight(cert.era));
}

/** Rules C4 to C7 for a block's certificate, against its branch. Throws BlockError. */
export function checkCertificateOnBranch(cert: Certificate, ctx: FinalityContext | undefined): void {
  if (!ctx) throw bad("cannot be checked without the chain it is on");
  const height = certifiedHeight(cert);
  if (height <= ctx.parentCertified)
    throw bad(`height ${height} is not above the branch's last certified height ${ctx.parentCertified}`);
  const era = eraOfFinalHeight(ctx.parentCertified);
  if (cert.era !== era)
    throw bad(
      `it is of era ${cert.era}, but the branch (certified to height ${ctx.parentCertified}) is in era ${era}`,
    );
  const b = ctx.branchBlock(height);
  if (!b || !b.hash.equals(cert.source.hash))
    throw bad(`block ${cert.source.hash.toString("hex")} is not this branch's block at height ${height}`);
  if (!b.registry) throw bad(`the registry after block ${b.hash.toString("hex")} is unknown`);
  const voters = ctx.eraVoters(era);
  if (!voters) throw bad(`the voter set of era ${era} (its anchor's registry) is unknown`);
  const why = certificateError(ctx.genesisHash, cert, linkVoters(voters, b.registry));
  if (why) throw bad(why);
}
