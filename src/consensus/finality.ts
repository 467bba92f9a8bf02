/**
 * Finality votes (docs/CONSENSUS.md, "Finality"): the checkpoints, the vote and its signature,
 * the two rules an honest voter never breaks, and the supermajority arithmetic. Pure functions
 * of their arguments: no chain state, no clock.
 *
 * The design is Casper FFG with two checkpoints per block. A block B at height h is checkpoint
 * (B, 2h) and checkpoint (B, 2h + 1); the epoch of a checkpoint orders all checkpoints. A vote
 * is a link from a justified source checkpoint to a target checkpoint, signed for one era
 * (committee.ts). More than 2/3 of the link's voter set (its era's) on one link justifies the
 * target; a justified checkpoint whose direct successor epoch is justified from it is final. Per block that is two rounds of votes:
 * (J -> (B, 2h)) and then ((B, 2h) -> (B, 2h + 1)), and B is final when the second round has a
 * supermajority.
 */
import { CodecError, Reader, Writer } from "../codec/index.js";
import { verifySignature, type KeyPair } from "../crypto/ed25519.js";
import { HASH_LEN } from "../crypto/hash.js";
import type { VoterSet } from "./committee.js";

export const VOTE_DOMAIN = Buffer.from("TIME/finality-vote/v1", "utf8");
/** era 4 ‖ sourceEpoch 4 ‖ sourceHash 32 ‖ targetEpoch 4 ‖ targetHash 32 ‖ voter 32 ‖ signature 64. */
export const VOTE_SIZE = 4 + 4 + 32 + 4 + 32 + 32 + 64;
/** A certificate's fixed part: era, the link, and the vote count. */
export const CERTIFICATE_HEADER_SIZE = 4 + 72 + 4;
/** One certificate vote: voter and signature. */
export const CERTIFICATE_VOTE_SIZE = 96;
/** Epochs are u32: heights up to 2^31 - 1. */
export const MAX_EPOCH = 0xffff_ffff;

/** A block at one of its two epochs: 2h (its first checkpoint) or 2h + 1 (its second). */
export interface Checkpoint {
  epoch: number;
  hash: Buffer;
}

export interface FinalityVote {
  /** The era whose voter set the vote is for (committee.ts); part of what is signed. */
  era: number;
  source: Checkpoint;
  target: Checkpoint;
  /** The voter's operator public key. */
  voter: Buffer;
  /** Ed25519 by `voter` over voteSigningBytes. */
  signature: Buffer;
}

export const heightOfEpoch = (epoch: number): number => Math.floor(epoch / 2);
export const isSecondEpoch = (epoch: number): boolean => epoch % 2 === 1;
export const firstEpoch = (height: number): number => 2 * height;

/** The genesis block's second checkpoint: justified and final by definition. */
export function genesisCheckpoint(genesisHash: Buffer): Checkpoint {
  return { epoch: 1, hash: genesisHash };
}

export function checkpointKey(c: Checkpoint): string {
  return `${c.epoch}:${c.hash.toString("hex")}`;
}

export function sameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  return a.epoch === b.epoch && a.hash.equals(b.hash);
}

/** A link within its era: votes of different eras are different links. */
export function linkKey(v: Pick<FinalityVote, "era" | "source" | "target">): string {
  return `${v.era}/${checkpointKey(v.source)}>${checkpointKey(v.target)}`;
}

/** The bytes a vote's signature covers: the domain, the chain's genesis hash, the era, the link. */
export function voteSigningBytes(
  genesisHash: Buffer,
  era: number,
  source: Checkpoint,
  target: Checkpoint,
): Buffer {
  const w = new Writer(VOTE_DOMAIN.length + 32 + 76);
  w.fixed(VOTE_DOMAIN, VOTE_DOMAIN.length).fixed(genesisHash, HASH_LEN).u32(era);
  w.u32(source.epoch).fixed(source.hash, HASH_LEN).u32(target.epoch).fixed(target.hash, HASH_LEN);
  return w.toBuffer();
}

export function signVote(
  key: KeyPair,
  genesisHash: Buffer,
  source: Checkpoint,
  target: Checkpoint,
  era = 0,
): FinalityVote {
  return {
    era,
    source,
    target,
    voter: key.publicKey,
    signature: key.sign(voteSigningBytes(genesisHash, era, source, target)),
  };
}

function writeLink(w: Writer, l: Pick<FinalityVote, "era" | "source" | "target">): void {
  w.u32(l.era);
  w.u32(l.source.epoch).fixed(l.source.hash, HASH_LEN).u32(l.target.epoch).fixed(l.target.hash, HASH_LEN);
}

function readLink(r: Reader): Pick<FinalityVote, "era" | "source" | "target"> {
  const era = r.u32();
  const source = { epoch: r.u32(), hash: r.fixed(HASH_LEN) };
  const target = { epoch: r.u32(), hash: r.fixed(HASH_LEN) };
  return { era, source, target };
}

export function writeVote(w: Writer, v: FinalityVote): void {
  writeLink(w, v);
  w.fixed(v.voter, 32).fixed(v.signature, 64);
}

export function readVote(r: Reader): FinalityVote {
  const link = readLink(r);
  return { ...link, voter: r.fixed(32), signature: r.fixed(64) };
}

export function encodeVote(v: FinalityVote): Buffer {
  const w = new Writer(VOTE_SIZE);
  writeVote(w, v);
  return w.toBuffer();
}

/** Throws CodecError on anything but exactly one vote. */
export function decodeVote(buf: Uint8Array): FinalityVote {
  if (buf.length !== VOTE_SIZE)
    throw new CodecError("INVALID_VALUE", `a vote is ${VOTE_SIZE} bytes, not ${buf.length}`);
  return readVote(new Reader(buf));
}

/**
 * Why a vote is malformed, before any chain state or signature (null if it is well formed):
 * the target comes after the source; a second-epoch target links from its own block's first
 * epoch; a first-epoch target is a block above its source's block.
 */
export function voteShapeError(v: Pick<FinalityVote, "source" | "target">): string | null {
  const { source: s, target: t } = v;
  if (t.epoch <= s.epoch) return `target epoch ${t.epoch} is not after source epoch ${s.epoch}`;
  if (isSecondEpoch(t.epoch)) {
    if (s.epoch !== t.epoch - 1 || !s.hash.equals(t.hash))
      return "a second-epoch target must link from the same block's first epoch";
  } else if (heightOfEpoch(s.epoch) >= heightOfEpoch(t.epoch)) {
    return `a first-epoch target at height ${heightOfEpoch(t.epoch)} must be above its source at height ${heightOfEpoch(s.epoch)}`;
  }
  return null;
}

/** The shape checks and the signature. Null if the vote is good, else why not. */
export function voteError(genesisHash: Buffer, v: FinalityVote): string | null {
  const shape = voteShapeError(v);
  if (shape) return shape;
  if (!verifySignature(v.voter, voteSigningBytes(genesisHash, v.era, v.source, v.target), v.signature))
    return "the voter's signature does not verify";
  return null;
}

/**
 * The rule two votes of one voter in one era break, or null. Double: two different votes for one
 * target epoch. Surround: one vote's source and target epochs both lie strictly inside the
 * other's. An honest voter never signs either pair (its lock, below, makes sure of it). Votes of
 * different eras break no rule together: each era's votes are counted only with that era's voter
 * set, and only up to the next era's anchor.
 */
export function slashingOffence(a: FinalityVote, b: FinalityVote): "double" | "surround" | null {
  if (!a.voter.equals(b.voter) || a.era !== b.era) return null;
  if (a.target.epoch === b.target.epoch) {
    const same = a.target.hash.equals(b.target.hash) && sameCheckpoint(a.source, b.source);
    return same ? null : "double";
  }
  const inside = (x: FinalityVote, y: FinalityVote): boolean =>
    y.source.epoch < x.source.epoch && x.target.epoch < y.target.epoch;
  return inside(a, b) || inside(b, a) ? "surround" : null;
}

/**
 * An honest voter's lock: the latest era it has signed in, and the highest source and target
 * epochs it has signed in that era. It never signs in an earlier era; in its era it signs (s, t)
 * only if t > maxTarget and s >= maxSource; and it records the lock before the vote leaves. Then
 * no two of its votes in one era share a target epoch, and none surrounds another: a new vote's
 * target is above every earlier target of its era, and its source at or above every earlier
 * source. A later era starts a fresh lock.
 */
export interface VoteLock {
  era: number;
  maxSource: number;
  maxTarget: number;
}

export const NO_LOCK: VoteLock = { era: 0, maxSource: 0, maxTarget: 0 };

export function lockAllows(lock: VoteLock, era: number, source: Checkpoint, target: Checkpoint): boolean {
  if (era !== lock.era) return era > lock.era;
  return target.epoch > lock.maxTarget && source.epoch >= lock.maxSource;
}

export function lockAfter(lock: VoteLock, era: number, source: Checkpoint, target: Checkpoint): VoteLock {
  if (era > lock.era) return { era, maxSource: source.epoch, maxTarget: target.epoch };
  return {
    era: lock.era,
    maxSource: Math.max(lock.maxSource, source.epoch),
    maxTarget: Math.max(lock.maxTarget, target.epoch),
  };
}

/** More than two thirds: 3 * weight > 2 * total, in integers. */
export function isSupermajority(weight: bigint, total: bigint): boolean {
  return total > 0n && 3n * weight > 2n * total;
}

/**
 * A certificate: the votes of one supermajority link. Its checks need the link's voter set
 * (committee.ts, `linkVoters`): every vote is on that link, well formed and signed, one per
 * voter, every voter in the set, and the weight more than 2/3 of the set's.
 */
export interface Certificate {
  era: number;
  source: Checkpoint;
  target: Checkpoint;
  votes: Array<{ voter: Buffer; signature: Buffer }>;
}

export function certificateVotes(c: Certificate): FinalityVote[] {
  return c.votes.map((v) => ({
    era: c.era,
    source: c.source,
    target: c.target,
    voter: v.voter,
    signature: v.signature,
  }));
}

/** Null if `c` is a valid certificate for the voter set `voters`, else why not. */
export function certificateError(genesisHash: Buffer, c: Certificate, voters: VoterSet): string | null {
  const shape = voteShapeError(c);
  if (shape) return shape;
  const seen = new Set<string>();
  let weight = 0n;
  const signed = voteSigningBytes(genesisHash, c.era, c.source, c.target);
  for (const v of c.votes) {
    const id = v.voter.toString("hex");
    if (seen.has(id)) return `voter ${id} appears twice`;
    seen.add(id);
    const w = voters.weightOf(v.voter);
    if (w === 0n) return `voter ${id} is not in the link's voter set`;
    if (!verifySignature(v.voter, signed, v.signature)) return `the signature of voter ${id} does not verify`;
    weight += w;
  }
  const total = voters.total;
  if (!isSupermajority(weight, total))
    return `the votes carry ${weight} of ${total} weight, not more than 2/3`;
  return null;
}

export function writeCertificate(w: Writer, c: Certificate): void {
  writeLink(w, c);
  w.u32(c.votes.length);
  for (const v of c.votes) w.fixed(v.voter, 32).fixed(v.signature, 64);
}

export function readCertificate(r: Reader, maxVotes: number): Certificate {
  const link = readLink(r);
  const n = r.u32();
  if (n > maxVotes) throw new CodecError("INVALID_VALUE", `certificate of ${n} votes exceeds ${maxVotes}`);
  if (n * CERTIFICATE_VOTE_SIZE > r.remaining)
    throw new CodecError("OUT_OF_BOUNDS", `${n} votes cannot fit in ${r.remaining} bytes`);
  const votes = Array.from({ length: n }, () => ({ voter: r.fixed(32), signature: r.fixed(64) }));
  return { ...link, votes };
}
